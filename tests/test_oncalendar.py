"""OnCalendar schedules: heartbeatd's next expected times against systemd's own
(`systemd-analyze calendar`), across DST changes, and the config's checks.

systemd 252 has no --base-time: it counts from the real now. Expressions
without a year are compared from systemd's first elapse on (the second one
onwards must match exactly), and the DST cases pin a future year, so neither
side depends on when the test runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeatd.schedule import Schedule, ScheduleError, oncalendar_problem

UTC = timezone.utc
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
ITERATIONS = 12

# (expression, the monitor's time zone): systemd's grammar as users write it
# in timer units.
EVERYDAY = [
    ("daily", "UTC"),
    ("weekly", "Europe/Riga"),
    ("monthly", "America/New_York"),
    ("quarterly", "Europe/Riga"),
    ("semiannually", "UTC"),
    ("yearly", "Australia/Lord_Howe"),
    ("hourly", "Asia/Kolkata"),
    ("minutely", "UTC"),
    ("Mon..Fri *-*-* 09:00", "Europe/Riga"),
    ("Mon..Fri 09:00", "America/New_York"),
    ("Sat,Sun 10:30", "Europe/Riga"),
    ("*-*-* 02:00:00", "Europe/Riga"),
    ("*-*-* 03:30", "Europe/Riga"),
    ("*:0/15", "UTC"),
    ("*:00/20:30", "Asia/Kathmandu"),
    ("*-*~1 12:00", "Europe/Riga"),
    ("*-*~07/1 04:00", "UTC"),
    ("*-02~03 08:00", "America/New_York"),
    ("Mon *-*-1..7 05:00", "Europe/Riga"),
    ("*-02-29 12:00", "UTC"),
    ("*-01,04,07,10-01 00:00:00", "Europe/Riga"),
    ("Fri *-*-13 13:13", "America/New_York"),
    ("*-*-* 8..18:00", "Europe/Berlin"),
    ("*-*-* 01,13:05:07", "UTC"),
    ("Tue..Thu 23:59:59", "Australia/Lord_Howe"),
    # A zone in the expression wins over the monitor's, as in a timer unit.
    ("*-*-* 12:00 Asia/Tokyo", "Europe/Riga"),
    ("Mon 09:00 America/New_York", "Europe/London"),
]

# Days with a DST change in 2031, every half hour (and a few fixed times)
# through the gap or the fold.
DST = [
    ("2031-03-30 *:00,30", "Europe/Riga"),
    ("2031-10-26 *:00,30", "Europe/Riga"),
    ("2031-03-29..31 03:30", "Europe/Riga"),
    ("2031-10-25..27 03:30", "Europe/Riga"),
    ("2031-03-09 *:00/20", "America/New_York"),
    ("2031-11-02 *:00/20", "America/New_York"),
    ("2031-11-01..03 01:30", "America/New_York"),
    ("2031-04-06 *:00,15,30,45", "Australia/Lord_Howe"),
    ("2031-10-05 *:00,15,30,45", "Australia/Lord_Howe"),
    ("2031-03-30 03:00,30 Europe/Riga", "UTC"),
    ("2031-10-26 03:00,30 Europe/Riga", "UTC"),
]

_UTC_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$")


def systemd_elapses(expr: str, zone: str, iterations: int) -> list[datetime]:
    """The next `iterations` elapses systemd computes, in UTC."""
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", f"--iterations={iterations}", expr],
        env={"TZ": zone, "LC_ALL": "C.UTF-8", "SYSTEMD_COLORS": "0"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    found = []
    for line in out.splitlines():
        # With TZ=UTC the elapse line itself is in UTC; otherwise the "(in UTC)" line is.
        match = _UTC_TIME.search(line.strip())
        if match:
            found.append(datetime.fromisoformat(match[1]).replace(tzinfo=UTC))
    return found


def ours(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        after = schedule.next_after(after)
        found.append(after)
    return found


needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (it is on Debian)"
)


@needs_systemd
@pytest.mark.parametrize(("expr", "zone"), EVERYDAY, ids=[f"{e} {z}" for e, z in EVERYDAY])
def test_it_agrees_with_systemd(expr: str, zone: str) -> None:
    theirs = systemd_elapses(expr, zone, ITERATIONS)
    assert len(theirs) == ITERATIONS
    schedule = Schedule(oncalendar=(expr,), timezone=zone)
    # From just before systemd's first elapse: all of them must match.
    assert ours(schedule, theirs[0] - timedelta(seconds=1), ITERATIONS) == theirs


@needs_systemd
@pytest.mark.parametrize(("expr", "zone"), DST, ids=[f"{e} {z}" for e, z in DST])
def test_it_agrees_with_systemd_across_dst_changes(expr: str, zone: str) -> None:
    theirs = systemd_elapses(expr, zone, 200)
    assert len(theirs) < 200, "the expression ends within the day(s) it names"
    schedule = Schedule(oncalendar=(expr,), timezone=zone)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert ours(schedule, start, len(theirs)) == theirs
    # And after its last elapse (a time wholly in a gap has none) it never
    # fires again, for either.
    with pytest.raises(ScheduleError):
        schedule.next_after(theirs[-1] if theirs else start)


@needs_systemd
def test_a_list_fires_whenever_any_expression_does() -> None:
    exprs = ("Mon..Fri 09:00", "Sat,Sun 11:30")
    merged = sorted(
        set(
            systemd_elapses(exprs[0], "Europe/Riga", 20)
            + systemd_elapses(exprs[1], "Europe/Riga", 20)
        )
    )
    schedule = Schedule(oncalendar=exprs, timezone="Europe/Riga")
    # Both lists run 20 ticks from now; the first 10 merged are surely complete.
    assert ours(schedule, merged[0] - timedelta(seconds=1), 10) == merged[:10]


# -- without systemd ----------------------------------------------------------------


def test_a_day_step_crosses_the_new_year() -> None:
    # Days 1, 8, 15, 22 and 29 of every month. systemd 252 (Debian 12)
    # skips 1 January after 29 December for this expression, though not
    # 1 February after 29 January: a quirk of its year roll-over, left out of
    # the comparison above. heartbeatd expects the 1st, as the expression says.
    schedule = Schedule(oncalendar=("*-*-1/7 06:00",), timezone="UTC")
    after = datetime(2026, 12, 29, 6, 0, tzinfo=UTC)
    assert ours(schedule, after, 3) == [
        datetime(2027, 1, 1, 6, 0, tzinfo=UTC),
        datetime(2027, 1, 8, 6, 0, tzinfo=UTC),
        datetime(2027, 1, 15, 6, 0, tzinfo=UTC),
    ]


NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)


def test_it_reads_the_expression_in_the_monitors_zone() -> None:
    riga = Schedule(oncalendar=("Mon..Fri 09:00",), timezone="Europe/Riga")
    # Wednesday 14 January, 09:00 in Riga is 07:00 UTC; after noon: Thursday.
    assert riga.next_after(NOW) == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)


def test_several_cron_expressions_expect_the_earliest_next_tick() -> None:
    both = Schedule(cron=("0 2 * * *", "30 14 * * 1-5"), timezone="UTC")
    assert ours(both, NOW, 4) == [
        datetime(2026, 1, 14, 14, 30, tzinfo=UTC),
        datetime(2026, 1, 15, 2, 0, tzinfo=UTC),
        datetime(2026, 1, 15, 14, 30, tzinfo=UTC),
        datetime(2026, 1, 16, 2, 0, tzinfo=UTC),
    ]


def test_it_describes_itself() -> None:
    assert Schedule(oncalendar=("daily", "Sat 12:00"), timezone="Europe/Riga").describe() == (
        "OnCalendar daily; Sat 12:00 (Europe/Riga)"
    )
    assert Schedule(cron=("0 2 * * *", "30 14 * * 1-5"), early=120).describe() == (
        "cron 0 2 * * *; 30 14 * * 1-5 (UTC, early 2m)"
    )


def test_it_needs_exactly_one_kind_of_schedule() -> None:
    with pytest.raises(ValueError, match="exactly one of period, cron or oncalendar"):
        Schedule(cron="0 2 * * *", oncalendar=("daily",))
    with pytest.raises(ValueError, match="early needs a cron or OnCalendar schedule"):
        Schedule(period=60, early=10)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("Mon..Fri 25:00", 'bad hour in OnCalendar expression "Mon..Fri 25:00"'),
        ("Funday 09:00", 'bad day-of-week in OnCalendar expression "Funday 09:00"'),
        ("*-13-01", 'bad month in OnCalendar expression "*-13-01"'),
        ("*-*-* 12:61", 'bad minute in OnCalendar expression "*-*-* 12:61"'),
        (
            "2024-01-01 00:00",
            'OnCalendar expression "2024-01-01 00:00" stops firing;'
            " a monitor needs one that repeats",
        ),
        ("", 'expected one OnCalendar expression like "Mon..Fri *-*-* 09:00", got ""'),
    ],
)
def test_it_names_what_is_wrong(expr: str, message: str) -> None:
    assert oncalendar_problem(expr) == message


@pytest.mark.parametrize("expr", [e for e, _ in EVERYDAY])
def test_it_accepts_what_systemd_accepts(expr: str) -> None:
    assert oncalendar_problem(expr) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789*-~.,/: MonTueFriSatdailywkEurop/Riga", max_size=30))
def test_oncalendar_problem_never_raises(expr: str) -> None:
    problem = oncalendar_problem(expr)
    assert problem is None or "OnCalendar expression" in problem
