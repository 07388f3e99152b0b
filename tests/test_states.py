"""The state machine, rule by rule, on explicit times (no clock, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest

from heartbeatd import states
from heartbeatd.model import BODY_PREVIEW, AlertEvent, MonitorState, Ping, PingKind, Reason, Status
from heartbeatd.schedule import Schedule

NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


EVERY_HOUR = Schedule(period=3600)


@dataclass(frozen=True)
class Rules:
    schedule: Schedule = EVERY_HOUR
    grace: int = 300
    max_runtime: int = 300
    repeat: int | None = None
    repeat_limit: int | None = None
    min_runtime: int | None = None
    max_concurrent: int | None = None
    runtime_anomaly: float | None = None


HOURLY = Rules()


def ping(kind: PingKind = PingKind.SUCCESS, at: datetime = NOW, **kw: object) -> Ping:
    return Ping(kind=kind, at=at, **kw)  # type: ignore[arg-type]


def up_since(at: datetime, rules: Rules = HOURLY) -> MonitorState:
    fresh = states.first_seen(rules, at - HOUR)
    return states.on_ping(fresh, ping(at=at), rules).state


def tick(state: MonitorState, at: datetime, rules: Rules = HOURLY) -> states.Step:
    return states.on_tick(state, rules, at)


def test_it_expects_a_period_monitor_one_period_after_a_success():
    state = up_since(NOW)
    assert state.status is Status.UP
    assert state.expected_at == NOW + HOUR
    assert states.next_deadline(state, HOURLY) == NOW + HOUR


def test_it_goes_late_at_the_expected_time_without_alerting():
    step = tick(up_since(NOW), NOW + HOUR)
    assert step.state.status is Status.LATE
    assert step.flip is None


def test_it_stays_up_just_before_the_expected_time():
    step = tick(up_since(NOW), NOW + HOUR - timedelta(seconds=1))
    assert step.state.status is Status.UP


def test_it_goes_down_at_expected_plus_grace_stamped_with_the_rule_time():
    late = tick(up_since(NOW), NOW + HOUR).state
    assert states.next_deadline(late, HOURLY) == NOW + HOUR + 5 * MIN
    # The tick comes 40 s after the deadline; the flip is stamped at the deadline.
    step = tick(late, NOW + HOUR + 5 * MIN + timedelta(seconds=40))
    assert step.state.status is Status.DOWN
    assert step.flip is not None
    assert (step.flip.old, step.flip.new) == (Status.UP, Status.DOWN)
    assert step.flip.at == NOW + HOUR + 5 * MIN
    assert step.flip.event is AlertEvent.DOWN
    assert step.flip.reason is Reason.MISSED
    assert step.state.down_at == NOW + HOUR + 5 * MIN


def test_it_goes_straight_down_when_a_tick_comes_after_the_grace():
    step = tick(up_since(NOW), NOW + 2 * HOUR)
    assert step.state.status is Status.DOWN
    assert step.flip.at == NOW + HOUR + 5 * MIN


def test_it_goes_down_at_once_on_fail_with_the_body():
    step = states.on_ping(up_since(NOW), ping(PingKind.FAIL, NOW + MIN, body="disk full"), HOURLY)
    assert step.state.status is Status.DOWN
    assert step.flip.reason is Reason.FAILED
    assert step.flip.at == NOW + MIN
    assert step.state.body_preview == "disk full"


def test_it_keeps_only_the_end_of_a_long_body():
    output = "".join(f"line {n}\n" for n in range(100_000)) + "error: disk full\n"
    step = states.on_ping(up_since(NOW), ping(PingKind.FAIL, NOW + MIN, body=output), HOURLY)
    assert len(step.state.body_preview) == BODY_PREVIEW
    assert step.state.body_preview.startswith("...")
    assert step.state.body_preview.endswith("line 99999\nerror: disk full\n")


def test_it_goes_down_on_a_non_zero_exit_status():
    fail = ping(PingKind.FAIL, NOW + MIN, exit_status=3)
    step = states.on_ping(up_since(NOW), fail, HOURLY)
    assert step.flip.reason is Reason.EXIT_STATUS
    assert step.state.last_exit_status == 3


def test_a_second_failure_while_down_sends_no_second_alert():
    down = states.on_ping(up_since(NOW), ping(PingKind.FAIL, NOW + MIN), HOURLY).state
    step = states.on_ping(down, ping(PingKind.FAIL, NOW + 2 * MIN, body="again"), HOURLY)
    assert step.flip is None
    assert step.state.status is Status.DOWN
    assert step.state.down_at == NOW + MIN
    assert step.state.body_preview == "again"


def test_a_success_while_down_recovers_with_an_up_alert():
    down = states.on_ping(up_since(NOW), ping(PingKind.FAIL, NOW + MIN), HOURLY).state
    step = states.on_ping(down, ping(at=NOW + 10 * MIN), HOURLY)
    assert step.state.status is Status.UP
    assert step.flip.event is AlertEvent.UP
    assert step.flip.reason is Reason.RECOVERED
    assert step.state.down_at is None
    assert step.state.expected_at == NOW + 10 * MIN + HOUR


def test_new_to_up_is_a_flip_that_alerts_nobody():
    fresh = states.first_seen(HOURLY, NOW)
    step = states.on_ping(fresh, ping(at=NOW + MIN), HOURLY)
    assert (step.flip.old, step.flip.new) == (Status.NEW, Status.UP)
    assert step.flip.event is None


def test_a_never_pinged_monitor_goes_down_at_first_seen_plus_period_plus_grace():
    fresh = states.first_seen(HOURLY, NOW)
    assert fresh.status is Status.NEW
    assert tick(fresh, NOW + HOUR + 4 * MIN).state.status is Status.NEW
    step = tick(fresh, NOW + HOUR + 5 * MIN)
    assert step.state.status is Status.DOWN
    assert step.flip.event is AlertEvent.DOWN
    assert (step.flip.old, step.flip.reason) == (Status.NEW, Reason.MISSED)


def test_a_start_without_a_finish_within_max_runtime_is_down_ran_too_long():
    rules = Rules(max_runtime=1800)
    started = states.on_ping(up_since(NOW, rules), ping(PingKind.START, NOW + HOUR), rules).state
    assert states.next_deadline(started, rules) == NOW + HOUR + 30 * MIN
    # While it runs, the missed deadline (expected + grace) is suspended.
    assert tick(started, NOW + HOUR + 10 * MIN, rules).state.status is Status.UP
    step = tick(started, NOW + HOUR + 30 * MIN, rules)
    assert step.state.status is Status.DOWN
    assert step.flip.reason is Reason.RAN_TOO_LONG
    assert step.flip.at == NOW + HOUR + 30 * MIN


def test_a_finish_records_the_duration_since_its_start():
    started = states.on_ping(up_since(NOW), ping(PingKind.START, NOW + HOUR), HOURLY).state
    step = states.on_ping(started, ping(at=NOW + HOUR + 90 * timedelta(seconds=1)), HOURLY)
    assert step.duration == 90
    assert step.state.last_duration == 90
    assert step.state.started_at is None


RID_A = "0c7b3a0e-3c5e-4b0e-9a51-111111111111"
RID_B = "0c7b3a0e-3c5e-4b0e-9a51-222222222222"


@pytest.mark.parametrize(
    ("start_rid", "finish_rid", "closes"),
    [
        (RID_A, RID_A, True),
        (RID_A, RID_B, False),
        (RID_A, None, True),
        (None, None, True),
    ],
    ids=["same-rid", "other-rid", "finish-without-rid", "no-rids"],
)
def test_it_pairs_start_and_finish_by_rid(start_rid, finish_rid, closes):
    started = states.on_ping(
        up_since(NOW), ping(PingKind.START, NOW + HOUR, rid=start_rid), HOURLY
    ).state
    step = states.on_ping(started, ping(at=NOW + HOUR + MIN, rid=finish_rid), HOURLY)
    assert (step.duration == 60) is closes
    assert (step.state.started_at is None) is closes


def test_no_duration_is_recorded_across_more_than_72_hours():
    started = states.on_ping(up_since(NOW), ping(PingKind.START, NOW), HOURLY).state
    step = states.on_ping(started, ping(at=NOW + timedelta(hours=73)), HOURLY)
    assert step.duration is None


def test_a_log_ping_changes_nothing_but_the_count():
    state = up_since(NOW)
    step = states.on_ping(state, ping(PingKind.LOG, NOW + MIN), HOURLY)
    assert step.state == replace(state, n_pings=state.n_pings + 1)
    assert step.flip is None


def test_a_paused_monitor_has_no_deadline_and_never_alerts():
    paused = states.pause(up_since(NOW))
    assert paused.status is Status.PAUSED
    assert states.next_deadline(paused, HOURLY) is None
    assert tick(paused, NOW + 10 * HOUR).flip is None


def test_the_next_success_resumes_a_paused_monitor_without_an_alert():
    paused = states.pause(up_since(NOW))
    step = states.on_ping(paused, ping(at=NOW + 3 * HOUR), HOURLY)
    assert step.state.status is Status.UP
    assert step.flip.event is None


def test_resume_restarts_the_schedule_from_now():
    paused = states.pause(up_since(NOW))
    resumed = states.resume(paused, HOURLY, NOW + 5 * HOUR)
    assert resumed.status is Status.UP
    assert resumed.expected_at == NOW + 6 * HOUR


def test_reminders_repeat_while_down_up_to_the_limit():
    rules = Rules(repeat=3600, repeat_limit=2)
    down = states.on_ping(up_since(NOW, rules), ping(PingKind.FAIL, NOW), rules).state
    assert states.next_deadline(down, rules) == NOW + HOUR
    first = tick(down, NOW + HOUR, rules)
    assert first.flip.event is AlertEvent.REMINDER
    assert first.flip.at == NOW + HOUR
    second = tick(first.state, NOW + 2 * HOUR, rules)
    assert second.flip.event is AlertEvent.REMINDER
    assert states.next_deadline(second.state, rules) is None


def test_a_late_tick_sends_one_reminder_not_a_burst():
    rules = Rules(repeat=3600)
    down = states.on_ping(up_since(NOW, rules), ping(PingKind.FAIL, NOW), rules).state
    step = tick(down, NOW + 5 * HOUR + MIN, rules)
    assert step.flip.event is AlertEvent.REMINDER
    assert step.state.next_reminder_at == NOW + 6 * HOUR
    assert tick(step.state, NOW + 5 * HOUR + 2 * MIN, rules).flip is None


def test_no_reminders_without_repeat():
    down = states.on_ping(up_since(NOW), ping(PingKind.FAIL, NOW), HOURLY).state
    assert states.next_deadline(down, HOURLY) is None


def test_a_deadline_passed_while_stopped_moves_to_startup_plus_grace():
    state = up_since(NOW)
    restarted = NOW + 3 * HOUR
    recovered = states.on_startup(state, HOURLY, restarted)
    assert states.down_at(recovered, HOURLY) == restarted + 5 * MIN
    assert tick(recovered, restarted + 4 * MIN).state.status is Status.LATE
    step = tick(recovered, restarted + 5 * MIN)
    assert step.state.status is Status.DOWN
    assert step.flip.at == restarted + 5 * MIN


def test_a_deadline_still_ahead_is_untouched_by_startup():
    state = up_since(NOW)
    assert states.on_startup(state, HOURLY, NOW + 10 * MIN) == state


def test_a_monitor_already_down_stays_down_without_a_second_alert_after_startup():
    rules = Rules(repeat=3600)
    down = states.on_ping(up_since(NOW, rules), ping(PingKind.FAIL, NOW), rules).state
    recovered = states.on_startup(down, rules, NOW + 10 * HOUR + MIN)
    assert recovered.status is Status.DOWN
    assert recovered.next_reminder_at == NOW + 11 * HOUR


def test_a_changed_schedule_recomputes_the_deadline_from_the_last_success():
    state = up_since(NOW)
    daily = Rules(schedule=Schedule(period=86400))
    assert states.on_rules_changed(state, daily).expected_at == NOW + timedelta(days=1)


def test_cron_monitor_is_expected_at_the_next_tick_in_its_timezone():
    rules = Rules(schedule=Schedule(cron="0 2 * * *", timezone="Europe/Riga"))
    state = up_since(datetime(2026, 1, 14, 0, 5, tzinfo=timezone.utc), rules)
    # 02:00 in Riga (UTC+2 in winter) is 00:00 UTC.
    assert state.expected_at == datetime(2026, 1, 15, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("last_success", "expected"),
    [
        # Riga springs forward on 2026-03-29, 03:00 -> 04:00 local: 03:30 does
        # not exist that night, so the job is expected at 04:00 EEST.
        ("2026-03-28T01:30:00+00:00", "2026-03-29T01:00:00+00:00"),
        # The night after, 03:30 EEST is 00:30 UTC.
        ("2026-03-29T01:30:00+00:00", "2026-03-30T00:30:00+00:00"),
        # Riga falls back on 2026-10-25, 04:00 -> 03:00 local: 03:30 happens
        # twice, and the job is expected once, at the first.
        ("2026-10-24T00:30:00+00:00", "2026-10-25T00:30:00+00:00"),
        ("2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"),
    ],
    ids=["into-the-gap", "after-spring-forward", "into-the-fold", "after-the-fold"],
)
def test_cron_deadlines_follow_dst_changes(last_success, expected):
    rules = Rules(schedule=Schedule(cron="30 3 * * *", timezone="Europe/Riga"))
    state = up_since(datetime.fromisoformat(last_success), rules)
    assert state.expected_at.isoformat() == expected
    # Down exactly grace after that tick, across the change.
    down = tick(state, state.expected_at + 5 * MIN, rules)
    assert down.flip.at == datetime.fromisoformat(expected) + 5 * MIN
