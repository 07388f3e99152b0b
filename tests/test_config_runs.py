"""[monitors.<slug>] keys for OnCalendar and several schedules, early pings,
run rules and ping filters: what they read as, and every error in full."""

from __future__ import annotations

import pytest

from heartbeatd.keywords import PingFilter
from heartbeatd.schedule import Schedule
from tests.test_config import FILE, HINT, in_tmp, load, problems, registry

__all__ = ["in_tmp", "registry"]


def test_it_reads_an_oncalendar_schedule_in_the_monitors_zone() -> None:
    config = load(
        """
        [monitors.backup]
        oncalendar = "Mon..Fri  *-*-* 09:00"
        timezone = "Europe/Riga"
        early = "2m"
        """
    )
    assert config.monitors["backup"].schedule == Schedule(
        oncalendar=("Mon..Fri *-*-* 09:00",), timezone="Europe/Riga", early=120
    )


def test_it_reads_lists_of_expressions() -> None:
    config = load(
        """
        [defaults]
        timezone = "Europe/Riga"

        [monitors.timer]
        oncalendar = ["daily", "Sat 12:00"]

        [monitors.cron]
        schedule = ["0 2 * * *", "30 14 * * 1-5"]

        [monitors.single]
        schedule = ["0 2 * * *"]
        """
    )
    monitors = config.monitors
    assert monitors["timer"].schedule == Schedule(
        oncalendar=("daily", "Sat 12:00"), timezone="Europe/Riga"
    )
    assert monitors["cron"].schedule == Schedule(
        cron=("0 2 * * *", "30 14 * * 1-5"), timezone="Europe/Riga"
    )
    # A list of one is the same schedule as the expression on its own.
    assert monitors["single"].schedule == Schedule(cron="0 2 * * *", timezone="Europe/Riga")


def test_it_reads_the_run_rules_and_the_ping_filter() -> None:
    monitor = load(
        """
        [monitors.backup]
        period = "1d"
        min_runtime = "30s"
        max_concurrent = 1
        runtime_anomaly = 2.5
        failure_keywords = ["ERROR", "FATAL"]
        success_keywords = "Backup complete"
        start_keywords = ["Starting"]
        keywords_default = "fail"
        methods = "post"
        """
    ).monitors["backup"]
    assert (monitor.min_runtime, monitor.max_concurrent, monitor.runtime_anomaly) == (30, 1, 2.5)
    assert monitor.ping_filter == PingFilter(
        failure=("ERROR", "FATAL"),
        success=("Backup complete",),
        start=("Starting",),
        default_fail=True,
        post_only=True,
    )


def test_without_the_new_keys_nothing_changes() -> None:
    monitor = load('[monitors.backup]\nperiod = "1d"\n').monitors["backup"]
    assert (monitor.min_runtime, monitor.max_concurrent, monitor.runtime_anomaly) == (
        None,
        None,
        None,
    )
    assert monitor.ping_filter is None
    assert monitor.schedule.early == 0


BAD = [
    pytest.param(
        """
        [monitors.backup]
        schedule = "0 2 * * *"
        oncalendar = "daily"
        """,
        [
            f"{FILE}: monitors.backup.oncalendar: give only one of period, schedule and"
            " oncalendar (got schedule and oncalendar)"
        ],
        id="schedule-and-oncalendar",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1h"
        schedule = "0 2 * * *"
        oncalendar = "daily"
        """,
        [
            f"{FILE}: monitors.backup.oncalendar: give only one of period, schedule and"
            " oncalendar (got period and schedule and oncalendar)"
        ],
        id="all-three",
    ),
    pytest.param(
        """
        [monitors.backup]
        oncalendar = "Mon..Fri 25:00"
        """,
        [f'{FILE}: monitors.backup.oncalendar: bad hour in OnCalendar expression "Mon..Fri 25:00"'],
        id="bad-oncalendar",
    ),
    pytest.param(
        """
        [monitors.backup]
        oncalendar = ["daily", "Funday 09:00"]
        """,
        [
            f"{FILE}: monitors.backup.oncalendar[1]: bad day-of-week in OnCalendar"
            ' expression "Funday 09:00"'
        ],
        id="bad-oncalendar-in-a-list",
    ),
    pytest.param(
        """
        [monitors.backup]
        schedule = ["0 2 * * *", "61 * * * *"]
        """,
        [f'{FILE}: monitors.backup.schedule[1]: bad minute in cron expression "61 * * * *"'],
        id="bad-cron-in-a-list",
    ),
    pytest.param(
        """
        [monitors.backup]
        oncalendar = []
        """,
        [
            f"{FILE}: monitors.backup.oncalendar: expected at least one expression,"
            " got an empty list"
        ],
        id="empty-list",
    ),
    pytest.param(
        """
        [monitors.backup]
        oncalendar = "2024-05-01 03:00"
        """,
        [
            f'{FILE}: monitors.backup.oncalendar: OnCalendar expression "2024-05-01 03:00"'
            " stops firing; a monitor needs one that repeats"
        ],
        id="one-shot",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1h"
        early = "2m"
        """,
        [
            f"{FILE}: monitors.backup.early: needs schedule or oncalendar:"
            " a period has no scheduled times"
        ],
        id="early-with-period",
    ),
    pytest.param(
        """
        [monitors.backup]
        schedule = "0 2 * * *"
        early = "2 min"
        """,
        [f'{FILE}: monitors.backup.early: {HINT}, got "2 min"'],
        id="bad-early",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1d"
        min_runtime = 0.5
        max_concurrent = 0
        runtime_anomaly = 1
        """,
        [
            f"{FILE}: monitors.backup.min_runtime: {HINT}, got 0.5",
            f"{FILE}: monitors.backup.max_concurrent: expected a number from 1 to 1000, got 0",
            f"{FILE}: monitors.backup.runtime_anomaly: expected a factor greater than 1 like 3"
            " (a run 3 times longer or shorter than usual), got 1",
        ],
        id="bad-run-rules",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1d"
        failure_keywords = ["ERROR", ""]
        success_keywords = [1]
        keywords_default = "success"
        methods = "get"
        """,
        [
            f"{FILE}: monitors.backup.failure_keywords: expected keywords that are not empty,"
            ' got ""',
            f"{FILE}: monitors.backup.success_keywords: expected a list of strings, got [1]",
            f'{FILE}: monitors.backup.keywords_default: expected one of "ignore", "fail",'
            ' got "success"',
            f'{FILE}: monitors.backup.methods: expected one of "any", "post", got "get"',
        ],
        id="bad-filters",
    ),
]


@pytest.mark.parametrize("value", ["true", '"3"', "nan", "1000"])
def test_a_runtime_anomaly_factor_is_a_number_above_1(value: str) -> None:
    [line] = problems(f'[monitors.backup]\nperiod = "1d"\nruntime_anomaly = {value}\n')
    assert line.startswith(f"{FILE}: monitors.backup.runtime_anomaly: expected a factor greater")


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_it_reports_bad_keys_in_full(text: str, expected: list[str]) -> None:
    assert problems(text) == expected
