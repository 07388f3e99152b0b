"""Per-channel events: [channels.x] events, the opt-in `late` and `held`,
read from the config and followed by the engine (real SQLite, fake clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd.channels import text
from heartbeatd.clock import FakeClock
from heartbeatd.config import ConfigError, load_config
from heartbeatd.engine import Engine
from heartbeatd.model import AlertEvent, Ping, PingKind
from heartbeatd.store import Store
from tests.samples import DOWN_ALERT

CONFIG = """
[storage]
path = "hb.db"

[channels.ops]
type = "log"

[channels.audit]
type = "log"
events = ["late", "held"]

[channels.pager]
type = "log"
events = ["down"]

[monitors.backup]
period = "1h"
grace = "5m"
alert_after = {alert_after}
max_concurrent = 1
channels = ["ops", "audit", "pager"]
"""


@pytest.fixture
async def make_engine(tmp_path: Path, clock: FakeClock):
    stores = []

    async def make(alert_after: int = 1) -> tuple[Engine, Store]:
        path = tmp_path / "heartbeatd.toml"
        path.write_text(CONFIG.format(alert_after=alert_after))
        store = await Store.open(tmp_path / "hb.db", clock=clock)
        stores.append(store)
        engine = Engine(load_config(path), store)
        await engine.recover(clock.now())
        return engine, store

    yield make
    for store in stores:
        await store.close()


async def sent(store: Store, clock: FakeClock) -> list[tuple[str, str]]:
    await store.flush()
    items = await store.claim_due(clock.now() + timedelta(days=1))
    return sorted((i.channel, i.alert.event.value) for i in items)


async def test_each_channel_hears_only_its_events(make_engine, clock):
    engine, store = await make_engine()
    await engine.handle_ping("backup", Ping(PingKind.SUCCESS, clock.now()))
    clock.advance(hours=1)
    engine.tick(clock.now())
    # Late: only the channel that opted in hears it.
    assert await sent(store, clock) == [("audit", "late")]


async def test_a_held_flip_goes_to_the_channels_that_opted_in(make_engine, clock):
    engine, store = await make_engine(alert_after=2)
    await engine.handle_ping("backup", Ping(PingKind.SUCCESS, clock.now()))
    clock.advance(minutes=10)
    await engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
    assert await sent(store, clock) == [("audit", "held")]


async def test_down_goes_to_the_default_channels_and_to_those_that_list_it(make_engine, clock):
    engine, store = await make_engine()
    await engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
    assert await sent(store, clock) == [("ops", "down"), ("pager", "down")]


async def test_an_overlap_goes_to_the_default_channels_only(make_engine, clock):
    engine, store = await make_engine()
    await engine.handle_ping("backup", Ping(PingKind.SUCCESS, clock.now()))
    await engine.handle_ping("backup", Ping(PingKind.START, clock.now(), rid="a" * 8))
    await engine.handle_ping("backup", Ping(PingKind.START, clock.now(), rid="b" * 8))
    # The pager listed only "down"; the audit channel only late and held.
    assert await sent(store, clock) == [("ops", "overlap")]


def test_the_words_of_late_and_held_alerts():
    down = DOWN_ALERT
    late = replace(down, event=AlertEvent.LATE)
    held = replace(down, event=AlertEvent.HELD, held_by="threshold")
    assert text.title(late) == f"LATE: {down.name}"
    assert text.title(held) == f"HELD: {down.name} (threshold)"
    assert "held by threshold" in text.headline(held)


def test_an_unknown_event_is_a_config_error_naming_the_key(tmp_path: Path):
    path = tmp_path / "heartbeatd.toml"
    path.write_text('[channels.ops]\ntype = "log"\nevents = ["down", "dwn"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f'{path}: channels.ops.events: unknown event "dwn"; known events:'
        " down, up, reminder, escalation, overlap, anomaly, late, held"
    ]


async def test_a_reload_that_lowers_alert_after_alerts_a_monitor_already_past_it(
    make_engine, tmp_path, clock
):
    engine, store = await make_engine(alert_after=3)
    for _ in range(2):
        await engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
        clock.advance(minutes=1)
    await store.flush()
    await store.claim_due(clock.now() + timedelta(days=1))  # the two "held" to audit
    path = tmp_path / "heartbeatd.toml"
    path.write_text(CONFIG.format(alert_after=2))

    engine.apply_config(load_config(path), clock.now())
    clock.advance(seconds=1)
    engine.tick(clock.now())

    # Two failed runs, and two are now enough: the down alert goes out once.
    assert await sent(store, clock) == [("ops", "down"), ("pager", "down")]
    engine.apply_config(load_config(path), clock.now())
    clock.advance(seconds=1)
    engine.tick(clock.now())
    assert await sent(store, clock) == []


async def test_a_reload_that_raises_alert_after_sends_nothing(make_engine, tmp_path, clock):
    engine, store = await make_engine(alert_after=3)
    await engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
    await store.flush()
    await store.claim_due(clock.now() + timedelta(days=1))
    path = tmp_path / "heartbeatd.toml"
    path.write_text(CONFIG.format(alert_after=5))

    engine.apply_config(load_config(path), clock.now())
    clock.advance(seconds=1)
    engine.tick(clock.now())

    assert await sent(store, clock) == []
