from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.schedule import Schedule, cron_problem, timezone_problem

UTC = timezone.utc
NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ticks(schedule: Schedule, after: datetime, n: int) -> list[str]:
    """The next `n` expected times as ISO strings in UTC."""
    out = []
    for _ in range(n):
        after = schedule.next_after(after)
        out.append(after.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def test_it_expects_a_period_schedule_one_period_after_the_ping() -> None:
    schedule = Schedule(period=5400)
    assert schedule.next_after(NOW) == NOW + timedelta(hours=1, minutes=30)


def test_it_returns_utc_for_a_ping_in_another_offset() -> None:
    plus_two = timezone(timedelta(hours=2))
    after = datetime(2026, 1, 14, 14, 0, tzinfo=plus_two)
    assert Schedule(period=60).next_after(after) == utc("2026-01-14T12:01:00")
    assert Schedule(period=60).next_after(after).tzinfo == UTC


def test_it_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule(period=60).next_after(datetime(2026, 1, 14, 12, 0))


def test_it_needs_exactly_one_of_period_and_cron() -> None:
    with pytest.raises(ValueError):
        Schedule()
    with pytest.raises(ValueError):
        Schedule(period=60, cron="* * * * *")


def test_it_finds_the_next_hourly_tick() -> None:
    schedule = Schedule(cron="0 * * * *")
    assert ticks(schedule, utc("2026-01-14T12:00:00"), 2) == [
        "2026-01-14T13:00:00Z",
        "2026-01-14T14:00:00Z",
    ]


def test_it_finds_a_tick_strictly_after_a_time_between_seconds() -> None:
    schedule = Schedule(cron="0 * * * *")
    assert schedule.next_after(utc("2026-01-14T12:59:59.500000")) == utc("2026-01-14T13:00:00")
    assert schedule.next_after(utc("2026-01-14T13:00:00.500000")) == utc("2026-01-14T14:00:00")


def test_it_finds_a_daily_tick_in_the_monitors_zone() -> None:
    # 02:00 in Riga is 00:00 UTC in winter (EET, +2).
    schedule = Schedule(cron="0 2 * * *", timezone="Europe/Riga")
    assert ticks(schedule, NOW, 2) == ["2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z"]


# Europe/London in 2026: 01:00 GMT -> 02:00 BST on 29 March,
# 02:00 BST -> 01:00 GMT on 25 October.
# Europe/Riga in 2026: 03:00 EET -> 04:00 EEST on 29 March,
# 04:00 EEST -> 03:00 EET on 25 October.
DST_CASES = [
    pytest.param(
        "30 1 * * *",
        "Europe/London",
        "2026-03-27T12:00:00",
        # 01:30 does not exist on the 29th: the job runs at 02:00 BST instead.
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        id="london-spring-gap",
    ),
    pytest.param(
        "30 1 * * *",
        "Europe/London",
        "2026-10-23T12:00:00",
        # 01:30 happens twice on the 25th: the job runs once, the first time.
        ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        id="london-autumn-fold",
    ),
    pytest.param(
        "30 3 * * *",
        "Europe/Riga",
        "2026-03-27T12:00:00",
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        id="riga-spring-gap",
    ),
    pytest.param(
        "30 3 * * *",
        "Europe/Riga",
        "2026-10-23T12:00:00",
        ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        id="riga-autumn-fold",
    ),
    pytest.param(
        "30 2 * * *",
        "Europe/Riga",
        "2026-03-27T12:00:00",
        # Away from the change hour only the offset moves, after the change.
        ["2026-03-28T00:30:00Z", "2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z"],
        id="riga-spring-outside-the-gap",
    ),
    pytest.param(
        "0 * * * *",
        "Europe/Riga",
        "2026-10-24T23:30:00",
        # Hourly jobs run every real hour, including both 03:00s.
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z",
        ],
        id="riga-hourly-through-the-fold",
    ),
    pytest.param(
        "0 * * * *",
        "Europe/Riga",
        "2026-03-28T23:30:00",
        ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"],
        id="riga-hourly-through-the-gap",
    ),
]


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), DST_CASES)
def test_it_handles_dst_changes(expr: str, zone: str, after: str, expected: list[str]) -> None:
    schedule = Schedule(cron=expr, timezone=zone)
    assert ticks(schedule, utc(after), len(expected)) == expected


def test_it_does_not_go_back_into_the_fold() -> None:
    # 01:00 UTC on 25 October is 01:00 GMT in London, the second pass through
    # 01:00-02:00; the 01:30 BST tick (00:30 UTC) is already behind us.
    schedule = Schedule(cron="30 1 * * *", timezone="Europe/London")
    assert ticks(schedule, utc("2026-10-25T01:00:00"), 1) == ["2026-10-26T01:30:00Z"]


def test_it_describes_itself() -> None:
    assert Schedule(period=5400).describe() == "every 1h30m"
    assert Schedule(period=86400).describe() == "every 1d"
    described = Schedule(cron="0 2 * * *", timezone="Europe/Riga").describe()
    assert described == "cron 0 2 * * * (Europe/Riga)"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        pytest.param("0 2 * * 8", 'bad day-of-week in cron expression "0 2 * * 8"', id="dow"),
        pytest.param("61 * * * *", 'bad minute in cron expression "61 * * * *"', id="minute"),
        pytest.param("0 24 * * *", 'bad hour in cron expression "0 24 * * *"', id="hour"),
        pytest.param("0 0 0 * *", 'bad day-of-month in cron expression "0 0 0 * *"', id="dom"),
        pytest.param("0 0 * 13 *", 'bad month in cron expression "0 0 * 13 *"', id="month"),
        pytest.param("0 0 30 2 *", 'bad day-of-month in cron expression "0 0 30 2 *"', id="never"),
        pytest.param(
            "* * * *",
            "expected a cron expression of 5 fields (minute hour day-of-month month"
            ' day-of-week), got 4 in "* * * *"',
            id="four-fields",
        ),
        pytest.param(
            "0 0 2 * * *",
            "expected a cron expression of 5 fields (minute hour day-of-month month"
            ' day-of-week), got 6 in "0 0 2 * * *"',
            id="seconds-field",
        ),
    ],
)
def test_it_names_the_bad_cron_field(expr: str, message: str) -> None:
    assert cron_problem(expr) == message


@pytest.mark.parametrize(
    "expr", ["* * * * *", "0 2 * * *", "*/15 9-17 * * MON-FRI", "0 0 L * *", "0 0 * * 5L"]
)
def test_it_accepts_valid_cron(expr: str) -> None:
    assert cron_problem(expr) is None


@pytest.mark.parametrize(
    "name", ["Europe/Nowhere", "europe/riga", "Europe", "", "../etc/passwd", "/etc/localtime"]
)
def test_it_rejects_unknown_time_zones(name: str) -> None:
    expected = f'unknown time zone "{name}"; expected an IANA name like "Europe/Riga" or "UTC"'
    assert timezone_problem(name) == expected


def test_it_accepts_iana_time_zones() -> None:
    assert timezone_problem("Europe/Riga") is None
    assert timezone_problem("UTC") is None


# Expressions that fire at least once a year, in zones with unusual changes:
# Lord Howe moves by 30 minutes, Kathmandu has a 45-minute offset.
SAMPLE_CRONS = [
    "* * * * *",
    "*/7 * * * *",
    "0 * * * *",
    "30 1 * * *",
    "30 2 * * *",
    "0 0 * * 0",
    "15 3 * * MON-FRI",
    "0 0 1 * *",
    "0 0 31 * *",
    "0 0 L * *",
    "0 12 * * 5L",
    "0 0 1 1 *",
    "59 23 31 12 *",
]
ZONES = ["UTC", "Europe/Riga", "Europe/London", "America/New_York", "Australia/Lord_Howe"]
ZONES += ["Asia/Kathmandu", "America/Sao_Paulo"]
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)


@given(after=times, expr=st.sampled_from(SAMPLE_CRONS), zone=st.sampled_from(ZONES))
def test_a_cron_tick_is_later_and_within_a_year(after: datetime, expr: str, zone: str) -> None:
    expected = Schedule(cron=expr, timezone=zone).next_after(after)
    assert after < expected <= after + timedelta(days=366, hours=3)
    assert expected.tzinfo == UTC


@given(after=times, period=st.integers(min_value=1, max_value=10 * 365 * 86400))
def test_a_period_tick_is_exactly_one_period_later(after: datetime, period: int) -> None:
    assert Schedule(period=period).next_after(after) - after == timedelta(seconds=period)


@given(st.text(alphabet="0123456789*/,-LW#? ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=30))
def test_cron_problem_never_raises(expr: str) -> None:
    problem = cron_problem(expr)
    if problem is None:
        Schedule(cron=expr).next_after(NOW)
