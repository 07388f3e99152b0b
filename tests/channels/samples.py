"""Alerts and a parse helper shared by the channel tests."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from heartbeatd.channels.base import ParseEnv
from heartbeatd.clock import FakeClock
from heartbeatd.model import Alert, AlertEvent, Reason, Status
from heartbeatd.tables import Problems, Table
from tests.conftest import NOW

FILE = "heartbeatd.toml"

DOWN = Alert(
    event=AlertEvent.DOWN,
    monitor="nightly-backup",
    name="Nightly Postgres backup",
    status=Status.DOWN,
    reason=Reason.MISSED,
    at=NOW,
    last_ping=NOW - timedelta(days=1, minutes=30),
    expected_at=NOW - timedelta(minutes=30),
    down_at=NOW,
    url="https://hb.example.com/monitors/nightly-backup",
    body="pg_dump: error: connection to server failed\n",
)
FAILED = replace(DOWN, reason=Reason.EXIT_STATUS, exit_status=3)
REMINDER = replace(DOWN, event=AlertEvent.REMINDER, at=NOW + timedelta(hours=1))
UP = replace(
    DOWN,
    event=AlertEvent.UP,
    status=Status.UP,
    reason=Reason.RECOVERED,
    at=NOW + timedelta(hours=1, minutes=5),
    last_ping=NOW + timedelta(hours=1, minutes=5),
    expected_at=NOW + timedelta(days=1, hours=1, minutes=5),
    downtime=3900.0,
    body="",
)
TEST = Alert(
    event=AlertEvent.TEST,
    monitor="test",
    name="heartbeatd test alert",
    status=Status.DOWN,
    reason=Reason.MISSED,
    at=NOW,
)
ALL = {"down": DOWN, "up": UP, "reminder": REMINDER, "test": TEST}


def parse(
    module: ModuleType,
    data: dict[str, Any],
    *,
    smtp: Any = None,
    base_dir: Path = Path("/etc/heartbeatd"),
    name: str = "x",
) -> tuple[Any, list[str]]:
    """parse_options on `[channels.<name>]`; the options and every problem line."""
    problems = Problems(FILE, base_dir)
    table = Table(data, f"channels.{name}", problems)
    opts = module.parse_options(table, ParseEnv(base_dir=base_dir, smtp=smtp))
    return opts, problems.lines


async def advance_until_done(clock: FakeClock, task: asyncio.Task, step: float) -> None:
    """Move `clock` by `step` until `task` ends, within 5 s of real time.

    A timeout set a moment after the first step still ends with the next one.
    """
    for _ in range(100):
        clock.advance(step)
        done, _ = await asyncio.wait({task}, timeout=0.05)
        if done:
            return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise AssertionError("still running after 5 s of real time")
