"""Retention: flips kept per monitor, finished alerts kept for a while, pending ones always."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config
from heartbeatd.daemon import Daemon
from heartbeatd.store import MIGRATIONS, Store
from heartbeatd.systemd import Notifier
from heartbeatd.tables import ConfigError
from tests import wal
from tests.channels.conftest import free_port
from tests.conftest import NOW
from tests.harness.inprocess import settle
from tests.samples import DOWN, DOWN_ALERT, DOWN_FLIP

FILE = "heartbeatd.toml"
DAY = timedelta(days=1)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock):
    store = await Store.open(tmp_path / "heartbeatd.db", clock=clock)
    yield store
    await store.close()


async def add_flips(store: Store, slug: str, count: int, *channels: str) -> None:
    for _ in range(count):
        await store.queue_change(
            slug, DOWN, flip=DOWN_FLIP, alerts=[(c, DOWN_ALERT) for c in channels]
        )


async def flip_ids(store: Store, slug: str) -> list[int]:
    return [flip["id"] for flip in await store.flips(slug, limit=10_000)]


async def deliver_all(store: Store, clock: FakeClock, channel: str | None = None) -> None:
    """Send every alert (of `channel`); the others stay claimed and pending."""
    # One alert per monitor and channel at a time: the next is claimable once
    # the one before it is sent.
    while items := await store.claim_due(clock.now(), limit=10_000):
        for item in items:
            if channel in (None, item.channel):
                assert await store.mark_delivered(item, clock.now())


async def test_it_keeps_the_newest_flip_history_flips_of_each_monitor(store: Store):
    await add_flips(store, "a", 5)
    await add_flips(store, "b", 2)
    newest_a = (await flip_ids(store, "a"))[:3]
    b = await flip_ids(store, "b")
    assert await store.prune_flips(3) == 2
    assert await flip_ids(store, "a") == newest_a
    assert await flip_ids(store, "b") == b
    assert await store.prune_flips(3) == 0


async def test_it_never_prunes_a_pending_alert_or_the_flip_it_belongs_to(
    store: Store, clock: FakeClock
):
    await add_flips(store, "a", 1, "ops")
    [pending] = await flip_ids(store, "a")
    # Claimed and sent: only the alerts of these flips are finished.
    await add_flips(store, "a", 2, "hook")
    await deliver_all(store, clock, "hook")
    await add_flips(store, "a", 1)
    newest = (await flip_ids(store, "a"))[0]
    assert await store.outbox_counts() == {"pending": 1, "sent": 2, "failed": 0}

    assert await store.prune_flips(1) == 2
    assert await flip_ids(store, "a") == [newest, pending]
    # The sent alerts went with their flips; the pending one is still there.
    assert await store.outbox_counts() == {"pending": 1, "sent": 0, "failed": 0}
    await store.release_claims()
    [item] = await store.claim_due(clock.now())
    assert (item.flip_id, item.channel) == (pending, "ops")


async def test_it_prunes_finished_alerts_once_they_are_older_than_the_retention(
    store: Store, clock: FakeClock
):
    await add_flips(store, "a", 1, "sent", "failed", "hook", "pending")
    sent, failed, hook, pending = await store.claim_due(clock.now())
    assert await store.mark_delivered(sent, clock.now())
    assert await store.mark_failed(failed, "hooks.example.com: 404", clock.now())
    assert await store.mark_retry(pending, "smtp.example.com: 451", clock.now() + DAY * 40)
    # A reload removed hook: its alert moved to the monitor's channel, "sent".
    assert await store.mark_retry(hook, "timed out", clock.now())
    moves = await store.move_alerts({"sent", "failed", "pending"}, lambda _: ["sent"], NOW)
    assert [(m.channel, m.to, m.already) for m in moves] == [("hook", (), ("sent",))]

    clock.advance(days=29)
    await add_flips(store, "b", 1, "fresh")
    await deliver_all(store, clock)
    assert await store.prune_outbox(clock.now() - 30 * DAY) == 0
    clock.advance(days=2)
    assert await store.prune_outbox(clock.now() - 30 * DAY) == 3
    assert await store.outbox_counts() == {"pending": 1, "sent": 1, "failed": 0}
    [flip] = await store.flips("a")
    assert [d["channel"] for d in flip["deliveries"]] == ["pending"]


@pytest.mark.parametrize("what", ["flips", "alerts"])
async def test_it_prunes_in_transactions_of_at_most_batch_rows(
    store: Store, clock: FakeClock, tmp_path: Path, what: str
):
    await add_flips(store, "a", 10, "ops")
    await deliver_all(store, clock)
    before = wal.commits(tmp_path / "heartbeatd.db")
    if what == "flips":
        assert await store.prune_flips(1, batch=3) == 9
    else:
        assert await store.prune_outbox(clock.now() + DAY, batch=3) == 10
    assert wal.commits(tmp_path / "heartbeatd.db") - before >= math.ceil(9 / 3)


async def test_it_finds_the_finished_alerts_of_a_database_from_before_retention(
    tmp_path: Path, clock: FakeClock
):
    path = tmp_path / "heartbeatd.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
        db.execute(
            "INSERT INTO outbox (monitor, channel, event, payload, state, created_at,"
            " next_attempt_at, delivered_at) VALUES ('a', 'ops', 'down', '{}', 'sent', ?, ?, ?)",
            ("2026-01-01T00:00:00.000000+00:00",) * 3,
        )
    db.close()
    async with await Store.open(path, clock=clock) as store:
        assert await store.prune_outbox(NOW) == 1


def load(tmp_path: Path, storage: str):
    path = tmp_path / FILE
    path.write_text(f"[storage]\n{storage}\n[channels.log]\ntype = 'log'\n")
    return load_config(path).storage


def test_it_reads_the_retention_keys_with_their_defaults(tmp_path: Path):
    storage = load(tmp_path, "")
    assert (storage.flip_history, storage.outbox_retention) == (1000, 30 * 86400)
    storage = load(tmp_path, 'flip_history = 50\noutbox_retention = "7d"')
    assert (storage.flip_history, storage.outbox_retention) == (50, 7 * 86400)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("flip_history = 0", "storage.flip_history: expected a number from 1, got 0"),
        (
            'outbox_retention = "a month"',
            'storage.outbox_retention: expected a duration like "30s", "5m" or "1h30m",'
            ' got "a month"',
        ),
    ],
    ids=["no-flips", "not-a-duration"],
)
def test_it_names_the_key_of_a_bad_retention_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load(Path(), line)
    assert caught.value.problems == [f"{FILE}: {message}"]


DAEMON = """
[server]
listen = "127.0.0.1:{port}"

[storage]
path = "hb.db"
flip_history = 2
outbox_retention = "1d"

[channels.log]
type = "log"

[monitors.backup]
period = "1h"
"""


async def test_the_daemon_prunes_old_flips_and_alerts_as_it_trims_pings(
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    path = tmp_path / FILE
    path.write_text(textwrap.dedent(DAEMON.format(port=free_port())))
    async with await Store.open(tmp_path / "hb.db", clock=clock) as store:
        await add_flips(store, "backup", 3)
        await add_flips(store, "backup", 1, "log")
        await deliver_all(store, clock)
        kept = (await flip_ids(store, "backup"))[:2]
    clock.advance(days=2)

    daemon = Daemon(path, clock, asyncio.Event(), asyncio.Event(), notifier=Notifier(""))
    await daemon.startup()
    try:
        # Housekeeping trims 30 s after start-up, then every 10 minutes. A step
        # taken before housekeeping is back in its sleep is lost to it, so the
        # bound is real time, not a count of steps.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while "old history trimmed" not in caplog.text and loop.time() < deadline:
            clock.advance(seconds=1)
            # The trim is a store job: settled once the store has committed it.
            await settle(daemon)
        assert await flip_ids(daemon.store, "backup") == kept
        assert await daemon.store.outbox_counts() == {"pending": 0, "sent": 0, "failed": 0}
        assert "old history trimmed pings=0 flips=2 alerts=1" in caplog.text
    finally:
        await daemon.shutdown()
