"""The run rules end to end through the engine, a real SQLite store and the
outbox: what is stored, what is alerted, what is counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd.clock import FakeClock
from heartbeatd.engine import Engine
from heartbeatd.model import AlertEvent, Ping, PingKind, Reason, Status
from heartbeatd.store import Store
from tests.test_engine import outbox_rows, write_config

MONITORS = """
[monitors.etl]
period = "1d"
channels = ["ops", "pager"]
min_runtime = "30s"
max_concurrent = 1
runtime_anomaly = 3

[monitors.hook]
period = "1d"
channels = ["ops"]
methods = "post"
failure_keywords = ["ERROR"]
success_keywords = ["done"]
"""


@pytest.fixture
async def store(tmp_path: Path):
    store = await Store.open(tmp_path / "hb.db")
    yield store
    await store.close()


@pytest.fixture
async def engine(tmp_path: Path, store: Store, clock: FakeClock) -> Engine:
    engine = Engine(write_config(tmp_path, MONITORS), store)
    await engine.recover(clock.now())
    return engine


# A notice is due when the store queues it, by the store's own (real) clock.
LATER = timedelta(days=365)


def ping(clock: FakeClock, kind: PingKind = PingKind.SUCCESS, **kw: object) -> Ping:
    return Ping(kind, at=clock.now(), **kw)  # type: ignore[arg-type]


async def test_an_overlap_alerts_the_monitors_channels_without_a_status_change(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("etl", ping(clock))
    await engine.handle_ping("etl", ping(clock, PingKind.START, rid="a"))
    clock.advance(minutes=5)
    await engine.handle_ping("etl", ping(clock, PingKind.START, rid="b"))
    await store.flush()
    assert await outbox_rows(store, clock) == [
        ("etl", "ops", AlertEvent.OVERLAP),
        ("etl", "pager", AlertEvent.OVERLAP),
    ]
    assert engine.state("etl").status is Status.UP
    assert engine.notices_by_event == {("overlap", "etl"): 1}
    # No flip is stored for a notice: only the first success's new -> up.
    assert [f["new"] for f in await store.flips("etl", limit=10)] == ["up"]
    # Each run gets its own duration.
    clock.advance(minutes=1)
    await engine.handle_ping("etl", ping(clock, rid="a"))
    clock.advance(minutes=1)
    await engine.handle_ping("etl", ping(clock, rid="b"))
    durations = [(p["rid"], p["duration"]) for p in await store.pings("etl") if p["duration"]]
    assert durations == [("b", 120.0), ("a", 360.0)]


async def test_a_too_short_run_alerts_with_both_durations(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("etl", ping(clock, PingKind.START))
    clock.advance(seconds=3)
    await engine.handle_ping("etl", ping(clock))
    assert engine.state("etl").status is Status.DOWN
    items = await store.claim_due(clock.now())
    alert = items[0].alert
    assert (alert.event, alert.reason) == (AlertEvent.DOWN, Reason.RAN_TOO_SHORT)
    assert (alert.duration, alert.min_runtime) == (3.0, 30.0)
    flips = await store.flips("etl", limit=10)
    assert [f["reason"] for f in flips] == ["ran_too_short"]


async def test_a_runtime_anomaly_alerts_with_the_median(
    clock: FakeClock, engine: Engine, store: Store
):
    for _ in range(5):
        await engine.handle_ping("etl", ping(clock, PingKind.START))
        clock.advance(minutes=10)
        await engine.handle_ping("etl", ping(clock))
        clock.advance(days=1)
    await store.flush()
    assert await outbox_rows(store, clock) == []
    await engine.handle_ping("etl", ping(clock, PingKind.START))
    clock.advance(hours=2)
    await engine.handle_ping("etl", ping(clock))
    items = await store.claim_due(clock.now() + LATER)
    assert {(i.channel, i.alert.event) for i in items} == {
        ("ops", AlertEvent.ANOMALY),
        ("pager", AlertEvent.ANOMALY),
    }
    assert (items[0].alert.duration, items[0].alert.median) == (7200.0, 600.0)
    assert engine.notices_by_event == {("anomaly", "etl"): 1}


async def test_the_recent_runs_survive_a_restart(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    for _ in range(5):
        await engine.handle_ping("etl", ping(clock, PingKind.START))
        clock.advance(minutes=10)
        await engine.handle_ping("etl", ping(clock))
    await store.flush()
    again = Engine(write_config(tmp_path, MONITORS), store)
    await again.recover(clock.now())
    assert again.state("etl").recent_durations == (600.0,) * 5


async def test_an_ignored_ping_is_stored_and_changes_nothing(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("hook", ping(clock, method="POST", body="done"))
    before = engine.state("hook")
    clock.advance(minutes=1)
    # A link preview bot GETs the URL pasted into a chat.
    await engine.handle_ping("hook", ping(clock, method="GET", user_agent="Slackbot"))
    # A body with no keyword.
    await engine.handle_ping("hook", ping(clock, method="POST", body="hello"))
    after = engine.state("hook")
    assert (after.status, after.last_ping, after.expected_at) == (
        Status.UP,
        before.last_ping,
        before.expected_at,
    )
    kinds = [(p["method"], p["kind"]) for p in await store.pings("hook")]
    assert kinds == [("POST", "ignored"), ("GET", "ignored"), ("POST", "success")]
    assert engine.pings_by_kind["ignored"] == 2


async def test_a_failure_keyword_takes_the_monitor_down(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("hook", ping(clock, method="POST", body="rsync ERROR 23"))
    assert engine.state("hook").status is Status.DOWN
    assert [p["kind"] for p in await store.pings("hook")] == ["fail"]


async def test_an_overlap_without_rids_is_an_overlap_too(
    clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("etl", ping(clock, PingKind.START))
    clock.advance(seconds=1)
    await engine.handle_ping("etl", ping(clock, PingKind.START))
    await store.flush()
    items = await store.claim_due(clock.now() + LATER)
    assert {i.alert.reason for i in items} == {Reason.OVERLAP}
