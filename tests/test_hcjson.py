"""Healthchecks' JSON shapes of heartbeatd's monitors: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from heartbeatd import hcjson
from heartbeatd.config import Monitor
from heartbeatd.model import Status
from heartbeatd.schedule import Schedule
from heartbeatd.views import MonitorView
from tests.samples import NOW

UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
MONITOR = Monitor(
    slug="backup",
    name="Backup",
    schedule=Schedule(period=3600),
    grace=300,
    max_runtime=300,
    channels=("ops",),
    uuid=UUID,
    tags=("db", "prod"),
)
VIEW = MonitorView(
    slug="backup",
    name="Backup",
    description="",
    status=Status.UP,
    reason=None,
    schedule="every 1h",
    grace=300,
    started_at=None,
    last_ping=NOW + timedelta(microseconds=250),
    last_success=NOW,
    last_exit_status=None,
    expected_at=NOW + timedelta(hours=1),
    down_at=None,
    n_pings=3,
    last_duration=12.7,
    channels=("ops",),
    uuid=UUID,
    ping_url=f"https://hb/ping/{UUID}",
)


def shape(view=VIEW, monitor=MONITOR, **kwargs):
    kwargs.setdefault("version", 3)
    kwargs.setdefault("readonly", False)
    return hcjson.check_to_dict(
        view, monitor, api_url="https://hb/api/v3/", badge_url="https://hb/badge/b.svg", **kwargs
    )


@pytest.mark.parametrize(
    ("status", "started", "version", "expected"),
    [
        (Status.NEW, False, 3, "new"),
        (Status.UP, False, 3, "up"),
        (Status.LATE, False, 3, "grace"),
        (Status.DOWN, False, 3, "down"),
        (Status.PAUSED, False, 3, "paused"),
        (Status.UP, True, 1, "started"),
        (Status.UP, True, 2, "up"),
        (Status.DOWN, True, 1, "down"),
    ],
    ids=["new", "up", "late", "down", "paused", "started-v1", "started-v2", "down-v1"],
)
def test_it_maps_statuses_as_healthchecks_names_them(status, started, version, expected):
    view = replace(VIEW, status=status, started_at=NOW if started else None)
    assert hcjson.hc_status(view, version) == expected
    assert shape(view, version=version)["started"] is started


def test_a_read_write_check_has_the_urls_and_times_of_healthchecks():
    data = shape()
    assert data["uuid"] == UUID
    assert data["tags"] == "db prod"
    assert data["last_ping"] == "2026-01-14T12:00:00+00:00"
    assert data["next_ping"] == "2026-01-14T13:00:00+00:00"
    assert data["last_duration"] == 12
    assert data["timeout"] == 3600 and "schedule" not in data
    assert data["update_url"] == f"https://hb/api/v3/checks/{UUID}"
    assert data["pause_url"] == f"https://hb/api/v3/checks/{UUID}/pause"
    assert data["resume_url"] == f"https://hb/api/v3/checks/{UUID}/resume"
    assert data["channels"] == hcjson.channel_id("ops")


def test_a_read_only_check_hides_the_uuid_behind_healthchecks_unique_key():
    data = shape(readonly=True)
    # SHA-1 of the first 16 hex digits of the uuid, as Healthchecks computes it.
    assert data["unique_key"] == "a5900ade00d8ff641b5cfa07755377240c02cde4"
    assert not {"uuid", "ping_url", "update_url", "channels"} & set(data)


def test_a_cron_check_has_schedule_and_tz_and_a_run_moves_next_ping_earlier():
    cron = replace(MONITOR, schedule=Schedule(cron="0 2 * * *", timezone="Europe/Riga"))
    data = shape(replace(VIEW, started_at=NOW + timedelta(minutes=5)), cron)
    assert (data["schedule"], data["tz"]) == ("0 2 * * *", "Europe/Riga")
    assert "timeout" not in data
    assert data["next_ping"] == "2026-01-14T12:05:00+00:00"


def test_a_monitor_without_a_uuid_gets_one_from_its_slug_that_stays():
    bare = replace(MONITOR, uuid=None)
    code = hcjson.check_code(bare)
    assert code == hcjson.check_code(replace(bare, name="renamed"))
    assert code != hcjson.check_code(replace(bare, slug="other"))


def test_pings_and_flips_in_healthchecks_shape():
    row = {
        "id": 41, "at": "2026-01-14T12:00:00Z", "kind": "fail", "exit_status": 3, "rid": None,
        "method": "POST", "remote_addr": "10.0.0.7", "user_agent": "curl", "body": "out",
        "truncated": False, "duration": 1.5,
    }  # fmt: skip
    assert hcjson.ping_to_dict(row, body_url="https://hb/b") == {
        "type": "fail", "date": "2026-01-14T12:00:00+00:00", "n": 41, "scheme": "http",
        "remote_addr": "10.0.0.7", "method": "POST", "ua": "curl", "rid": None,
        "exitstatus": 3, "duration": 1.5, "body_url": "https://hb/b",
    }  # fmt: skip
    assert hcjson.flip_to_dict(NOW, "down") == {
        "timestamp": "2026-01-14T12:00:00+00:00",
        "up": 0,
    }
