"""The alert policy: when the alert state follows the status (DESIGN §8).

`status` (states.py) says what *is*; the alert state (`quiet`/`alerting`)
says what a human has been told. Down, up and reminder events are
transitions of the alert state. This module sits on top of states.py: it
takes the step the state machine made and decides which alert, if any, goes
out; a status flip whose alert it holds back carries `held_by`.

Pure, like states.py: time comes in as an argument.

The core is `count` (thresholds.py), a table over (alert state, run
outcome): a /fail, a non-zero exit status, a run that ran too long and a
missed deadline each count one failed run. While a monitor is down and its
alert still held, silence keeps counting (thresholds.count_miss): the next
expected time is armed from the missed one, so a job that stays silent
counts once per period.

A due down alert may also be held beyond the thresholds (holds.py: a snooze,
a maintenance window, a parent that is down); it is judged again when the
hold ends, and goes out once if the monitor is still down then.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from heartbeatd import escalation, holds, states, thresholds
from heartbeatd.holds import NO_CONTEXT as NO_CONTEXT
from heartbeatd.holds import Context as Context
from heartbeatd.holds import on_parent_up as on_parent_up
from heartbeatd.holds import on_reload as on_reload
from heartbeatd.holds import open_window as open_window
from heartbeatd.holds import snooze as snooze
from heartbeatd.model import (
    AlertEvent,
    AlertState,
    Flip,
    MonitorState,
    Ping,
    PingKind,
    Reason,
    Status,
)
from heartbeatd.thresholds import HELD_BY_THRESHOLD as HELD_BY_THRESHOLD
from heartbeatd.thresholds import Counters as Counters
from heartbeatd.thresholds import Run as Run
from heartbeatd.thresholds import arm, count_miss, counters, is_held, miss_deadline
from heartbeatd.thresholds import count as count


class Rules(thresholds.Rules, Protocol):
    @property
    def escalations(self) -> tuple[tuple[str, int], ...]: ...


# -- the state machine's steps, judged ------------------------------------------


def on_ping(
    old: MonitorState, step: states.Step, ping: Ping, rules: Rules, ctx: Context = NO_CONTEXT
) -> states.Step:
    """Judge a ping's step: a success or a failure counts one run."""
    if ping.kind is PingKind.SUCCESS:
        # A success the run rules call a failure (ran_too_short: the state
        # machine flipped it down) counts as a failed run.
        failed = step.flip is not None and step.flip.new is Status.DOWN
        run = Run.FAILED if failed else Run.OK
    elif ping.kind is PingKind.FAIL:
        run = Run.FAILED
    else:
        # start and log are no runs; carry the policy's fields over.
        return _carry(old, step)
    return _incident(old, _judge(old, step, run, ping.at, rules, ctx))


def on_tick(
    old: MonitorState,
    step: states.Step,
    rules: Rules,
    now: datetime,
    ctx: Context = NO_CONTEXT,
) -> states.Step:
    """Judge a tick's step: a down flip (missed, ran too long) counts one
    failed run, and so does a missed period while the alert is held; an
    unacknowledged incident escalates when its time comes."""
    return _incident(old, _on_tick(old, step, rules, now, ctx))


def _on_tick(
    old: MonitorState,
    step: states.Step,
    rules: Rules,
    now: datetime,
    ctx: Context,
) -> states.Step:
    # A hold ends first; the state machine's own deadline, if one was due
    # too, comes up again at the next tick (at its rule time).
    if old.snoozed_until is not None and now >= old.snoozed_until:
        return _end_snooze(old, rules, old.snoozed_until, ctx)
    if old.held_until is not None and now >= old.held_until:
        return _rejudge(replace(old, held_until=None), rules, old.held_until, ctx)
    escalated = None
    if _escalation_held(old, rules, now) is None:
        escalated = escalation.escalate(old, rules, now)
    if escalated is not None:
        # The state machine's own deadline, if one was due too, comes up
        # again at the next tick (at its rule time).
        return states.Step(*escalated)
    flip = step.flip
    if flip is not None and flip.event is AlertEvent.REMINDER:
        # Reminders remind of an alert that went out; none while it is held,
        # nor once a human acknowledged it.
        if (
            old.alert is AlertState.ALERTING
            and old.acked_at is None
            and holds.holder(old, rules, flip.at, ctx) is None
        ):
            return _carry(old, step)
        return states.Step(_carry(old, step).state)
    if flip is not None and flip.new is Status.DOWN and flip.old is not Status.DOWN:
        return _judge(old, step, Run.FAILED, flip.at, rules, ctx)
    miss = miss_deadline(old, rules)
    if miss is not None and now >= miss[0]:
        return count_miss(old, rules, miss[0], miss[1], ctx)
    if old.status is Status.UP and step.state.status is Status.LATE and flip is None:
        # Late is a status, not a flip (no flips row: old == new), but a
        # channel may opt in to hear it, as a warning before down.
        at = step.state.expected_at or now
        late = Flip(
            at=at, old=Status.LATE, new=Status.LATE, reason=Reason.MISSED, event=AlertEvent.LATE
        )
        return replace(_carry(old, step), flip=late)
    return _carry(old, step)


def next_deadline(state: MonitorState, rules: Rules) -> datetime | None:
    """The next time on_tick (states' or ours) has something to do."""
    times = [
        states.next_deadline(state, rules),
        state.snoozed_until,
        state.held_until,
        _escalation_due(state, rules),
    ]
    miss = miss_deadline(state, rules)
    if miss is not None:
        times.append(miss[0])
    return min((t for t in times if t is not None), default=None)


def pause(state: MonitorState) -> MonitorState:
    """A paused monitor alerts nobody: its incident, if any, is over."""
    state = replace(state, alert=AlertState.QUIET, fails=0, oks=0, held_until=None)
    return escalation.end(state)


def acknowledge(state: MonitorState, at: datetime, by: str, note: str) -> MonitorState | None:
    """A human has seen the incident: reminders and escalations stop."""
    return escalation.acknowledge(state, at, by, note)


def on_startup(state: MonitorState, rules: Rules, now: datetime) -> MonitorState:
    """After heartbeatd was not running: a period missed meanwhile is not
    the job's fault (as states.on_startup), and a monitor that went down
    before the alert state existed had its down alert sent."""
    if state.status is Status.DOWN and state.alert is AlertState.QUIET and state.fails == 0:
        # Only a database from before the policy holds a down monitor that
        # counted no failed run.
        return replace(state, alert=AlertState.ALERTING, fails=1)
    if state.held_reason and state.held_until is None:
        # Held until a parent's recovery, which may have happened while we
        # were not running: judged after a grace, as a missed deadline is.
        state = replace(state, held_until=now + timedelta(seconds=rules.grace))
    miss = miss_deadline(state, rules)
    if miss is not None and miss[0] <= now:
        return replace(state, grace_until=now + timedelta(seconds=rules.grace))
    return state


def unsnooze(
    state: MonitorState, rules: Rules, now: datetime, ctx: Context = NO_CONTEXT
) -> states.Step:
    """End a snooze now: what it held is judged as at its end."""
    if state.snoozed_until is None:
        return states.Step(state)
    return _incident(state, _end_snooze(state, rules, min(now, state.snoozed_until), ctx))


def held_by(
    state: MonitorState, rules: Rules, now: datetime | None, ctx: Context = NO_CONTEXT
) -> str | None:
    """What holds the monitor's alert back at `now`, if anything (without
    `now`, only what the thresholds hold)."""
    down = state.status is Status.DOWN
    if down and (state.alert is AlertState.ALERTING or state.fails >= rules.alert_after):
        holder = holds.holder(state, rules, now, ctx) if now is not None else None
        if holder is None and state.held_reason and state.alert is AlertState.QUIET:
            # Held until its parent's recovery is judged.
            return state.held_reason
        return holder[0] if holder is not None else None
    if down and state.alert is AlertState.QUIET:
        return HELD_BY_THRESHOLD
    if state.status is Status.UP and state.alert is AlertState.ALERTING:
        return HELD_BY_THRESHOLD
    return None


# -- plumbing -------------------------------------------------------------------


def _policy_fields(state: MonitorState) -> tuple[object, ...]:
    return (
        state.alert,
        state.fails,
        state.oks,
        state.snoozed_until,
        state.snooze_reason,
        state.held_until,
        state.held_since,
        state.held_reason,
        state.alerted_at,
        state.escalated,
        state.ack_token,
        state.acked_at,
        state.acked_by,
        state.ack_note,
    )


def _with_policy(new: MonitorState, old: MonitorState) -> MonitorState:
    """`new` with the policy's fields of `old` (states.on_ping builds a
    fresh state, which has them at their defaults)."""
    if _policy_fields(new) == _policy_fields(old):
        return new
    return replace(
        new,
        alert=old.alert,
        fails=old.fails,
        oks=old.oks,
        snoozed_until=old.snoozed_until,
        snooze_reason=old.snooze_reason,
        held_until=old.held_until,
        held_since=old.held_since,
        held_reason=old.held_reason,
        alerted_at=old.alerted_at,
        escalated=old.escalated,
        ack_token=old.ack_token,
        acked_at=old.acked_at,
        acked_by=old.acked_by,
        ack_note=old.ack_note,
    )


def _carry(old: MonitorState, step: states.Step) -> states.Step:
    new = _with_policy(step.state, old)
    return step if new is step.state else replace(step, state=new)


def _escalation_held(state: MonitorState, rules: Rules, at: datetime) -> datetime | None:
    """Until when a snooze or a maintenance window holds an escalation due
    at `at` (as it holds a down alert), if one does."""
    if state.snoozed_until is not None and at < state.snoozed_until:
        return state.snoozed_until
    window = holds.open_window(rules, at)
    return window[1] if window is not None else None


def _escalation_due(state: MonitorState, rules: Rules) -> datetime | None:
    when = escalation.due(state, rules)
    while when is not None:
        until = _escalation_held(state, rules, when)
        if until is None or until <= when:
            return when
        when = until
    return when


def _incident(old: MonitorState, step: states.Step) -> states.Step:
    """The incident's fields (escalation.py) follow the step's alert."""
    new = escalation.track(old, step.state, step.flip)
    return step if new is step.state else replace(step, state=new)


def _end_snooze(old: MonitorState, rules: Rules, at: datetime, ctx: Context) -> states.Step:
    return _rejudge(replace(old, snoozed_until=None, snooze_reason=""), rules, at, ctx)


def _rejudge(new: MonitorState, rules: Rules, at: datetime, ctx: Context) -> states.Step:
    """A hold is over: a monitor still down as the thresholds count it
    alerts once now, unless another hold has begun; one that came back
    meanwhile sends nothing."""
    due = (
        new.status is Status.DOWN
        and new.alert is AlertState.QUIET
        and new.fails >= rules.alert_after
    )
    if not due:
        return states.Step(holds.unheld(new))
    holder = holds.holder(new, rules, at, ctx)
    if holder is not None:
        return states.Step(holds.hold(new, holder, at))
    first = at + timedelta(seconds=rules.repeat) if rules.repeat else None
    reason = new.reason or Reason.MISSED
    # The alert says what held it, and since when.
    flip = Flip(
        at=at,
        old=Status.DOWN,
        new=Status.DOWN,
        reason=reason,
        event=AlertEvent.DOWN,
        held_by=new.held_reason or None,
        held_since=new.held_since,
    )
    new = replace(
        new,
        alert=AlertState.ALERTING,
        oks=0,
        next_reminder_at=first,
        reminders_sent=0,
        held_until=None,
        held_since=None,
        held_reason="",
    )
    return states.Step(new, flip)


def _judge(
    old: MonitorState, step: states.Step, run: Run, at: datetime, rules: Rules, ctx: Context
) -> states.Step:
    after, event = count(counters(old), run, rules.alert_after, rules.recover_after)
    held = holder = None
    if event is AlertEvent.DOWN:
        holder = holds.holder(old, rules, at, ctx, fresh=old.held_since is None)
        if holder is not None:
            # Due, but held: it stays quiet, and is judged again when the
            # hold ends (or at the next failed run).
            after, event = replace(after, alert=AlertState.QUIET), None
            held = holder[0]
    elif event is None and is_held(run, old):
        held = HELD_BY_THRESHOLD
    new = _with_policy(step.state, old)
    if (new.alert, new.fails, new.oks) != (after.alert, after.fails, after.oks):
        new = replace(new, alert=after.alert, fails=after.fails, oks=after.oks)
    if holder is not None:
        new = holds.hold(new, holder, at)
    elif run is Run.OK:
        # Back before a hold ended: what it held is not due any more.
        new = holds.unheld(new)
    flip = step.flip
    if flip is not None and flip.old is not flip.new:
        # A status flip: it carries the policy's event, or says what held it.
        flip = replace(flip, event=event, held_by=held)
    elif event is not None:
        # The threshold is reached without a status flip: the alert goes out
        # now, as a reminder does (old == new, no flips row).
        status = new.status
        reason = Reason.RECOVERED if event is AlertEvent.UP else (new.reason or Reason.FAILED)
        flip = Flip(at=at, old=status, new=status, reason=reason, event=event)
    if new.status is Status.DOWN:
        new = arm(old, new, flip, event, rules, at)
    if new is step.state and flip is step.flip:
        # Every success of a healthy monitor: the hot path.
        return step
    return replace(step, state=new, flip=flip)
