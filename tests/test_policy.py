"""The alert policy on top of the state machine: tables per rule, and
properties of the alert stream for any sequence of pings and ticks.

Pure, like the code under test: explicit times, no clock, no I/O. The
`Monitor` below drives states.py and policy.py the way the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeatd import policy, states
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
from heartbeatd.policy import Counters, Run
from heartbeatd.schedule import Schedule
from heartbeatd.windows import Window

NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
GRACE = 5 * MIN
EVERY_HOUR = Schedule(period=3600)


@dataclass(frozen=True)
class Rules:
    schedule: Schedule = EVERY_HOUR
    grace: int = 300
    max_runtime: int = 300
    repeat: int | None = None
    repeat_limit: int | None = None
    alert_after: int = 1
    recover_after: int = 1
    windows: tuple[Window, ...] = ()
    depends_on: tuple[str, ...] = ()
    min_runtime: int | None = None
    max_concurrent: int | None = None
    runtime_anomaly: float | None = None
    escalations: tuple[tuple[str, int], ...] = ()


@dataclass
class Monitor:
    """One monitor driven as the engine drives it: every deadline is ticked
    at its own time, as the timer wheel would."""

    rules: Rules
    state: MonitorState
    at: datetime
    flips: list[Flip] = field(default_factory=list)

    @classmethod
    def up_at(cls, at: datetime, rules: Rules) -> Monitor:
        monitor = cls(rules, states.first_seen(rules, at - HOUR), at - HOUR)
        monitor.ping(PingKind.SUCCESS, at)
        monitor.flips.clear()
        return monitor

    def ping(self, kind: PingKind, at: datetime, exit_status: int | None = None) -> None:
        self.run_until(at)
        step = states.on_ping(self.state, Ping(kind, at, exit_status=exit_status), self.rules)
        self._take(policy.on_ping(self.state, step, Ping(kind, at), self.rules))

    def run_until(self, until: datetime) -> None:
        while True:
            due = policy.next_deadline(self.state, self.rules)
            if due is None or due > until:
                break
            old = self.state
            self._take(policy.on_tick(old, states.on_tick(old, self.rules, due), self.rules, due))
            assert self.state != old, "a deadline that changes nothing would tick forever"
        self.at = until
        self._take(
            policy.on_tick(
                self.state, states.on_tick(self.state, self.rules, until), self.rules, until
            )
        )

    def _take(self, step: states.Step) -> None:
        self.state = step.state
        # A late warning goes only to channels that opt in (test_events.py).
        if step.flip is not None and step.flip.event is not AlertEvent.LATE:
            self.flips.append(step.flip)

    def events(self) -> list[tuple[AlertEvent, datetime]]:
        return [(f.event, f.at) for f in self.flips if f.event is not None]


# -- the core table ----------------------------------------------------------------

QUIET, ALERTING = AlertState.QUIET, AlertState.ALERTING


@pytest.mark.parametrize(
    ("before", "run", "alert_after", "recover_after", "after", "event"),
    [
        (Counters(QUIET, 0, 0), Run.FAILED, 1, 1, Counters(ALERTING, 1, 0), AlertEvent.DOWN),
        (Counters(QUIET, 0, 0), Run.FAILED, 3, 1, Counters(QUIET, 1, 0), None),
        (Counters(QUIET, 2, 0), Run.FAILED, 3, 1, Counters(ALERTING, 3, 0), AlertEvent.DOWN),
        (Counters(QUIET, 2, 0), Run.OK, 3, 1, Counters(QUIET, 0, 0), None),
        (Counters(ALERTING, 3, 0), Run.FAILED, 3, 1, Counters(ALERTING, 4, 0), None),
        (Counters(ALERTING, 1, 0), Run.OK, 1, 1, Counters(QUIET, 0, 0), AlertEvent.UP),
        (Counters(ALERTING, 1, 0), Run.OK, 1, 2, Counters(ALERTING, 0, 1), None),
        (Counters(ALERTING, 0, 1), Run.OK, 1, 2, Counters(QUIET, 0, 0), AlertEvent.UP),
        (Counters(ALERTING, 0, 1), Run.FAILED, 1, 2, Counters(ALERTING, 1, 0), None),
    ],
    ids=[
        "first-failure-alerts-by-default",
        "first-of-three-is-held",
        "third-of-three-alerts",
        "a-success-resets-the-count",
        "failing-on-while-alerting-sends-nothing-more",
        "first-success-recovers-by-default",
        "first-of-two-successes-is-held",
        "second-of-two-recovers",
        "a-failure-while-recovering-starts-over",
    ],
)
def test_the_core_table(before, run, alert_after, recover_after, after, event):
    assert policy.count(before, run, alert_after, recover_after) == (after, event)


# -- thresholds, rule by rule ------------------------------------------------------


def test_it_alerts_at_once_by_default_as_before():
    m = Monitor.up_at(NOW, Rules())
    m.ping(PingKind.FAIL, NOW + MIN)
    m.ping(PingKind.SUCCESS, NOW + 2 * MIN)
    assert m.events() == [(AlertEvent.DOWN, NOW + MIN), (AlertEvent.UP, NOW + 2 * MIN)]
    assert [f.held_by for f in m.flips] == [None, None]


def test_it_holds_the_down_alert_until_the_third_failed_run():
    m = Monitor.up_at(NOW, Rules(alert_after=3))
    m.ping(PingKind.FAIL, NOW + HOUR)
    assert m.flips[0].new is Status.DOWN and m.flips[0].event is None
    assert m.flips[0].held_by == "threshold"
    assert policy.held_by(m.state, m.rules, m.at) == "threshold"
    m.ping(PingKind.FAIL, NOW + 2 * HOUR, exit_status=1)
    assert m.events() == []
    m.ping(PingKind.FAIL, NOW + 3 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + 3 * HOUR)]
    assert m.state.alert is AlertState.ALERTING
    assert policy.held_by(m.state, m.rules, m.at) is None


def test_a_success_between_failures_starts_the_count_again():
    m = Monitor.up_at(NOW, Rules(alert_after=2))
    m.ping(PingKind.FAIL, NOW + HOUR)
    m.ping(PingKind.SUCCESS, NOW + 2 * HOUR)
    m.ping(PingKind.FAIL, NOW + 3 * HOUR)
    assert m.events() == []
    m.ping(PingKind.FAIL, NOW + 4 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + 4 * HOUR)]


def test_a_silent_job_counts_one_failed_run_per_period():
    m = Monitor.up_at(NOW, Rules(alert_after=3))
    # Down at 13:05 (1), then each following period missed: 14:05 (2), 15:05 (3).
    m.run_until(NOW + 3 * HOUR + GRACE - timedelta(seconds=1))
    assert m.state.status is Status.DOWN and m.state.fails == 2
    assert m.events() == []
    m.run_until(NOW + 5 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + 3 * HOUR + GRACE)]
    # Counted once per period, not once per tick.
    assert m.state.fails == 3


def test_silence_after_a_failure_counts_from_the_next_expected_time():
    m = Monitor.up_at(NOW, Rules(alert_after=2))
    m.ping(PingKind.FAIL, NOW + 30 * MIN)
    m.run_until(NOW + 90 * MIN + GRACE - timedelta(seconds=1))
    assert m.events() == []
    m.run_until(NOW + 2 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + 90 * MIN + GRACE)]


def test_a_run_that_ran_too_long_counts_one_failed_run():
    m = Monitor.up_at(NOW, Rules(alert_after=2, max_runtime=600))
    m.ping(PingKind.START, NOW + HOUR)
    m.run_until(NOW + HOUR + 11 * MIN)
    assert m.flips[-1].reason is Reason.RAN_TOO_LONG and m.flips[-1].held_by == "threshold"
    m.ping(PingKind.FAIL, NOW + 2 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + 2 * HOUR)]


def test_a_run_in_progress_while_held_gets_its_max_runtime():
    m = Monitor.up_at(NOW, Rules(alert_after=2, max_runtime=3 * 3600))
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    # The next run starts on time and takes two hours, well past expected + grace.
    m.ping(PingKind.START, NOW + 70 * MIN)
    m.ping(PingKind.SUCCESS, NOW + 190 * MIN)
    assert m.events() == []
    assert m.state.status is Status.UP


def test_no_up_alert_without_a_down_alert_before_it():
    m = Monitor.up_at(NOW, Rules(alert_after=3))
    m.ping(PingKind.FAIL, NOW + HOUR)
    m.ping(PingKind.SUCCESS, NOW + 2 * HOUR)
    assert m.events() == []
    assert m.flips[-1].new is Status.UP and m.flips[-1].held_by is None


def test_it_holds_the_up_alert_until_the_second_success():
    m = Monitor.up_at(NOW, Rules(recover_after=2))
    m.ping(PingKind.FAIL, NOW + HOUR)
    m.ping(PingKind.SUCCESS, NOW + 2 * HOUR)
    assert m.flips[-1].new is Status.UP and m.flips[-1].held_by == "threshold"
    assert m.state.alert is AlertState.ALERTING
    assert policy.held_by(m.state, m.rules, m.at) == "threshold"
    m.ping(PingKind.SUCCESS, NOW + 3 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + HOUR), (AlertEvent.UP, NOW + 3 * HOUR)]
    assert m.flips[-1].old is Status.UP and m.flips[-1].reason is Reason.RECOVERED


def test_a_failure_while_recovering_sends_no_second_down():
    m = Monitor.up_at(NOW, Rules(recover_after=2))
    m.ping(PingKind.FAIL, NOW + HOUR)
    m.ping(PingKind.SUCCESS, NOW + 2 * HOUR)
    m.ping(PingKind.FAIL, NOW + 3 * HOUR)
    m.ping(PingKind.SUCCESS, NOW + 4 * HOUR)
    m.ping(PingKind.SUCCESS, NOW + 5 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + HOUR), (AlertEvent.UP, NOW + 5 * HOUR)]


def test_reminders_follow_the_down_alert_not_the_held_flip():
    m = Monitor.up_at(NOW, Rules(alert_after=2, repeat=1800))
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    m.run_until(NOW + 70 * MIN)
    assert m.events() == []
    m.ping(PingKind.FAIL, NOW + 70 * MIN)
    m.run_until(NOW + 2 * HOUR + 15 * MIN)
    assert m.events() == [
        (AlertEvent.DOWN, NOW + 70 * MIN),
        (AlertEvent.REMINDER, NOW + 100 * MIN),
        (AlertEvent.REMINDER, NOW + 130 * MIN),
    ]


def test_a_pause_ends_the_incident():
    m = Monitor.up_at(NOW, Rules())
    m.ping(PingKind.FAIL, NOW + HOUR)
    m.state = policy.pause(states.pause(m.state))
    m.ping(PingKind.SUCCESS, NOW + 2 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + HOUR)]
    assert m.state.alert is AlertState.QUIET


def test_a_down_monitor_stored_before_the_policy_existed_is_alerting():
    stored = MonitorState.from_json(
        {"status": "down", "down_at": NOW.timestamp(), "expected_at": NOW.timestamp()}
    )
    state = policy.on_startup(stored, Rules(), NOW + HOUR)
    assert state.alert is AlertState.ALERTING
    step = states.on_ping(state, Ping(PingKind.SUCCESS, NOW + 2 * HOUR), Rules())
    judged = policy.on_ping(state, step, Ping(PingKind.SUCCESS, NOW + 2 * HOUR), Rules())
    assert judged.flip is not None and judged.flip.event is AlertEvent.UP


def test_a_period_missed_while_heartbeatd_was_stopped_does_not_count():
    m = Monitor.up_at(NOW, Rules(alert_after=2))
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    # Stopped from 12:30 to 14:00: the 13:15 deadline passed meanwhile.
    m.state = policy.on_startup(
        states.on_startup(m.state, m.rules, NOW + 2 * HOUR), m.rules, NOW + 2 * HOUR
    )
    m.run_until(NOW + 2 * HOUR + GRACE - timedelta(seconds=1))
    assert m.events() == []
    m.run_until(NOW + 2 * HOUR + GRACE)
    assert m.events() == [(AlertEvent.DOWN, NOW + 2 * HOUR + GRACE)]


def test_the_alert_state_and_counters_survive_the_stored_form():
    state = replace(MonitorState(), alert=AlertState.ALERTING, fails=3, oks=1)
    assert MonitorState.from_json(state.to_json()) == state
    assert MonitorState().to_json() == {}


# -- properties of the alert stream ------------------------------------------------

EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("ok"), st.integers(1, 200)),
        st.tuples(st.just("fail"), st.integers(1, 200)),
        st.tuples(st.just("start"), st.integers(1, 200)),
        st.tuples(st.just("wait"), st.integers(1, 400)),
        st.tuples(st.just("snooze"), st.integers(1, 300)),
    ),
    max_size=40,
)
KINDS = {"ok": PingKind.SUCCESS, "fail": PingKind.FAIL, "start": PingKind.START}


@settings(max_examples=300, deadline=None)
@given(
    events=EVENTS,
    alert_after=st.integers(1, 4),
    recover_after=st.integers(1, 4),
    repeat=st.none() | st.sampled_from([600, 3600]),
)
def test_the_alert_stream_alternates_and_never_loses_a_due_down(
    events, alert_after, recover_after, repeat
):
    rules = Rules(alert_after=alert_after, recover_after=recover_after, repeat=repeat)
    m = Monitor.up_at(NOW, rules)
    at = NOW
    # The oracle counts only what it can tell on its own: pings.
    failed_pings = successes = 0
    for what, minutes in events:
        at += timedelta(minutes=minutes)
        seen = len(m.flips)
        m.run_until(at)
        if any(f.new is Status.DOWN and f.old is not Status.DOWN for f in m.flips[seen:]):
            # A missed deadline (or a run too long) is a failed run too.
            successes = 0
        if what == "snooze":
            # Here `minutes` is the snooze's length, from now.
            m.state = policy.snooze(m.state, at + timedelta(minutes=minutes), "")
        elif what != "wait":
            m.ping(KINDS[what], at)
            if what == "fail":
                failed_pings, successes = failed_pings + 1, 0
            elif what == "ok":
                failed_pings, successes = 0, successes + 1
        told = AlertState.QUIET
        for event, _ in m.events():
            # Never an up without a down, never a second down or a reminder
            # outside an incident.
            if event is AlertEvent.DOWN:
                assert told is AlertState.QUIET
                told = AlertState.ALERTING
            elif event is AlertEvent.UP:
                assert told is AlertState.ALERTING
                told = AlertState.QUIET
            else:
                assert told is AlertState.ALERTING
        assert told is m.state.alert
        if failed_pings >= alert_after and m.state.snoozed_until is None:
            # This many failed runs in a row and no snooze (or its end has
            # come): the down alert is out.
            assert m.state.alert is AlertState.ALERTING
        if what == "ok" and successes >= recover_after:
            assert m.state.alert is AlertState.QUIET
        times = [when for _, when in m.events()]
        assert times == sorted(times)
