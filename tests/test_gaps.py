"""heartbeatd's own downtime as an alert (daemon_gap): the daemon in-process
on a fake clock, a real database and a real webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from heartbeatd import pages
from heartbeatd.clock import FakeClock
from heartbeatd.model import Ping, PingKind, Status
from heartbeatd.store import StoreError
from heartbeatd.times import isoformat, parse_isoformat
from tests.harness import WebhookSink, free_port, settle, stop_daemon
from tests.samples import config_text

MONITORS = (
    '[monitors.backup]\nperiod = "1h"\ngrace = "5m"\n'
    '[monitors.report]\nperiod = "1d"\ngrace = "1h"\n'
    '[monitors.idle]\nperiod = "1h"\n'
)


def write_config(path: Path, hook: str, alerts: str = "") -> Path:
    channels = '[channels.log]\ntype = "log"\n' + alerts
    path.write_text(config_text(MONITORS, port=free_port(), hook=hook, channels=channels))
    return path


def outbox(db: Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT monitor, channel, event FROM outbox ORDER BY id").fetchall()


async def started_and_stopped(make_daemon, path: Path, clock: FakeClock):
    """A first run: backup and report pinged, idle paused; then a clean stop."""
    daemon = await make_daemon(path)
    for slug in ("backup", "report", "idle"):
        await daemon.engine.handle_ping(slug, Ping(PingKind.SUCCESS, at=clock.now()))
    await daemon.engine.pause("idle")
    await settle(daemon)
    stopped_at = clock.now()
    await stop_daemon(daemon, clock)
    return stopped_at


async def test_it_sends_one_daemon_gap_after_being_down_longer_than_gap_notice(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook")
    stopped_at = await started_and_stopped(make_daemon, path, clock)
    # Down for two hours: backup's deadline (1h + 5m) passed meanwhile.
    clock.advance(hours=2)
    daemon = await make_daemon(path)
    await settle(daemon)
    rows = outbox(daemon.store.path)
    assert sorted(rows) == [
        ("(heartbeatd)", "hook", "daemon_gap"),
        ("(heartbeatd)", "log", "daemon_gap"),
    ]
    [body] = await asyncio.wait_for(_delivered(webhook_sink, "daemon_gap"), 5)
    assert body["from"] == isoformat(stopped_at)
    assert body["to"] == isoformat(clock.now())
    assert body["monitors"] == ["backup"]
    assert body["count"] == 1
    assert "not running for 2 h" in body["text"]
    assert "backup" in body["text"]
    # Held back: no false alarm for backup, whose deadline passed unseen.
    assert daemon.engine.state("backup").status is Status.LATE


async def test_the_gap_shows_as_unknown_in_each_watched_monitors_history(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook")
    stopped_at = await started_and_stopped(make_daemon, path, clock)
    clock.advance(hours=2)
    daemon = await make_daemon(path)
    await settle(daemon)
    flips = await daemon.store.flips("backup")
    assert [(f["at"], f["old"], f["new"], f["reason"]) for f in flips[:2]] == [
        (isoformat(clock.now()), "unknown", "up", "daemon_gap"),
        (isoformat(stopped_at), "up", "unknown", "daemon_gap"),
    ]
    # A paused monitor expected nothing meanwhile.
    assert all(f["new"] != "unknown" for f in await daemon.store.flips("idle"))
    # As the API and the status page show it.
    base = daemon.config.server.base_url
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/api/v1/monitors/backup/flips") as resp:
            api = (await resp.json())["flips"]
        async with session.get(f"{base}/monitors/backup") as resp:
            page = await resp.text()
    assert [(f["old"], f["new"]) for f in api[:2]] == [("unknown", "up"), ("up", "unknown")]
    assert 'class="pill s-unknown">unknown</span>' in page
    assert "heartbeatd itself was not watching" in page


def test_the_page_counts_a_downtime_across_a_gap_from_when_it_went_down():
    at = ["2026-01-14T18:00:00Z", "2026-01-14T14:00:00Z", "2026-01-14T12:00:00Z"]
    flips = [
        {"at": at[0], "old": "unknown", "new": "down", "reason": "daemon_gap"},
        {"at": at[1], "old": "down", "new": "unknown", "reason": "daemon_gap"},
        {"at": at[2], "old": "up", "new": "down", "reason": "missed"},
    ]
    rows = pages.flip_rows(flips, "down", parse_isoformat("2026-01-14T19:00:00Z"))
    assert [(r["downtime"], r["ongoing"]) for r in rows] == [
        (None, False),
        (None, False),
        (7 * 3600.0, True),
    ]


async def test_a_short_gap_sends_nothing(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook")
    await started_and_stopped(make_daemon, path, clock)
    clock.advance(minutes=4)
    daemon = await make_daemon(path)
    await settle(daemon)
    assert outbox(daemon.store.path) == []


async def test_it_sends_the_gap_only_to_alerts_channels_after_gap_notice(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    alerts = '[alerts]\ngap_notice = "30m"\nchannels = ["log"]\n'
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook", alerts)
    await started_and_stopped(make_daemon, path, clock)
    clock.advance(minutes=29)
    daemon = await make_daemon(path)
    await stop_daemon(daemon, clock)
    assert outbox(daemon.store.path) == []
    clock.advance(minutes=31)
    daemon = await make_daemon(path)
    await settle(daemon)
    assert outbox(daemon.store.path) == [("(heartbeatd)", "log", "daemon_gap")]


async def test_a_start_that_could_not_store_the_gap_leaves_it_for_the_next_start(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook")
    stopped_at = await started_and_stopped(make_daemon, path, clock)
    clock.advance(hours=2)
    db = tmp_path / "hb.db"
    # The outbox refuses the alert (as a full disk would): the start notices
    # the gap, cannot store it, and gives up. Stored apart from the alert,
    # the new last_alive would hide the gap from the next start.
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    with pytest.raises(StoreError):
        await make_daemon(path)
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("DROP TRIGGER refuse")
        [(alive,)] = other.execute("SELECT value FROM meta WHERE key = 'last_alive'")
    assert alive == stopped_at.isoformat()
    assert outbox(db) == []
    clock.advance(minutes=1)
    daemon = await make_daemon(path)
    await settle(daemon)
    [body] = await asyncio.wait_for(_delivered(webhook_sink, "daemon_gap"), 5)
    assert body["from"] == isoformat(stopped_at)
    assert body["to"] == isoformat(clock.now())


async def test_a_wall_clock_jump_longer_than_gap_notice_is_a_gap(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook")
    daemon = await make_daemon(path)
    await daemon.engine.handle_ping("backup", Ping(PingKind.SUCCESS, at=clock.now()))
    await settle(daemon)
    before = clock.now()
    clock.jump(before + timedelta(hours=3))
    clock.advance(seconds=1)
    await settle(daemon)
    [body] = await asyncio.wait_for(_delivered(webhook_sink, "daemon_gap"), 5)
    assert body["from"] == isoformat(before)
    assert "wall clock jumped forward by 3 h" in body["text"]
    # idle was never pinged: its first deadline (1h + 1h) passed too.
    assert body["monitors"] == ["backup", "idle"]


async def _delivered(sink: WebhookSink, event: str) -> list:
    while True:
        found = sink.delivered(event)
        if found:
            return found
        await asyncio.sleep(0.05)


async def test_a_pending_gap_alert_of_a_channel_a_reload_removed_goes_to_the_current_ones(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    alerts = '[alerts]\nchannels = ["hook"]\n'
    path = write_config(tmp_path / "hb.toml", webhook_sink.url + "/hook", alerts)
    await started_and_stopped(make_daemon, path, clock)
    clock.advance(hours=2)
    webhook_sink.answer(503)
    daemon = await make_daemon(path)
    await asyncio.wait_for(_answered(webhook_sink, "/hook"), 5)
    # [channels.hook] becomes [channels.pager] while the alert waits.
    text = path.read_text().replace("[channels.hook]", "[channels.pager]")
    path.write_text(text.replace("/hook", "/pager").replace('["hook"]', '["pager"]'))
    await daemon.apply_reload()
    await settle(daemon)
    received = await asyncio.wait_for(_answered(webhook_sink, "/pager"), 5)
    assert received.json()["event"] == "daemon_gap"


async def _answered(sink: WebhookSink, path: str):
    while True:
        found = [r for r in sink.received(path) if r.status]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
