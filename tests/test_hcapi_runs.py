"""The Healthchecks-compatible API shows OnCalendar and cron lists, keyword
and method rules, and ignored pings in Healthchecks' own fields."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.harness import free_port
from tests.test_hcapi import RW, raw, write_config

TIMER = "5b2c1c1e-7f00-4d1e-9d7a-3c1d2b4a5e6f"
MONITORS = f"""
[monitors.timer]
oncalendar = ["Mon..Fri 09:00", "Sat 12:00"]
timezone = "Europe/Riga"
uuid = "{TIMER}"
methods = "post"
failure_keywords = ["ERROR", "FATAL"]
success_keywords = "done"

[monitors.crons]
schedule = ["0 2 * * *", "30 14 * * 1-5"]
"""


@pytest.fixture
async def hc(tmp_path: Path, make_daemon):
    port = free_port()
    daemon = await make_daemon(write_config(tmp_path, port, monitors=MONITORS))
    daemon.port = port
    return daemon


async def test_schedules_and_filters_in_healthchecks_fields(hc) -> None:
    status, text = await raw(hc, "GET", "/api/v3/checks/")
    assert status == 200
    checks = {c["slug"]: c for c in json.loads(text)["checks"]}
    timer = checks["timer"]
    assert (timer["schedule"], timer["tz"]) == ("Mon..Fri 09:00\nSat 12:00", "Europe/Riga")
    assert (timer["methods"], timer["filter_body"]) == ("POST", True)
    assert (timer["failure_kw"], timer["success_kw"], timer["start_kw"]) == (
        "ERROR,FATAL",
        "done",
        "",
    )
    crons = checks["crons"]
    assert crons["schedule"] == "0 2 * * *\n30 14 * * 1-5"
    assert (crons["methods"], crons["filter_body"]) == ("", False)


async def test_an_ignored_ping_is_listed_as_ign(hc) -> None:
    # A GET to a POST-only monitor: recorded, and ignored.
    url = f"http://127.0.0.1:{hc.port}/ping/{TIMER}"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200
    status, text = await raw(hc, "GET", f"/api/v3/checks/{TIMER}/pings/", key=RW)
    assert status == 200
    assert [p["type"] for p in json.loads(text)["pings"]] == ["ign"]
