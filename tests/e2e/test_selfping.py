"""Two heartbeatd daemons watching each other through [self] ping_url: each
pings a monitor on the other. Real processes, real HTTP, real signals;
deadlines are seconds long, and the tests poll for the outcome."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.harness import DaemonProcess, WebhookSink, free_port, http, wait_for

# Each daemon's monitor of the other: pinged every second while healthy.
PEER = '[monitors.{slug}]\nperiod = "2s"\ngrace = "2s"\n'
# A job nobody pings: it goes down and raises an alert.
JOB = '[monitors.job]\nperiod = "1s"\ngrace = "1s"\n'


def setup(
    a: DaemonProcess, b: DaemonProcess, sink: WebhookSink, *, a_hook: str, a_extra: str = ""
) -> None:
    a.write_config(
        PEER.format(slug="peer-b") + a_extra,
        hook=a_hook,
        channels=f'[self]\nping_url = "{b.base_url}/ping/peer-a"\nevery = "1s"\n'
        + 'stuck_after = "3s"\n',
    )
    b.write_config(
        PEER.format(slug="peer-a"),
        hook=sink.url + "/b",
        channels=f'[self]\nping_url = "{a.base_url}/ping/peer-b"\nevery = "1s"\n',
    )


def both(tmp_path: Path) -> tuple[DaemonProcess, DaemonProcess]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return DaemonProcess(tmp_path / "a"), DaemonProcess(tmp_path / "b")


def alerts_for(sink: WebhookSink, event: str, monitor: str) -> list[dict]:
    return [p for p in sink.delivered(event) if p.get("monitor") == monitor]


def test_a_stopped_daemon_is_caught_by_the_one_it_pings(tmp_path: Path, webhook_sink):
    a, b = both(tmp_path)
    setup(a, b, webhook_sink, a_hook=webhook_sink.url + "/a")
    try:
        b.start()
        a.start()
        # Each pings the other every second: both peers are up.
        wait_for(lambda: _status(b, "peer-a") == "up", 10, "peer-a up on b")
        wait_for(lambda: _status(a, "peer-b") == "up", 10, "peer-b up on a")
        a.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        down = wait_for(
            lambda: alerts_for(webhook_sink, "down", "peer-a"), 15, "b to alert about a"
        )
        # Within period + grace after the last ping (plus the one-second ticker).
        assert time.monotonic() - stopped < 2 + 2 + 3
        assert down[0]["reason"] == "missed"
    finally:
        if a.is_running():
            a.signal(signal.SIGCONT)
        a.kill()
        b.kill()


def test_a_stuck_outbox_is_told_to_the_other_side_with_the_reason(tmp_path: Path, webhook_sink):
    a, b = both(tmp_path)
    # Nothing listens there: a's alerts are refused and stay pending.
    refused = f"http://127.0.0.1:{free_port()}/hook"
    setup(a, b, webhook_sink, a_hook=refused, a_extra=JOB)
    try:
        b.start()
        a.start()
        down = wait_for(
            lambda: alerts_for(webhook_sink, "down", "peer-a"), 20, "b to alert about a"
        )
        assert down[0]["reason"] == "failed"
        assert down[0]["body"].startswith("outbox stuck: an alert has been pending for ")
        assert "self check unhealthy" in a.log()
    finally:
        a.kill()
        b.kill()


def _status(daemon: DaemonProcess, slug: str) -> str | None:
    try:
        return http(f"{daemon.base_url}/api/v1/monitors/{slug}", timeout=1).json()["status"]
    except OSError:
        return None
