"""The outbound self-ping: a real store, a real HTTP receiver, the FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest

from heartbeatd.alerts import daemon_alert
from heartbeatd.clock import FakeClock
from heartbeatd.config import SelfPingConfig
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.selfping import SelfPing
from heartbeatd.store import Store
from tests.harness import WebhookSink


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock):
    store = await Store.open(tmp_path / "heartbeatd.db", clock=clock)
    yield store
    await store.close()


def make(store: Store, clock: FakeClock, sink: WebhookSink, **kwargs) -> tuple[SelfPing, dict]:
    """A SelfPing to `sink`/ping/abc whose ticker ticked `ticks["last"]`."""
    settings = SelfPingConfig(ping_url=Secret(sink.url + "/ping/abc"), **kwargs)
    ticks = {"last": clock.monotonic()}
    return SelfPing(store, clock, lambda: settings, lambda: ticks["last"]), ticks


async def arrived(sink: WebhookSink, count: int) -> None:
    for _ in range(200):
        if sink.count() >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{count} requests expected, got {sink.count()}")


async def queue_alert(store: Store, clock: FakeClock) -> None:
    alert = daemon_alert(
        AlertEvent.SILENCE, since=None, at=clock.now(), monitors=(), count=0, url="", text="x"
    )
    await store.queue_daemon_event([("pager", alert)])


async def test_it_pings_the_url_while_healthy(store, clock: FakeClock, webhook_sink):
    selfping, _ = make(store, clock, webhook_sink)
    assert await selfping.beat() is None
    [request] = webhook_sink.received()
    assert (request.method, request.path) == ("GET", "/ping/abc")


async def test_a_stuck_outbox_sends_fail_with_the_reason(store, clock: FakeClock, webhook_sink):
    selfping, ticks = make(store, clock, webhook_sink, stuck_after=600)
    await queue_alert(store, clock)
    clock.advance(minutes=10)
    ticks["last"] = clock.monotonic()
    # Pending for exactly stuck_after: not yet stuck.
    assert await selfping.beat() is None
    clock.advance(seconds=60)
    ticks["last"] = clock.monotonic()
    reason = "outbox stuck: an alert has been pending for 11 min"
    assert await selfping.beat() == reason
    first, second = webhook_sink.received()
    assert (first.method, first.path) == ("GET", "/ping/abc")
    assert (second.method, second.path, second.body) == (
        "POST",
        "/ping/abc/fail",
        reason.encode(),
    )


async def test_a_timer_wheel_that_stopped_ticking_is_unhealthy(
    store, clock: FakeClock, webhook_sink
):
    selfping, ticks = make(store, clock, webhook_sink)
    clock.advance(seconds=9)
    assert await selfping.beat() is None
    ticks["last"] = clock.monotonic() - 30
    assert await selfping.beat() == "timer wheel not ticking: no tick for 30s"
    assert webhook_sink.received()[-1].path == "/ping/abc/fail"


async def test_a_database_that_takes_no_write_is_unhealthy(
    store, clock: FakeClock, webhook_sink, tmp_path: Path
):
    selfping, _ = make(store, clock, webhook_sink)
    # Another process holds the write lock past SQLite's busy timeout.
    with contextlib.closing(
        sqlite3.connect(tmp_path / "heartbeatd.db", isolation_level=None)
    ) as db:
        db.execute("BEGIN IMMEDIATE")
        reason = await selfping.beat()
        db.execute("ROLLBACK")
    assert reason is not None
    assert reason.startswith("database not writable: ")
    assert "locked" in reason
    assert webhook_sink.received()[-1].body.decode() == reason


async def test_a_stalled_event_loop_is_told_by_the_next_ping(store, clock: FakeClock, webhook_sink):
    selfping, ticks = make(store, clock, webhook_sink, every=60)
    task = asyncio.ensure_future(selfping.run())
    try:
        await arrived(webhook_sink, 1)
        # The loop's timer fires 25 s late (the ticker ran meanwhile).
        clock.advance(seconds=85)
        ticks["last"] = clock.monotonic()
        await arrived(webhook_sink, 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    request = webhook_sink.received()[1]
    assert (request.path, request.body) == (
        "/ping/abc/fail",
        b"event loop stalled: a timer fired 25s late",
    )


async def test_it_logs_changes_of_health_not_every_ping(
    store, clock: FakeClock, webhook_sink, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="heartbeatd.selfping")
    selfping, ticks = make(store, clock, webhook_sink)
    await selfping.beat()
    ticks["last"] = clock.monotonic() - 20
    await selfping.beat()
    await selfping.beat()
    ticks["last"] = clock.monotonic()
    await selfping.beat()
    await selfping.beat()
    assert [r.getMessage() for r in caplog.records] == [
        'self check unhealthy reason="timer wheel not ticking: no tick for 20s"',
        "self check healthy again",
    ]
    assert webhook_sink.count() == 5


async def test_a_ping_that_cannot_be_delivered_is_logged_once(
    store, clock: FakeClock, webhook_sink, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="heartbeatd.selfping")
    selfping, _ = make(store, clock, webhook_sink)
    webhook_sink.answer(503, 503)
    for _ in range(3):
        await selfping.beat()
    assert [r.getMessage() for r in caplog.records] == [
        f"self ping not delivered error=self ping to 127.0.0.1:{webhook_sink.port}: HTTP 503",
        "self ping delivered again",
    ]
    # The key in the URL's path is never logged.
    assert "/ping/abc" not in caplog.text
