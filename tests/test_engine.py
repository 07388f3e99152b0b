"""The engine with a real SQLite store and a fake clock: ticks, not sleeps."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd.clock import FakeClock
from heartbeatd.config import Config, load_config
from heartbeatd.engine import Engine
from heartbeatd.model import BODY_PREVIEW, AlertEvent, MonitorState, Ping, PingKind, Reason, Status
from heartbeatd.store import Store, StoreError

BASE = """
[server]
base_url = "https://hb.example.com"

[storage]
path = "hb.db"

[channels.ops]
type = "log"

[channels.pager]
type = "log"
"""

BACKUP = """
[monitors.backup]
period = "1h"
grace = "5m"
"""


def write_config(tmp_path: Path, monitors: str, name: str = "heartbeatd.toml") -> Config:
    path = tmp_path / name
    path.write_text(textwrap.dedent(BASE + monitors))
    return load_config(path)


@pytest.fixture
async def store(tmp_path: Path):
    store = await Store.open(tmp_path / "hb.db")
    yield store
    await store.close()


@pytest.fixture
async def engine(tmp_path: Path, store: Store, clock: FakeClock) -> Engine:
    engine = Engine(write_config(tmp_path, BACKUP), store)
    await engine.recover(clock.now())
    return engine


def success(clock: FakeClock, **kw: object) -> Ping:
    return Ping(PingKind.SUCCESS, at=clock.now(), **kw)  # type: ignore[arg-type]


async def outbox_rows(store: Store, clock: FakeClock) -> list[tuple[str, str, AlertEvent]]:
    items = await store.claim_due(clock.now() + timedelta(days=365))
    return sorted((i.monitor, i.channel, i.alert.event) for i in items)


async def test_it_goes_down_when_grace_expires(clock: FakeClock, engine: Engine, store: Store):
    await engine.handle_ping("backup", success(clock))
    clock.advance(hours=1, minutes=4)
    engine.tick(clock.now())
    assert engine.state("backup").status is Status.LATE
    clock.advance(minutes=1)
    engine.tick(clock.now())
    assert engine.state("backup").status is Status.DOWN
    await store.flush()
    assert await outbox_rows(store, clock) == [
        ("backup", "ops", AlertEvent.DOWN),
        ("backup", "pager", AlertEvent.DOWN),
    ]


async def test_the_alert_carries_the_rule_time_and_a_link(
    clock: FakeClock, engine: Engine, store: Store
):
    start = clock.now()
    await engine.handle_ping("backup", success(clock))
    clock.advance(hours=3)
    engine.tick(clock.now())
    await store.flush()
    item = (await store.claim_due(clock.now()))[0]
    assert item.alert.at == start + timedelta(hours=1, minutes=5)
    assert item.alert.reason is Reason.MISSED
    assert item.alert.expected_at == start + timedelta(hours=1)
    assert item.alert.url == "https://hb.example.com/monitors/backup"


async def test_a_failure_alerts_with_the_output(clock: FakeClock, engine: Engine, store: Store):
    await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now(), body="disk full"))
    item = (await store.claim_due(clock.now()))[0]
    assert (item.alert.event, item.alert.body) == (AlertEvent.DOWN, "disk full")


async def test_a_ping_is_stored_with_its_duration(clock: FakeClock, engine: Engine, store: Store):
    await engine.handle_ping("backup", Ping(PingKind.START, at=clock.now()))
    clock.advance(seconds=42)
    await engine.handle_ping("backup", success(clock))
    pings = await store.pings("backup")
    assert [(p["kind"], p["duration"]) for p in pings] == [("success", 42.0), ("start", None)]
    assert engine.view("backup").last_duration == 42.0
    assert engine.view("backup").n_pings == 2


async def test_a_never_pinged_monitor_goes_down_after_period_and_grace(
    clock: FakeClock, engine: Engine
):
    clock.advance(hours=1, minutes=5)
    engine.tick(clock.now())
    assert engine.state("backup").status is Status.DOWN


async def test_nothing_is_due_while_idle(clock: FakeClock, engine: Engine):
    await engine.handle_ping("backup", success(clock))
    clock.advance(minutes=59)
    assert engine.tick(clock.now()) == 0


async def test_state_survives_a_restart_and_missed_deadlines_get_grace(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", success(clock))
    # heartbeatd was stopped for three hours: the deadline passed meanwhile.
    clock.advance(hours=3)
    again = Engine(write_config(tmp_path, BACKUP), store)
    await again.recover(clock.now())
    assert again.state("backup").n_pings == 1
    again.tick(clock.now())
    assert again.state("backup").status is not Status.DOWN
    clock.advance(minutes=5)
    again.tick(clock.now())
    assert again.state("backup").status is Status.DOWN


async def test_a_monitor_down_before_a_restart_gets_no_second_alert(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now()))
    assert (await store.outbox_counts())["pending"] == 2
    clock.advance(hours=5)
    again = Engine(write_config(tmp_path, BACKUP), store)
    await again.recover(clock.now())
    clock.advance(hours=5)
    again.tick(clock.now())
    await store.flush()
    assert again.state("backup").status is Status.DOWN
    assert (await store.outbox_counts())["pending"] == 2


async def test_reload_adds_removes_and_reschedules_by_slug(
    tmp_path: Path, clock: FakeClock, engine: Engine
):
    await engine.handle_ping("backup", success(clock))
    new = write_config(tmp_path, '[monitors.backup]\nperiod = "1d"\n[monitors.web]\nperiod = 60\n')
    diff = engine.apply_config(new, clock.now())
    assert diff == {"added": ["web"], "removed": [], "changed": ["backup"]}
    # A changed schedule is recomputed from the last ping; the state is kept.
    assert engine.state("backup").expected_at == clock.now() + timedelta(days=1)
    assert engine.state("backup").n_pings == 1

    diff = engine.apply_config(write_config(tmp_path, "[monitors.web]\nperiod = 60\n"), clock.now())
    assert diff["removed"] == ["backup"]
    # A removed monitor stops alerting: its deadline is gone.
    assert "backup" not in engine.wheel
    clock.advance(days=3)
    engine.tick(clock.now())
    assert engine.state("backup").status is Status.UP


async def test_reload_finds_monitors_by_their_new_uuid(tmp_path: Path, clock: FakeClock, engine):
    uuid = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
    engine.apply_config(
        write_config(tmp_path, f'[monitors.backup]\nperiod = "1h"\nuuid = "{uuid}"\n'), clock.now()
    )
    assert engine.slug_for_uuid(uuid) == "backup"


async def test_a_flip_that_cannot_be_stored_happens_again(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", success(clock))
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute(
            "CREATE TRIGGER full_disk BEFORE INSERT ON flips "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
    with pytest.raises(StoreError):
        await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now()))
    # Rolled back in memory, so the retried ping flips (and alerts) again.
    assert engine.state("backup").status is Status.UP
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute("DROP TRIGGER full_disk")
    await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now()))
    assert engine.state("backup").status is Status.DOWN
    assert len(await outbox_rows(store, clock)) == 2


async def test_one_bad_monitor_does_not_stop_the_tick(
    clock: FakeClock, engine: Engine, caplog: pytest.LogCaptureFixture
):
    engine.wheel.schedule("ghost-that-raises", clock.now().timestamp())
    # Not a state: judging it raises.
    engine.states["ghost-that-raises"] = "not a state"  # type: ignore[assignment]
    engine.config.monitors["ghost-that-raises"] = engine.config.monitors["backup"]  # type: ignore[index]
    clock.advance(hours=2)
    engine.tick(clock.now())
    assert "tick failed monitor=ghost-that-raises" in caplog.text
    assert engine.state("backup").status is Status.DOWN


async def test_pause_silences_and_resume_restarts_the_schedule(clock: FakeClock, engine: Engine):
    await engine.handle_ping("backup", success(clock))
    await engine.pause("backup")
    clock.advance(hours=5)
    engine.tick(clock.now())
    assert engine.state("backup").status is Status.PAUSED
    await engine.resume("backup", clock.now())
    assert engine.state("backup").expected_at == clock.now() + timedelta(hours=1)


# -- ping bodies: whole in SQLite and in a ping's alerts, only their end in memory --

MIB = 1024 * 1024
OUTPUT = "".join(f"step {n} done\n" for n in range(100_000)) + "pg_dump: error: disk full\n"


def size_in_memory(state: MonitorState) -> int:
    return sys.getsizeof(state) + sum(sys.getsizeof(getattr(state, f.name)) for f in fields(state))


async def test_it_keeps_a_bounded_part_of_a_big_body_in_memory(
    clock: FakeClock, engine: Engine, store: Store
):
    assert len(OUTPUT) > MIB
    await engine.handle_ping("backup", success(clock, body=OUTPUT))
    assert size_in_memory(engine.state("backup")) < 4096
    assert engine.state("backup").body_preview.endswith("pg_dump: error: disk full\n")
    # The whole body is stored with the ping.
    assert (await store.pings("backup"))[0]["body"] == OUTPUT


async def test_a_failure_alert_carries_the_whole_body(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now(), body=OUTPUT))
    assert {i.alert.body for i in await store.claim_due(clock.now())} == {OUTPUT}


async def test_a_recovery_alert_carries_the_whole_body(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now(), body="broken"))
    for item in await store.claim_due(clock.now()):
        await store.mark_delivered(item, clock.now())
    await engine.handle_ping("backup", success(clock, body=OUTPUT))
    items = await store.claim_due(clock.now())
    assert [(i.alert.event, i.alert.body) for i in items] == [(AlertEvent.UP, OUTPUT)] * 2


async def test_a_tick_alert_carries_the_end_of_the_last_body(
    tmp_path: Path, clock: FakeClock, store: Store
):
    engine = Engine(write_config(tmp_path, BACKUP + 'repeat = "1h"\n'), store)
    await engine.recover(clock.now())
    await engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now(), body=OUTPUT))
    for item in await store.claim_due(clock.now()):
        await store.mark_delivered(item, clock.now())
    clock.advance(hours=1)
    engine.tick(clock.now())
    await store.flush()
    reminders = await store.claim_due(clock.now())
    assert {i.alert.event for i in reminders} == {AlertEvent.REMINDER}
    for item in reminders:
        assert len(item.alert.body) == BODY_PREVIEW
        assert item.alert.body.endswith("pg_dump: error: disk full\n")
