"""Maintenance windows: when one is open, how the policy holds alerts in it
and judges them at its end, the [maintenance.<name>] config, and the API."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from heartbeatd import policy
from heartbeatd.config import ConfigError, load_config
from heartbeatd.model import AlertEvent, AlertState, PingKind, Status
from heartbeatd.schedule import Schedule
from heartbeatd.windows import Window
from tests.harness import open_stack
from tests.test_policy import HOUR, MIN, Monitor, Rules

UTC = timezone.utc
# Sunday 2026-01-18, 03:00 in Riga (UTC+2 in winter) is 01:00 UTC.
SUNDAY_03_RIGA = datetime(2026, 1, 18, 1, 0, tzinfo=UTC)
PATCHING = Window(
    "sunday-patching",
    Schedule(cron="0 3 * * sun", timezone="Europe/Riga"),
    2 * 3600,
    monitors=("db-backup",),
)


@pytest.mark.parametrize(
    ("at", "span"),
    [
        (SUNDAY_03_RIGA - timedelta(seconds=1), None),
        (SUNDAY_03_RIGA, (SUNDAY_03_RIGA, SUNDAY_03_RIGA + 2 * HOUR)),
        (SUNDAY_03_RIGA + 119 * MIN, (SUNDAY_03_RIGA, SUNDAY_03_RIGA + 2 * HOUR)),
        (SUNDAY_03_RIGA + 2 * HOUR, None),
        (SUNDAY_03_RIGA + timedelta(days=3), None),
    ],
    ids=["just-before", "at-start", "inside", "at-end", "midweek"],
)
def test_a_window_is_open_from_each_start_for_its_duration(at, span):
    assert PATCHING.span_at(at) == span


def test_in_summer_the_same_window_opens_an_hour_earlier_in_utc():
    # 2026-07-19 is a Sunday; Riga is UTC+3 in summer.
    start = datetime(2026, 7, 19, 0, 0, tzinfo=UTC)
    assert PATCHING.span_at(start + MIN) == (start, start + 2 * HOUR)


# -- the hold ----------------------------------------------------------------------

START = SUNDAY_03_RIGA
RULES = Rules(windows=(PATCHING,))


def test_a_down_inside_a_window_alerts_once_at_its_end():
    m = Monitor.up_at(START - 10 * MIN, RULES)
    m.ping(PingKind.FAIL, START + 10 * MIN)
    assert m.flips[-1].held_by == "maintenance:sunday-patching"
    assert policy.held_by(m.state, m.rules, m.at) == "maintenance:sunday-patching"
    m.run_until(START + 2 * HOUR - timedelta(seconds=1))
    assert m.events() == []
    m.run_until(START + 3 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, START + 2 * HOUR)]
    assert m.state.alert is AlertState.ALERTING and m.state.held_until is None


def test_down_and_back_inside_a_window_sends_nothing():
    m = Monitor.up_at(START - 10 * MIN, RULES)
    m.ping(PingKind.FAIL, START + 10 * MIN)
    m.ping(PingKind.SUCCESS, START + 30 * MIN)
    m.ping(PingKind.SUCCESS, START + 90 * MIN)
    m.run_until(START + 2 * HOUR + MIN)
    assert m.events() == []
    assert m.state.status is Status.UP


def test_a_missed_deadline_inside_a_window_is_held_too():
    m = Monitor.up_at(START - 10 * MIN, RULES)
    # Expected at 01:50, down at 01:55 UTC, inside the window.
    m.run_until(START + 2 * HOUR + MIN)
    assert m.flips[0].held_by == "maintenance:sunday-patching"
    assert m.events() == [(AlertEvent.DOWN, START + 2 * HOUR)]


def test_a_snooze_past_the_window_holds_until_it_ends():
    m = Monitor.up_at(START - 10 * MIN, RULES)
    m.ping(PingKind.FAIL, START + 10 * MIN)
    m.state = policy.snooze(m.state, START + 3 * HOUR, "")
    m.run_until(START + 3 * HOUR - timedelta(seconds=1))
    assert m.events() == []
    m.run_until(START + 4 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, START + 3 * HOUR)]


# -- config ------------------------------------------------------------------------

FILE = "heartbeatd.toml"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str):
    Path(FILE).write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(Path(FILE))


MONITORS = """
[monitors.db-backup]
period = "1d"

[monitors.web]
period = "1h"
"""


def test_it_reads_a_window_and_hands_it_to_the_monitors_it_selects(in_tmp):
    config = load(
        MONITORS
        + """
        [maintenance.sunday-patching]
        schedule = "0 3 * * sun"
        duration = "2h"
        timezone = "Europe/Riga"
        monitors = ["db-backup"]

        [maintenance.all]
        schedule = "0 4 1 * *"
        duration = "30m"
        monitors = ["*"]
        """
    )
    assert config.maintenance["sunday-patching"] == PATCHING
    assert [w.name for w in config.monitors["db-backup"].windows] == ["sunday-patching", "all"]
    assert [w.name for w in config.monitors["web"].windows] == ["all"]
    assert config.maintenance["all"].schedule.timezone == "UTC"


def test_a_bad_window_is_a_config_error_naming_each_key(in_tmp):
    with pytest.raises(ConfigError) as caught:
        load(
            MONITORS
            + """
            [maintenance.oops]
            schedule = "0 3 * *"
            duration = "2 hours"
            monitors = ["db-bakup"]
            """
        )
    assert caught.value.problems == [
        f"{FILE}: maintenance.oops.schedule: expected a cron expression of 5 fields, got '0 3 * *'",
        f'{FILE}: maintenance.oops.duration: expected a duration like "30s", "5m" or'
        ' "1h30m", got "2 hours"',
        f'{FILE}: maintenance.oops.monitors: no monitor named "db-bakup" in [monitors]',
    ]


def test_a_window_that_selects_nothing_is_a_config_error(in_tmp):
    with pytest.raises(ConfigError) as caught:
        load(MONITORS + '[maintenance.x]\nschedule = "0 3 * * *"\nduration = "1h"\n')
    assert caught.value.problems == [
        f'{FILE}: maintenance.x: needs monitors (slugs, or ["*"] for all) or tags'
    ]


# -- the API -----------------------------------------------------------------------


async def test_the_api_lists_windows_and_whether_each_is_open(tmp_path, aiohttp_client, clock):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(
        '[storage]\npath = "hb.db"\n[monitors.db-backup]\nperiod = "1d"\n'
        '[maintenance.always]\nschedule = "* * * * *"\nduration = "1m"\nmonitors = ["*"]\n'
    )
    stack = await open_stack(path, clock)
    try:
        client = await aiohttp_client(stack.app())
        answer = await (await client.get("/api/v1/maintenance")).json()
        [window] = answer["maintenance"]
        assert {k: window[k] for k in ("name", "schedule", "duration", "open", "selected")} == {
            "name": "always",
            "schedule": "* * * * *",
            "duration": 60,
            "open": True,
            "selected": ["db-backup"],
        }
        stack.engine.tick(clock.now())
        shown = await (await client.get("/api/v1/monitors/db-backup")).json()
        assert shown["maintenance"] == "always"
        page = await (await client.get("/monitors/db-backup")).text()
        assert "Maintenance window always is open" in page
        metrics = await (await client.get("/metrics")).text()
        assert 'heartbeatd_monitor_held{monitor="db-backup",name="db-backup"} 1' in metrics
    finally:
        await stack.store.close()


def test_a_window_selects_monitors_by_tag(in_tmp):
    config = load(
        """
        [monitors.db-1]
        period = "1h"
        tags = ["db"]

        [monitors.db-2]
        period = "1h"
        tags = ["db", "prod"]

        [monitors.web]
        period = "1h"
        tags = ["web"]

        [maintenance.db-patching]
        schedule = "0 3 * * sun"
        duration = "1h"
        tags = ["db"]
        monitors = ["web"]
        """
    )
    assert {slug: [w.name for w in m.windows] for slug, m in config.monitors.items()} == {
        "db-1": ["db-patching"],
        "db-2": ["db-patching"],
        "web": ["db-patching"],
    }
