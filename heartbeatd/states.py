"""The state machine: (state, event, now) -> (new state, flip or nothing).

Pure: no I/O and no clock reads. Every time comes in as an argument, and the
time stamped on a flip is the time the rule says it happened (for example
expected_at + grace), not the time a loop noticed it.

Rules (DESIGN §3):
- after a success at t the monitor is expected at `schedule.next_after(t)`;
- it is `late` from the expected time and `down` at expected time + grace;
- while a run is in progress (after /start) the missed deadline is suspended
  and the run must end within `max_runtime`, else it is down (ran too long);
- /fail or a non-zero exit status is down at once;
- a success while down is `up` with a recovery alert; new -> up alerts nobody;
- a monitor never pinged is `new` and goes down at first-seen + period + grace;
- paused monitors alert nobody; the next success or failure resumes them;
- while down, `repeat` re-sends the alert as a reminder, `repeat_limit` times
  at most;
- a finish sooner than `min_runtime` after its /start is a failure
  (ran_too_short);
- runs are tracked per rid; a /start while `max_concurrent` runs are open is
  an `overlap` notice, and a run far off the median of recent ones (by the
  factor `runtime_anomaly`) an `anomaly` notice. Notices change no status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from heartbeatd import runs
from heartbeatd.model import (
    AlertEvent,
    Flip,
    MonitorState,
    Ping,
    PingKind,
    Reason,
    Status,
    preview_body,
)

# Measured runs a runtime anomaly is judged against, and the fewest that make
# a median worth trusting.
RECENT_RUNS = 20
MIN_RUNS_FOR_ANOMALY = 5


class Schedule(Protocol):
    def next_after(self, after: datetime) -> datetime: ...
    def expected_after(self, success: datetime) -> datetime: ...


class Rules(Protocol):
    """What the state machine needs of a monitor's configuration."""

    @property
    def schedule(self) -> Schedule: ...
    @property
    def grace(self) -> int: ...
    @property
    def max_runtime(self) -> int: ...
    @property
    def repeat(self) -> int | None: ...
    @property
    def repeat_limit(self) -> int | None: ...
    @property
    def min_runtime(self) -> int | None: ...
    @property
    def max_concurrent(self) -> int | None: ...
    @property
    def runtime_anomaly(self) -> float | None: ...


@dataclass(frozen=True)
class Step:
    state: MonitorState
    flip: Flip | None = None
    # Seconds since the matching start, for a finishing ping.
    duration: float | None = None
    # Alerts that change no status (overlap, anomaly): old == new.
    notices: tuple[Flip, ...] = ()


def first_seen(rules: Rules, now: datetime) -> MonitorState:
    """The state of a monitor heartbeatd has never seen before."""
    return MonitorState(first_seen=now, expected_at=rules.schedule.next_after(now))


# -- deadlines ------------------------------------------------------------------


def _floor(when: datetime, state: MonitorState) -> datetime:
    if state.grace_until is not None and state.grace_until > when:
        return state.grace_until
    return when


def _down_deadline(state: MonitorState, rules: Rules) -> tuple[datetime, Reason] | None:
    """When a monitor that is not down goes down, and why."""
    if state.status in (Status.DOWN, Status.PAUSED):
        return None
    if state.started_at is not None:
        limit = state.started_at + timedelta(seconds=rules.max_runtime)
        return _floor(limit, state), Reason.RAN_TOO_LONG
    if state.expected_at is None:
        return None
    return _floor(state.expected_at + timedelta(seconds=rules.grace), state), Reason.MISSED


def down_at(state: MonitorState, rules: Rules) -> datetime | None:
    """When the monitor went down (while down), or will go down (otherwise)."""
    if state.status is Status.DOWN:
        return state.down_at
    deadline = _down_deadline(state, rules)
    return deadline[0] if deadline else None


def _reminders_left(state: MonitorState, rules: Rules) -> bool:
    return rules.repeat is not None and (
        rules.repeat_limit is None or state.reminders_sent < rules.repeat_limit
    )


def next_deadline(state: MonitorState, rules: Rules) -> datetime | None:
    """The next time `on_tick` has something to do for this monitor."""
    if state.status is Status.DOWN:
        return state.next_reminder_at if _reminders_left(state, rules) else None
    deadline = _down_deadline(state, rules)
    if deadline is None:
        return None
    goes_late = (
        state.status is Status.UP
        and state.started_at is None
        and state.expected_at is not None
        and state.expected_at < deadline[0]
    )
    return state.expected_at if goes_late else deadline[0]


# -- events ---------------------------------------------------------------------


def _flip(
    old: Status, new: Status, at: datetime, reason: Reason, event: AlertEvent | None
) -> Flip | None:
    # `late` is a shade of `up`: going late and back are not flips.
    old = Status.UP if old is Status.LATE else old
    if old is new:
        return None
    return Flip(at=at, old=old, new=new, reason=reason, event=event)


def _first_reminder(rules: Rules, down_at: datetime) -> datetime | None:
    return down_at + timedelta(seconds=rules.repeat) if rules.repeat else None


def on_ping(state: MonitorState, ping: Ping, rules: Rules) -> Step:
    if ping.kind is PingKind.LOG or ping.kind is PingKind.IGNORED:
        return Step(replace(state, n_pings=state.n_pings + 1))
    if ping.kind is PingKind.START:
        return _start(state, ping, rules)

    # One constructor call per ping: this is the hot path of every success.
    closed = runs.close_run(state, ping)
    duration = closed.duration
    at = ping.at
    too_short = _is_too_short(ping, duration, rules)
    success = ping.kind is PingKind.SUCCESS and not too_short
    still_down = not success and state.status is Status.DOWN
    if success:
        status, reason, down_at = Status.UP, None, None
    elif still_down:
        # No second alert, but keep the latest output and times.
        status, reason, down_at = Status.DOWN, state.reason, state.down_at
    else:
        status = Status.DOWN
        reason = _failure_reason(ping, too_short)
        down_at = at
    new = MonitorState(
        status=status,
        first_seen=state.first_seen,
        last_ping=at,
        last_success=at if success else state.last_success,
        last_kind=ping.kind,
        last_exit_status=ping.exit_status,
        started_at=closed.started_at,
        start_rid=closed.start_rid,
        expected_at=rules.schedule.expected_after(at),
        down_at=down_at,
        grace_until=None,
        reason=reason,
        n_pings=state.n_pings + 1,
        last_duration=duration if duration is not None else state.last_duration,
        body_preview=preview_body(ping.body),
        reminders_sent=state.reminders_sent if still_down else 0,
        next_reminder_at=(
            None
            if success
            else state.next_reminder_at
            if still_down
            else _first_reminder(rules, at)
        ),
        open_runs=closed.open_runs,
        # Kept only while the rule is on: a monitor without it carries none.
        recent_durations=state.recent_durations if rules.runtime_anomaly else (),
    )
    notices: tuple[Flip, ...] = ()
    if success and rules.runtime_anomaly:
        new, notices = _judge_runtime(state, new, duration, rules.runtime_anomaly, at)
    if success:
        # Only a recovery from down alerts: new -> up and a resume do not.
        event = AlertEvent.UP if state.status is Status.DOWN else None
        flip = _flip(state.status, Status.UP, at, Reason.RECOVERED, event)
        return Step(new, flip, duration, notices)
    if still_down:
        return Step(new, None, duration)
    assert reason is not None
    flip = _flip(state.status, Status.DOWN, at, reason, AlertEvent.DOWN)
    if flip is not None and too_short:
        flip = replace(flip, duration=duration, reference=float(rules.min_runtime or 0))
    return Step(new, flip, duration)


def _start(state: MonitorState, ping: Ping, rules: Rules) -> Step:
    opened = runs.open_run(state, ping)
    started = replace(
        state,
        n_pings=state.n_pings + 1,
        started_at=opened.started_at,
        start_rid=opened.start_rid,
        open_runs=opened.open_runs,
        last_ping=ping.at,
    )
    limit = rules.max_concurrent
    if limit is None or opened.others < limit:
        return Step(started)
    status = state.status
    overlap = Flip(ping.at, status, status, Reason.OVERLAP, AlertEvent.OVERLAP)
    return Step(started, notices=(overlap,))


def _is_too_short(ping: Ping, duration: float | None, rules: Rules) -> bool:
    # A success without a /start before it has no measured duration: it
    # cannot be judged, and is not held against the job.
    return (
        ping.kind is PingKind.SUCCESS
        and rules.min_runtime is not None
        and duration is not None
        and duration < rules.min_runtime
    )


def _failure_reason(ping: Ping, too_short: bool) -> Reason:
    if too_short:
        return Reason.RAN_TOO_SHORT
    return Reason.EXIT_STATUS if ping.exit_status else Reason.FAILED


def _judge_runtime(
    old: MonitorState, new: MonitorState, duration: float | None, factor: float, at: datetime
) -> tuple[MonitorState, tuple[Flip, ...]]:
    """An `anomaly` notice for a run far off the median of the recent ones,
    and the run added to them. Too few runs yet: no judgement."""
    if duration is None:
        return new, ()
    recent = old.recent_durations
    notices: tuple[Flip, ...] = ()
    if len(recent) >= MIN_RUNS_FOR_ANOMALY:
        typical = runs.median(recent)
        if runs.is_anomaly(duration, typical, factor):
            notice = Flip(
                at,
                new.status,
                new.status,
                Reason.RUNTIME_ANOMALY,
                AlertEvent.ANOMALY,
                duration=duration,
                reference=typical,
            )
            notices = (notice,)
    kept = (*recent, duration)[-RECENT_RUNS:]
    return replace(new, recent_durations=kept), notices


def on_tick(state: MonitorState, rules: Rules, now: datetime) -> Step:
    """Apply whatever deadline has passed by `now`."""
    if state.status is Status.DOWN:
        return _remind(state, rules, now)
    deadline = _down_deadline(state, rules)
    if deadline is None:
        return Step(state)
    when, reason = deadline
    if now >= when:
        new = replace(
            state,
            status=Status.DOWN,
            down_at=when,
            reason=reason,
            reminders_sent=0,
            next_reminder_at=_first_reminder(rules, when),
        )
        return Step(new, _flip(state.status, Status.DOWN, when, reason, AlertEvent.DOWN))
    late = (
        state.status is Status.UP
        and state.started_at is None
        and state.expected_at is not None
        and now >= state.expected_at
    )
    return Step(replace(state, status=Status.LATE)) if late else Step(state)


def _remind(state: MonitorState, rules: Rules, now: datetime) -> Step:
    due = state.next_reminder_at
    if due is None or now < due or not _reminders_left(state, rules) or rules.repeat is None:
        return Step(state)
    # One reminder per deadline, however late the tick: the next one is the
    # first multiple of `repeat` after now, not a burst of catch-up sends.
    step = timedelta(seconds=rules.repeat)
    following = due + step * ((now - due) // step + 1)
    new = replace(state, reminders_sent=state.reminders_sent + 1, next_reminder_at=following)
    reason = state.reason or Reason.MISSED
    return Step(
        new,
        Flip(at=due, old=Status.DOWN, new=Status.DOWN, reason=reason, event=AlertEvent.REMINDER),
    )


def pause(state: MonitorState) -> MonitorState:
    """Stop watching: no deadlines, no alerts, until resumed or pinged."""
    return replace(state, status=Status.PAUSED, next_reminder_at=None, grace_until=None)


def resume(state: MonitorState, rules: Rules, now: datetime) -> MonitorState:
    """Watch a paused monitor again, as if its schedule started now."""
    if state.status is not Status.PAUSED:
        return state
    status = Status.UP if state.last_success is not None else Status.NEW
    return replace(state, status=status, expected_at=rules.schedule.next_after(now))


def on_rules_changed(state: MonitorState, rules: Rules) -> MonitorState:
    """A reloaded schedule: recompute the expected time from the last success."""
    base = state.last_success or state.first_seen
    if base is None or state.status in (Status.DOWN, Status.PAUSED):
        return state
    # From a success, `early` counts; from first-seen there was no run yet.
    schedule = rules.schedule
    expected = schedule.expected_after(base) if state.last_success else schedule.next_after(base)
    # Unchanged is the common case (every monitor, at every start-up).
    return state if expected == state.expected_at else replace(state, expected_at=expected)


def on_startup(state: MonitorState, rules: Rules, now: datetime) -> MonitorState:
    """After heartbeatd itself was not running (or the wall clock jumped).

    A deadline that passed meanwhile moves to now + grace: pings could not
    reach us, so missing them is not the job's fault. A monitor already down
    stays down without a second alert, and reminders skip what they missed.
    """
    if state.status is Status.DOWN:
        due = state.next_reminder_at
        if due is not None and due <= now and rules.repeat:
            step = timedelta(seconds=rules.repeat)
            return replace(state, next_reminder_at=due + step * ((now - due) // step + 1))
        return state
    deadline = _down_deadline(state, rules)
    if deadline is None or deadline[0] > now:
        return state
    return replace(state, grace_until=now + timedelta(seconds=rules.grace))
