"""The rules on runs, as state-machine tables: too-short runs, overlaps by
rid, runtime anomalies, early pings. Explicit times, no clock, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeatd import runs, states
from heartbeatd.model import AlertEvent, MonitorState, Ping, PingKind, Reason, Status
from heartbeatd.schedule import Schedule

NOW = datetime(2026, 1, 14, 2, 0, 0, tzinfo=timezone.utc)
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


DAILY = Schedule(period=86400)


@dataclass(frozen=True)
class Rules:
    schedule: Schedule = DAILY
    grace: int = 300
    max_runtime: int = 7200
    repeat: int | None = None
    repeat_limit: int | None = None
    min_runtime: int | None = None
    max_concurrent: int | None = None
    runtime_anomaly: float | None = None


def up_at(at: datetime, rules: Rules) -> MonitorState:
    fresh = states.first_seen(rules, at - HOUR)
    return states.on_ping(fresh, Ping(PingKind.SUCCESS, at), rules).state


def run(
    state: MonitorState,
    rules: Rules,
    start: datetime,
    seconds: float,
    rid: str | None = None,
    kind: PingKind = PingKind.SUCCESS,
) -> states.Step:
    started = states.on_ping(state, Ping(PingKind.START, start, rid=rid), rules).state
    return states.on_ping(started, Ping(kind, start + seconds * SEC, rid=rid), rules)


# -- min_runtime ----------------------------------------------------------------

TOO_SHORT = Rules(min_runtime=30)


@pytest.mark.parametrize(
    ("seconds", "status", "reason", "alerts"),
    [
        (3, Status.DOWN, Reason.RAN_TOO_SHORT, True),
        (29.9, Status.DOWN, Reason.RAN_TOO_SHORT, True),
        (30, Status.UP, None, False),
        (600, Status.UP, None, False),
    ],
    ids=["3s", "just-under", "exactly-the-minimum", "long-enough"],
)
def test_a_finish_sooner_than_min_runtime_is_a_failure(seconds, status, reason, alerts):
    step = run(up_at(NOW - DAY, TOO_SHORT), TOO_SHORT, NOW, seconds)
    assert step.state.status is status
    assert step.state.reason is reason
    assert step.duration == seconds
    if alerts:
        assert step.flip is not None
        assert (step.flip.event, step.flip.reason) == (AlertEvent.DOWN, Reason.RAN_TOO_SHORT)
        # The measured and the minimum duration travel to the alert.
        assert (step.flip.duration, step.flip.reference) == (seconds, 30.0)
        # A run that did not do its work is not a success.
        assert step.state.last_success == NOW - DAY
    else:
        assert step.flip is None
        assert step.state.last_success == NOW + seconds * SEC


def test_a_success_without_a_start_cannot_be_too_short():
    state = up_at(NOW - DAY, TOO_SHORT)
    step = states.on_ping(state, Ping(PingKind.SUCCESS, NOW), TOO_SHORT)
    assert step.state.status is Status.UP
    assert step.duration is None


def test_a_failure_that_was_also_short_keeps_its_own_reason():
    step = run(up_at(NOW - DAY, TOO_SHORT), TOO_SHORT, NOW, 2, kind=PingKind.FAIL)
    assert step.state.reason is Reason.FAILED


def test_a_long_enough_run_after_a_too_short_one_recovers():
    down = run(up_at(NOW - DAY, TOO_SHORT), TOO_SHORT, NOW, 3).state
    step = run(down, TOO_SHORT, NOW + HOUR, 45)
    assert step.state.status is Status.UP
    assert step.flip is not None and step.flip.event is AlertEvent.UP


# -- overlaps, by rid -------------------------------------------------------------

ONE_AT_A_TIME = Rules(max_concurrent=1)


def start(state: MonitorState, at: datetime, rid: str | None, rules: Rules) -> states.Step:
    return states.on_ping(state, Ping(PingKind.START, at, rid=rid), rules)


@pytest.mark.parametrize(
    ("first_rid", "second_rid", "limit", "overlap"),
    [
        ("a", "b", 1, True),
        (None, None, 1, True),
        ("a", None, 1, True),
        (None, "b", 1, True),
        # The same run's /start sent again (a retry) is not a second run.
        ("a", "a", 1, False),
        ("a", "b", 2, False),
        ("a", "b", None, False),
    ],
    ids=[
        "two-rids",
        "no-rids",
        "rid-then-none",
        "none-then-rid",
        "same-rid-again",
        "two-allowed",
        "rule-off",
    ],
)
def test_a_start_while_another_run_is_open_is_an_overlap(first_rid, second_rid, limit, overlap):
    rules = Rules(max_concurrent=limit)
    first = start(up_at(NOW - DAY, rules), NOW, first_rid, rules).state
    step = start(first, NOW + MIN, second_rid, rules)
    notices = [(n.event, n.reason, n.at) for n in step.notices]
    if overlap:
        assert notices == [(AlertEvent.OVERLAP, Reason.OVERLAP, NOW + MIN)]
    else:
        assert notices == []
    # A notice changes no status and is not a flip.
    assert step.flip is None
    assert step.state.status is Status.UP


def test_a_third_run_overlaps_when_two_are_allowed():
    rules = Rules(max_concurrent=2)
    state = up_at(NOW - DAY, rules)
    state = start(state, NOW, "a", rules).state
    state = start(state, NOW + MIN, "b", rules).state
    assert [n.event for n in start(state, NOW + 2 * MIN, "c", rules).notices] == [
        AlertEvent.OVERLAP
    ]


def test_a_start_after_the_last_run_finished_is_no_overlap():
    state = run(up_at(NOW - DAY, ONE_AT_A_TIME), ONE_AT_A_TIME, NOW, 60, rid="a").state
    assert start(state, NOW + HOUR, "b", ONE_AT_A_TIME).notices == ()


def test_a_run_open_longer_than_the_bound_no_longer_counts():
    state = start(up_at(NOW - DAY, ONE_AT_A_TIME), NOW, "a", ONE_AT_A_TIME).state
    later = NOW + runs.MAX_RUN_DURATION + SEC
    assert start(state, later, "b", ONE_AT_A_TIME).notices == ()


def test_overlapping_runs_each_get_their_own_duration():
    rules = ONE_AT_A_TIME
    state = up_at(NOW - DAY, rules)
    state = start(state, NOW, "a", rules).state
    state = start(state, NOW + 10 * MIN, "b", rules).state
    # a finishes first, after 25 min; b is still running and watched.
    step_a = states.on_ping(state, Ping(PingKind.SUCCESS, NOW + 25 * MIN, rid="a"), rules)
    assert step_a.duration == 25 * 60
    assert step_a.state.started_at == NOW + 10 * MIN
    assert step_a.state.start_rid == "b"
    step_b = states.on_ping(step_a.state, Ping(PingKind.SUCCESS, NOW + 30 * MIN, rid="b"), rules)
    assert step_b.duration == 20 * 60
    assert (step_b.state.started_at, step_b.state.open_runs) == (None, ())


def test_when_the_newest_run_finishes_first_the_older_one_is_watched():
    rules = ONE_AT_A_TIME
    state = up_at(NOW - DAY, rules)
    state = start(state, NOW, "a", rules).state
    state = start(state, NOW + 10 * MIN, "b", rules).state
    step_b = states.on_ping(state, Ping(PingKind.SUCCESS, NOW + 12 * MIN, rid="b"), rules)
    assert step_b.duration == 2 * 60
    # max_runtime now runs from a's start: a is still open.
    assert (step_b.state.started_at, step_b.state.start_rid) == (NOW, "a")
    step_a = states.on_ping(step_b.state, Ping(PingKind.SUCCESS, NOW + 40 * MIN, rid="a"), rules)
    assert step_a.duration == 40 * 60


def test_open_runs_survive_a_restart_of_the_daemon():
    rules = ONE_AT_A_TIME
    state = start(start(up_at(NOW - DAY, rules), NOW, "a", rules).state, NOW + MIN, "b", rules)
    stored = MonitorState.from_json(state.state.to_json())
    assert stored == state.state


def test_open_runs_are_bounded():
    rules = Rules()
    state = up_at(NOW - DAY, rules)
    for n in range(100):
        state = start(state, NOW + n * SEC, f"run-{n}", rules).state
    assert len(state.open_runs) == 20
    assert state.open_runs[-1][0] == "run-98"


# -- runtime anomalies ------------------------------------------------------------

WATCHED = Rules(runtime_anomaly=3)


def with_runs(seconds: list[float], rules: Rules = WATCHED) -> MonitorState:
    state = up_at(NOW - 30 * DAY, rules)
    for n, length in enumerate(seconds):
        state = run(state, rules, NOW - (len(seconds) - n) * DAY, length).state
    return state


@pytest.mark.parametrize(
    ("history", "seconds", "anomaly"),
    [
        # Too few runs to judge: no notice, however odd the run.
        ([], 10_000, False),
        ([600] * 4, 10_000, False),
        ([600] * 5, 10_000, True),
        ([600] * 5, 1801, True),
        ([600] * 5, 1800, False),
        ([600] * 5, 199, True),
        ([600] * 5, 200, False),
        ([600] * 5, 650, False),
        # The median, not the mean: one odd run in the history does not move it.
        ([600, 600, 600, 600, 100_000], 1000, False),
    ],
    ids=[
        "no-history",
        "four-runs",
        "five-runs-long",
        "just-over-3x",
        "exactly-3x",
        "just-under-a-third",
        "exactly-a-third",
        "usual",
        "median-not-mean",
    ],
)
def test_a_run_far_off_the_median_is_an_anomaly(history, seconds, anomaly):
    state = with_runs(history)
    step = run(state, WATCHED, NOW + HOUR, seconds)
    assert step.state.status is Status.UP
    if anomaly:
        (notice,) = step.notices
        assert (notice.event, notice.reason) == (AlertEvent.ANOMALY, Reason.RUNTIME_ANOMALY)
        assert (notice.duration, notice.reference) == (seconds, 600)
    else:
        assert step.notices == ()
    # Every measured run joins the history, the odd one too.
    assert step.state.recent_durations[-1] == seconds


def test_the_median_is_of_the_last_20_runs():
    state = with_runs([10] * 20 + [600] * 20)
    assert len(state.recent_durations) == 20
    step = run(state, WATCHED, NOW + HOUR, 600)
    assert step.notices == ()


def test_without_the_rule_no_history_is_kept():
    state = with_runs([600] * 6, Rules())
    assert state.recent_durations == ()


def test_an_anomaly_and_a_recovery_come_together():
    state = with_runs([600] * 5)
    down = replace(state, status=Status.DOWN, down_at=NOW, reason=Reason.MISSED)
    step = run(down, WATCHED, NOW + HOUR, 6000)
    assert step.flip is not None and step.flip.event is AlertEvent.UP
    assert [n.event for n in step.notices] == [AlertEvent.ANOMALY]


# -- early pings ------------------------------------------------------------------

DAILY_2AM = Schedule(cron="0 2 * * *", timezone="Europe/Riga")
EARLY = Rules(schedule=replace(DAILY_2AM, early=120))
# 02:00 in Riga in January is 00:00 UTC.
TICK = datetime(2026, 1, 14, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (0, TICK + DAY),
        (60, TICK + DAY),
        (120, TICK + DAY),
        (121, TICK),
    ],
    ids=["on-time", "1m-early", "2m-early", "too-early"],
)
def test_an_early_success_counts_as_the_coming_tick(before, expected):
    state = up_at(TICK - DAY, EARLY)
    step = states.on_ping(state, Ping(PingKind.SUCCESS, TICK - before * SEC), EARLY)
    assert step.state.expected_at == expected


def test_without_early_a_success_a_minute_before_expects_the_same_tick():
    # The behaviour `early` exists for: the monitor goes late a minute later.
    rules = Rules(schedule=DAILY_2AM)
    state = states.on_ping(up_at(TICK - DAY, rules), Ping(PingKind.SUCCESS, TICK - MIN), rules)
    assert state.state.expected_at == TICK


def test_a_reload_keeps_counting_the_early_success():
    state = states.on_ping(up_at(TICK - DAY, EARLY), Ping(PingKind.SUCCESS, TICK - MIN), EARLY)
    assert states.on_rules_changed(state.state, EARLY).expected_at == TICK + DAY


SCHEDULES = st.sampled_from(
    [
        "*/5 * * * *",
        "0 2 * * *",
        "30 14 * * 1-5",
        "0 0 1 * *",
        "15 3 * * 0",
    ]
)
ZONES = st.sampled_from(["UTC", "Europe/Riga", "America/New_York", "Australia/Lord_Howe"])
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.just(timezone.utc),
)


@settings(max_examples=200, deadline=None)
@given(
    expr=SCHEDULES,
    zone=ZONES,
    early=st.integers(min_value=0, max_value=3600),
    first=MOMENTS,
    gaps=st.lists(st.integers(min_value=1, max_value=3 * 86400), min_size=1, max_size=6),
)
def test_early_never_makes_a_monitor_expect_the_same_tick_twice(expr, zone, early, first, gaps):
    schedule = Schedule(cron=expr, timezone=zone, early=early)
    rules = Rules(schedule=schedule)
    state = up_at(first, rules)
    # Every tick a success has counted for: the ones within `early` after it.
    counted: set[datetime] = set()
    at = first
    for gap in [0, *gaps]:
        at += gap * SEC
        state = states.on_ping(state, Ping(PingKind.SUCCESS, at), rules).state
        tick = schedule.next_after(at)
        while tick <= at + early * SEC:
            counted.add(tick)
            tick = schedule.next_after(tick)
        assert state.expected_at is not None
        assert state.expected_at > at
        assert state.expected_at not in counted
        # The expected tick is a real tick, the first one the success did not count for.
        assert state.expected_at == tick
