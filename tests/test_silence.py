"""The silence alert: the daemon in-process on a fake clock, a real database
and a real webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from heartbeatd.clock import FakeClock
from heartbeatd.model import Ping, PingKind, Status
from heartbeatd.times import isoformat
from tests.harness import WebhookSink, free_port, settle
from tests.samples import config_text

# quick is expected every 10 minutes; slow once an hour.
MONITORS = (
    '[monitors.quick]\nperiod = "10m"\ngrace = "1h"\n[monitors.slow]\nperiod = "1h"\ngrace = "1h"\n'
)


def write_config(path: Path, hook: str, alerts: str = '[alerts]\nsilence = "15m"\n') -> Path:
    path.write_text(config_text(MONITORS, port=free_port(), hook=hook, channels=alerts))
    return path


def events(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT event FROM outbox ORDER BY id")]


async def settled_events(daemon, count: int) -> list[str]:
    """The outbox's events once it holds `count` (or after a real second)."""
    for _ in range(50):
        await settle(daemon)
        found = events(daemon.store.path)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    return events(daemon.store.path)


async def ping_all(daemon, clock: FakeClock) -> None:
    for slug in ("quick", "slow"):
        await daemon.engine.handle_ping(slug, Ping(PingKind.SUCCESS, at=clock.now()))


async def test_it_sends_one_silence_alert_when_no_ping_came_while_monitors_were_expected(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    daemon = await make_daemon(write_config(tmp_path / "hb.toml", webhook_sink.url))
    await ping_all(daemon, clock)
    last_ping = clock.now()
    await settle(daemon)
    clock.advance(minutes=14)
    assert await settled_events(daemon, 1) == []
    clock.advance(minutes=1, seconds=1)
    assert await settled_events(daemon, 1) == ["silence"]
    for _ in range(50):
        if webhook_sink.delivered("silence"):
            break
        await asyncio.sleep(0.05)
    [body] = webhook_sink.delivered("silence")
    assert body["from"] == isoformat(last_ping)
    assert body["count"] == 1
    assert body["monitors"] == ["quick"]
    assert body["text"] == (
        "no pings for 15 min; 1 monitor expected: the jobs may be fine but cannot reach"
        " heartbeatd — check the proxy, DNS, TLS, firewall"
    )
    # Once until pings resume, however long the silence lasts.
    clock.advance(minutes=30)
    assert await settled_events(daemon, 2) == ["silence"]
    # Monitors still flip as usual: quick at 10m + 1h after its ping.
    clock.advance(minutes=25)
    assert await settled_events(daemon, 2) == ["silence", "down"]
    assert daemon.engine.state("quick").status is Status.DOWN


async def test_after_pings_resume_a_new_silence_is_told_again(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    daemon = await make_daemon(write_config(tmp_path / "hb.toml", webhook_sink.url))
    await ping_all(daemon, clock)
    clock.advance(minutes=16)
    assert await settled_events(daemon, 1) == ["silence"]
    await ping_all(daemon, clock)
    clock.advance(minutes=14)
    assert await settled_events(daemon, 2) == ["silence"]
    clock.advance(minutes=2)
    assert await settled_events(daemon, 2) == ["silence", "silence"]


async def test_silence_while_no_monitor_is_expected_is_no_news(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    monitors = '[monitors.slow]\nperiod = "1h"\ngrace = "1h"\n'
    path = tmp_path / "hb.toml"
    path.write_text(
        config_text(
            monitors,
            port=free_port(),
            hook=webhook_sink.url,
            channels='[alerts]\nsilence = "15m"\n',
        )
    )
    daemon = await make_daemon(path)
    await daemon.engine.handle_ping("slow", Ping(PingKind.SUCCESS, at=clock.now()))
    clock.advance(minutes=59)
    assert await settled_events(daemon, 1) == []
    # Now slow is due and nothing came: the silence is news.
    clock.advance(minutes=1, seconds=1)
    assert await settled_events(daemon, 1) == ["silence"]


async def test_it_is_off_by_default(
    make_daemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    daemon = await make_daemon(write_config(tmp_path / "hb.toml", webhook_sink.url, alerts=""))
    await ping_all(daemon, clock)
    clock.advance(minutes=30)
    assert await settled_events(daemon, 1) == []
