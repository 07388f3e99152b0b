"""Start-up with many monitors, CI-sized: the daemon in-process on 20,000
monitors of the common shape. What made a start-up at 100,000 slow was work
done once per monitor that needs doing once per kind of monitor; these tests
count that work instead of timing it, and check what start-up must still get
right for every monitor."""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from heartbeatd import policy
from heartbeatd.clock import FakeClock
from heartbeatd.config import files, plain
from heartbeatd.daemon import Daemon
from heartbeatd.model import MonitorState, Status
from heartbeatd.wheel import TimerWheel
from tests.harness import free_port
from tests.samples import LOG_CHANNEL, config_text

MakeDaemon = Callable[..., Awaitable[Daemon]]

COUNT = 20_000
# Two kinds of monitor (two periods), as a generated file would have.
PERIODS = ("1h", "1d")


def big_config(path: Path) -> Path:
    monitors = "".join(f'[monitors.m{i:05d}]\nperiod = "{PERIODS[i % 2]}"\n' for i in range(COUNT))
    path.write_text(config_text(monitors, port=free_port(), channels=LOG_CHANNEL))
    return path


def counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[Any]:
    """Replace owner.name by a wrapper that records each call's first argument."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


async def test_a_first_start_serialises_each_kind_of_new_state_once(
    make_daemon: MakeDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    serialised = counting(monkeypatch, MonitorState, "to_json")
    daemon = await make_daemon(big_config(tmp_path / "heartbeatd.toml"))
    await daemon.store.flush()
    # Monitors never seen before share one first state per schedule.
    assert len(serialised) <= len(PERIODS)
    with sqlite3.connect(daemon.store.path) as db:
        rows = dict(db.execute("SELECT slug, state FROM monitors"))
    assert len(rows) == COUNT
    for slug in ("m00000", "m00001", f"m{COUNT - 1:05d}"):
        stored = MonitorState.from_json(json.loads(rows[slug]))
        assert stored == daemon.engine.state(slug)
        assert stored.status is Status.NEW


async def test_the_monitor_tables_of_a_big_file_are_read_once_a_shape_and_not_by_tomllib(
    make_daemon: MakeDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = big_config(tmp_path / "heartbeatd.toml")
    parsed = counting(monkeypatch, files.tomllib, "loads")
    read = counting(monkeypatch, plain, "_read_plain")
    daemon = await make_daemon(path)
    # Each shape of monitor table is read once; the others take its fields.
    assert len(read) <= len(PERIODS)
    assert len(daemon.config.monitors) == COUNT
    assert daemon.config.monitors["m00001"].schedule.period == 86400
    # tomllib read the sections before the monitors, a few hundred bytes.
    assert sum(len(text) for text in parsed) < len(path.read_text()) // 100


async def test_new_monitors_of_one_kind_share_one_deadline_computation(
    make_daemon: MakeDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
):
    computed = counting(monkeypatch, policy, "next_deadline")
    scheduled = counting(monkeypatch, TimerWheel, "schedule")
    daemon = await make_daemon(big_config(tmp_path / "heartbeatd.toml"))
    assert len(computed) <= len(PERIODS)
    # They go on the wheel a deadline at a time, not a monitor at a time
    # (the few left are the daemon's own timers).
    assert len(scheduled) < 100
    # Every monitor is on the wheel, at its own schedule's deadline.
    engine = daemon.engine
    assert len(engine.wheel) == COUNT
    for slug in ("m00000", "m00001"):
        state, monitor = engine.state(slug), engine.config.monitors[slug]
        expected = policy.next_deadline(state, monitor)
        assert expected is not None
        assert engine.wheel.deadline(slug) == pytest.approx(expected.timestamp(), abs=0.1)
    assert engine.roster.counts()[Status.NEW] == COUNT


async def test_new_monitors_alike_but_for_one_rule_get_their_own_deadlines(
    make_daemon: MakeDaemon, tmp_path: Path
):
    monitors = "".join(
        f'[monitors.{slug}]\nperiod = "1h"\n{extra}\n'
        for slug, extra in [
            ("plain", ""),
            ("named", 'name = "Named"\ntags = ["x"]'),
            ("graced", 'grace = "1m"'),
            ("slow", 'grace = "1m"\nmax_runtime = "2h"'),
            ("paris", 'timezone = "Europe/Paris"'),
        ]
    )
    path = tmp_path / "heartbeatd.toml"
    path.write_text(config_text(monitors, port=free_port(), channels=LOG_CHANNEL))
    daemon = await make_daemon(path)
    engine = daemon.engine
    for slug, monitor in engine.config.monitors.items():
        when = policy.next_deadline(engine.state(slug), monitor)
        assert when is not None
        assert engine.wheel.deadline(slug) == pytest.approx(when.timestamp(), abs=0.1), slug
    assert engine.wheel.deadline("plain") == engine.wheel.deadline("named")
    assert engine.wheel.deadline("graced") != engine.wheel.deadline("plain")


async def test_start_up_leaves_no_garbage_cycles_so_it_freezes_without_collecting(
    make_daemon: MakeDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # What a collection would have found at the moment start-up freezes the
    # heap: a few cycles of asyncio's, never one per monitor.
    found: list[int] = []
    real_freeze = gc.freeze

    def freeze() -> None:
        found.append(gc.collect())
        real_freeze()

    path = big_config(tmp_path / "heartbeatd.toml")
    gc.collect()
    collections = counting(monkeypatch, gc, "collect")
    monkeypatch.setattr(gc, "freeze", freeze)
    await make_daemon(path)
    assert len(found) == 1
    assert found[0] < COUNT // 20, found
    # The daemon's own collection was skipped: only the one above ran.
    assert len(collections) == 1
