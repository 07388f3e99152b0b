"""Thresholds: how runs are counted toward an alert (DESIGN §8).

A monitor's alert goes out after `alert_after` failed runs in a row, and
its recovery after `recover_after` good ones. `count` is a table over
(alert state, run outcome):

    alert     run     counters              -> alert     event
    quiet     failed  fails+1 >= alert_after   alerting  down
    quiet     failed  fails+1 <  alert_after   quiet     (held: threshold)
    quiet     ok      fails = 0                quiet     -
    alerting  failed  oks = 0                  alerting  -
    alerting  ok      oks+1 >= recover_after   quiet     up
    alerting  ok      oks+1 <  recover_after   alerting  (held: threshold)

While a monitor is down and its alert still held, silence keeps counting:
`miss_deadline` says when the next period counts one more failed run, and
`count_miss` counts it, arming the next expected time from the missed one.
`arm` sets reminders and that expected time after a step of policy.py.

Pure, like policy.py: time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from heartbeatd import holds, states
from heartbeatd.holds import Context
from heartbeatd.model import AlertEvent, AlertState, Flip, MonitorState, Reason, Status

HELD_BY_THRESHOLD = "threshold"


class Rules(states.Rules, holds.Rules, Protocol):
    """What counting needs of a monitor's configuration."""

    @property
    def alert_after(self) -> int: ...
    @property
    def recover_after(self) -> int: ...


class Run(Enum):
    """How one run of the job ended, as thresholds count it."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Counters:
    alert: AlertState = AlertState.QUIET
    fails: int = 0
    oks: int = 0


def count(
    before: Counters, run: Run, alert_after: int, recover_after: int
) -> tuple[Counters, AlertEvent | None]:
    """One run through the table in the module docstring."""
    if run is Run.FAILED:
        fails = before.fails + 1
        if before.alert is AlertState.QUIET and fails >= alert_after:
            return Counters(AlertState.ALERTING, fails, 0), AlertEvent.DOWN
        return Counters(before.alert, fails, 0), None
    if before.alert is AlertState.ALERTING:
        oks = before.oks + 1
        if oks >= recover_after:
            return Counters(AlertState.QUIET, 0, 0), AlertEvent.UP
        return Counters(AlertState.ALERTING, 0, oks), None
    return Counters(AlertState.QUIET, 0, 0), None


def counters(state: MonitorState) -> Counters:
    return Counters(state.alert, state.fails, state.oks)


def is_held(run: Run, old: MonitorState) -> bool:
    """Whether a run that sends nothing is held back by the threshold."""
    # A failure while the alert is already out is part of that incident;
    # a success while quiet has no down before it: neither is held back.
    if run is Run.FAILED:
        return old.alert is AlertState.QUIET
    return old.alert is AlertState.ALERTING


def arm(
    old: MonitorState,
    new: MonitorState,
    flip: Flip | None,
    event: AlertEvent | None,
    rules: Rules,
    at: datetime,
) -> MonitorState:
    """Reminders follow the down alert, not the down flip; and while the
    alert is held, silence counts from the next expected time."""
    if new.alert is AlertState.QUIET:
        expected = new.expected_at
        if flip is not None and flip.reason is Reason.MISSED and old.expected_at is not None:
            # Armed from the missed time, so silence counts once per period.
            expected = rules.schedule.next_after(old.expected_at)
        elif flip is not None and flip.reason is Reason.RAN_TOO_LONG:
            expected = rules.schedule.next_after(at)
        return replace(new, expected_at=expected, next_reminder_at=None, reminders_sent=0)
    if event is AlertEvent.DOWN and flip is not None and flip.old is flip.new:
        first = at + timedelta(seconds=rules.repeat) if rules.repeat else None
        return replace(new, next_reminder_at=first, reminders_sent=0)
    return new


def miss_deadline(state: MonitorState, rules: Rules) -> tuple[datetime, Reason] | None:
    """While down with the alert held: when silence counts one more failed run."""
    if state.status is not Status.DOWN or state.alert is not AlertState.QUIET:
        return None
    if state.expected_at is None:
        return None
    when, reason = state.expected_at + timedelta(seconds=rules.grace), Reason.MISSED
    if state.started_at is not None:
        # A run in progress gets its max_runtime, as it does while up.
        limit = state.started_at + timedelta(seconds=rules.max_runtime)
        if limit > when:
            when, reason = limit, Reason.RAN_TOO_LONG
    if state.grace_until is not None and state.grace_until > when:
        when = state.grace_until
    return when, reason


def count_miss(
    old: MonitorState, rules: Rules, when: datetime, reason: Reason, ctx: Context
) -> states.Step:
    after, event = count(counters(old), Run.FAILED, rules.alert_after, rules.recover_after)
    holder = None
    if event is not None:
        holder = holds.holder(old, rules, when, ctx, fresh=old.held_since is None)
    if holder is not None:
        after, event = replace(after, alert=AlertState.QUIET), None
    assert old.expected_at is not None
    # The next period is armed from the missed one (or from the end of a
    # run that ran too long), never from the tick that noticed it.
    base = old.expected_at if reason is Reason.MISSED else when
    expected = rules.schedule.next_after(base)
    new = replace(
        old,
        alert=after.alert,
        fails=after.fails,
        oks=after.oks,
        reason=reason,
        expected_at=expected,
        grace_until=None,
        started_at=None if reason is Reason.RAN_TOO_LONG else old.started_at,
        start_rid=None if reason is Reason.RAN_TOO_LONG else old.start_rid,
    )
    if holder is not None:
        new = holds.hold(new, holder, when)
    if event is None:
        return states.Step(new)
    first = when + timedelta(seconds=rules.repeat) if rules.repeat else None
    new = replace(new, next_reminder_at=first, reminders_sent=0)
    flip = Flip(at=when, old=Status.DOWN, new=Status.DOWN, reason=reason, event=event)
    return states.Step(new, flip)
