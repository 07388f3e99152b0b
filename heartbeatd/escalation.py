"""Escalation and acknowledgement of an incident (DESIGN §8).

An incident begins with the down alert that turns the alert state from
quiet to alerting, and ends when it turns quiet again (the up alert, a
pause). A monitor's `channels` may list {channel = "pager", after = "30m"}:
that channel hears the down alert only as an `escalation`, if the incident
is still alerting and unacknowledged `after` after its first down alert.
An acknowledgement stops reminders and escalations until the next incident.

    alert     acked  now >= alerted_at + after   -> escalation
    alerting  no     yes                            sent, escalated+1
    alerting  no     no                             (wait)
    alerting  yes    any                            none
    quiet     -      -                              none (incident over)

The due time is derived from the stored state (alerted_at, escalated), so
the timer wheel re-arms it at start-up, and the escalation and the state
that counts it sent are stored in one transaction: a restart neither loses
nor repeats one.

Pure, like policy.py: time comes in as an argument; the ack link's random
token is made by the caller.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from heartbeatd.model import AlertEvent, AlertState, Flip, MonitorState, Reason, Status

# What an acknowledgement's note and name may hold: notes for humans.
MAX_NOTE = 500
MAX_BY = 100


class Rules(Protocol):
    @property
    def escalations(self) -> tuple[tuple[str, int], ...]: ...


def due(state: MonitorState, rules: Rules) -> datetime | None:
    """When the next escalation step goes out, if one is due at all."""
    if (
        state.alert is not AlertState.ALERTING
        or state.acked_at is not None
        or state.alerted_at is None
        or state.escalated >= len(rules.escalations)
    ):
        return None
    return state.alerted_at + timedelta(seconds=rules.escalations[state.escalated][1])


def escalate(state: MonitorState, rules: Rules, now: datetime) -> tuple[MonitorState, Flip] | None:
    """Every escalation step due by `now`, as one flip to their channels."""
    when = due(state, rules)
    if when is None or now < when:
        return None
    assert state.alerted_at is not None
    steps = rules.escalations
    last = state.escalated
    while last < len(steps) and state.alerted_at + timedelta(seconds=steps[last][1]) <= now:
        last += 1
    channels = tuple(dict.fromkeys(name for name, _ in steps[state.escalated : last]))
    status = state.status
    flip = Flip(
        at=when,
        old=status,
        new=status,
        reason=state.reason or Reason.MISSED,
        event=AlertEvent.ESCALATION,
        channels=channels,
    )
    return replace(state, escalated=last), flip


def track(old: MonitorState, new: MonitorState, flip: Flip | None) -> MonitorState:
    """The incident's fields after a step: a down alert out of quiet starts
    one (the caller gives it a token), a quiet alert state ends it."""
    if new.alert is AlertState.QUIET:
        return end(new)
    if (
        flip is not None
        and flip.event is AlertEvent.DOWN
        and (old.alert is AlertState.QUIET or new.alerted_at is None)
    ):
        return replace(
            new,
            alerted_at=flip.at,
            escalated=0,
            ack_token="",
            acked_at=None,
            acked_by="",
            ack_note="",
        )
    return new


def end(state: MonitorState) -> MonitorState:
    if state.alerted_at is None and not state.ack_token and state.acked_at is None:
        return state
    return replace(
        state,
        alerted_at=None,
        escalated=0,
        ack_token="",
        acked_at=None,
        acked_by="",
        ack_note="",
    )


def needs_token(state: MonitorState) -> bool:
    return state.alerted_at is not None and not state.ack_token


def acknowledge(state: MonitorState, at: datetime, by: str, note: str) -> MonitorState | None:
    """The incident acknowledged: no more reminders or escalations. None
    when there is no incident to acknowledge; a second ack keeps the first."""
    if state.alert is not AlertState.ALERTING or state.alerted_at is None:
        return None
    if state.acked_at is not None:
        return state
    return replace(
        state,
        acked_at=at,
        acked_by=by[:MAX_BY],
        ack_note=note[:MAX_NOTE],
        next_reminder_at=None if state.status is Status.DOWN else state.next_reminder_at,
    )
