"""The daemon as a sysadmin runs it: a subprocess, a TOML file, signals, real HTTP.

Deadlines here are seconds long (period 2, grace 1), so these tests wait for
real time to pass; they poll for the outcome and never sleep a fixed time.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import (
    DaemonProcess,
    WebhookSink,
    assert_never,
    http,
    parse_time,
    utcnow,
    wait_for,
)

ALERT_FIELDS = {
    "event",
    "monitor",
    "name",
    "status",
    "reason",
    "last_ping",
    "expected_at",
    "down_at",
    "url",
    "body",
}
FAST = '[monitors.a]\nname = "Job A"\nperiod = 2\ngrace = 1\n'
# Monitors that never come due during a test.
SLOW_A = '[monitors.a]\nname = "Job A"\nperiod = "1h"\ngrace = "1h"\n'
SLOW_B = '[monitors.b]\nperiod = "1h"\ngrace = "1h"\n'
UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"


async def _burst(
    url: str, total: int, concurrency: int, on_ack: Callable[[int], None]
) -> tuple[int, list[int]]:
    """`total` GETs from `concurrency` tasks: (200 answers, other statuses).

    A request that gets no answer (the daemon died or stopped listening) is
    neither: it was never acknowledged.
    """
    acked = 0
    others: list[int] = []
    numbers = itertools.count()
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def worker() -> None:
            nonlocal acked
            while next(numbers) < total:
                try:
                    async with session.get(url) as response:
                        await response.read()
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    continue
                if response.status == 200:
                    acked += 1
                    on_ack(acked)
                else:
                    others.append(response.status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acked, others


# -- alerts --------------------------------------------------------------------------


def test_it_alerts_down_on_a_missed_ping_and_up_on_the_next(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(FAST, hook=webhook_sink.url)
    daemon.start()

    answer = daemon.ping("a")
    assert (answer.status, answer.text) == (200, "OK")
    assert answer.headers["Ping-Body-Limit"] == "10240"
    pinged = daemon.monitor("a")
    assert (pinged["status"], pinged["n_pings"]) == ("up", 1)

    # Not pinged again: down at last ping + period 2 s + grace 1 s.
    [down] = wait_for(lambda: webhook_sink.delivered("down"), timeout=8)
    noticed = utcnow()
    assert set(down) >= ALERT_FIELDS
    assert {k: down[k] for k in ("event", "monitor", "name", "status", "reason", "body")} == {
        "event": "down",
        "monitor": "a",
        "name": "Job A",
        "status": "down",
        "reason": "missed",
        "body": "",
    }
    assert down["url"] == f"{daemon.base_url}/monitors/a"
    last_ping = parse_time(down["last_ping"])
    assert last_ping == parse_time(pinged["last_ping"])
    assert parse_time(down["expected_at"]) - last_ping == timedelta(seconds=2)
    assert parse_time(down["down_at"]) - last_ping == timedelta(seconds=3)
    # The wheel fires within a second of the deadline (plus delivery).
    assert noticed - parse_time(down["down_at"]) < timedelta(seconds=2.5)
    assert daemon.monitor("a")["status"] == "down"

    assert daemon.ping("a").status == 200
    [up] = wait_for(lambda: webhook_sink.delivered("up"), timeout=5)
    assert set(up) >= ALERT_FIELDS
    assert (up["monitor"], up["status"], up["reason"]) == ("a", "up", "recovered")
    assert len(webhook_sink.delivered("down")) == 1
    assert daemon.monitor("a")["n_pings"] == 2


def test_it_alerts_at_once_on_a_failure_an_exit_status_and_a_run_too_long(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    run = '[monitors.run]\nperiod = "1h"\ngrace = "1h"\nmax_runtime = 1\n'
    daemon.write_config(SLOW_A + SLOW_B + run, hook=webhook_sink.url)
    daemon.start()
    output = "pg_dump: error: connection refused\nexit 1\n"

    assert daemon.ping("a/fail", data=output.encode()).status == 200
    assert daemon.ping("b/3", data=b"exit 3").status == 200
    assert daemon.ping("run/start").status == 200
    assert daemon.monitor("run")["started_at"] is not None

    [a] = wait_for(lambda: webhook_sink.delivered("down", "a"), 5)
    assert (a["reason"], a["body"]) == ("failed", output)
    [b] = wait_for(lambda: webhook_sink.delivered("down", "b"), 5)
    assert (b["reason"], b["body"], b["exit_status"]) == ("exit_status", "exit 3", 3)
    [run_alert] = wait_for(lambda: webhook_sink.delivered("down", "run"), 5)
    assert run_alert["reason"] == "ran_too_long"


def test_it_stores_a_long_body_truncated_and_non_utf8_bytes_without_error(
    daemon: DaemonProcess,
) -> None:
    daemon.write_config(SLOW_A, storage="max_body = 100")
    daemon.start()

    answer = daemon.ping("a", data=b"x" * 60 + b"y" * 190)
    assert (answer.status, answer.headers["Ping-Body-Limit"]) == (200, "100")
    [ping] = daemon.api("monitors/a/pings?limit=1")["pings"]
    assert ping["truncated"] is True
    assert ping["body"] == "x" * 60 + "y" * 40

    assert daemon.ping("a", data=b"ok \xff\xfe\xc3 done").status == 200
    [ping] = daemon.api("monitors/a/pings?limit=1")["pings"]
    assert ping["truncated"] is False
    assert ping["body"].startswith("ok ") and ping["body"].endswith(" done")
    assert daemon.monitor("a")["n_pings"] == 2


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "a", 200, "OK"),
        ("HEAD", "a", 200, ""),
        ("GET", "a/0", 200, "OK"),
        ("GET", "a/log", 200, "OK"),
        ("GET", "a/256", 400, "exit status must be 0-255"),
        ("GET", "a/start?rid=not-a-uuid", 400, "rid must be a UUID"),
        ("GET", "nope", 404, "not found"),
        ("GET", "a/nope", 404, "not found"),
        ("POST", UUID, 200, "OK"),
        ("GET", UUID.upper() + "/fail", 200, "OK"),
        ("GET", UUID + "/a", 404, "not found"),
        ("GET", UUID.replace("9c", "00"), 404, "not found"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_it_answers_the_ping_grammar(
    daemon_for_grammar: DaemonProcess, method: str, path: str, status: int, text: str
) -> None:
    answer = daemon_for_grammar.ping(path, method=method)
    assert (answer.status, answer.text) == (status, text)
    assert answer.headers["Ping-Body-Limit"] == "10240"


@pytest.fixture(scope="module")
def daemon_for_grammar(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Read-only questions: one daemon for the whole table.
    process = DaemonProcess(tmp_path_factory.mktemp("grammar"))
    process.write_config(SLOW_A + SLOW_B + f'uuid = "{UUID}"\n')
    try:
        process.start()
        yield process
    finally:
        process.kill()
        print(process.log())


# -- reload --------------------------------------------------------------------------


def test_it_reloads_on_sighup_keeping_state_and_rejects_a_broken_file(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(SLOW_A, hook=webhook_sink.url)
    daemon.start()
    assert daemon.ping("a").status == 200
    assert daemon.ping("a").status == 200
    assert daemon.ping("b").status == 404

    daemon.write_config(SLOW_A + SLOW_B, hook=webhook_sink.url)
    daemon.signal(signal.SIGHUP)

    wait_for(lambda: daemon.ping("b").status == 200, message="/ping/b to answer 200")
    monitors = daemon.monitors()
    assert list(monitors) == ["a", "b"]
    assert (monitors["a"]["status"], monitors["a"]["n_pings"]) == ("up", 2)
    assert monitors["b"]["n_pings"] == 1
    daemon.wait_for_log("config reloaded monitors=2 added=b removed=- changed=-")

    daemon.write_config(
        SLOW_A + SLOW_B.replace('grace = "1h"', 'grace = "5 min"'), hook=webhook_sink.url
    )
    daemon.signal(signal.SIGHUP)

    log = daemon.wait_for_log("reload rejected")
    assert (
        "reload rejected, keeping the running config: "
        f'{daemon.config_path}: monitors.b.grace: expected a duration like "30s", "5m" or'
        ' "1h30m", got "5 min"'
    ) in log
    daemon.assert_running()
    assert daemon.ping("b").status == 200
    assert daemon.monitors()["b"]["n_pings"] == 2
    assert webhook_sink.requests == []


def test_it_refuses_no_ping_during_a_reload(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW_A)
    daemon.start()
    daemon.write_config(SLOW_A + SLOW_B)

    def reload_halfway(acked: int) -> None:
        if acked == 50:
            daemon.signal(signal.SIGHUP)

    acked, others = asyncio.run(_burst(f"{daemon.base_url}/ping/a", 200, 16, reload_halfway))

    assert (acked, others) == (200, [])
    daemon.wait_for_log("config reloaded monitors=2 added=b")
    assert daemon.monitors()["a"]["n_pings"] == 200


# -- durability ----------------------------------------------------------------------


def test_it_keeps_every_acknowledged_ping_through_sigkill(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW_A + SLOW_B)
    daemon.start()
    assert daemon.ping("b").status == 200

    def kill_halfway(acked: int) -> None:
        if acked == 150:
            assert daemon.proc is not None
            daemon.proc.kill()

    acked, others = asyncio.run(_burst(f"{daemon.base_url}/ping/b", 300, 32, kill_halfway))
    daemon.wait_exit()
    assert daemon.proc is not None and daemon.proc.returncode == -signal.SIGKILL

    assert others == []
    assert acked >= 150
    daemon.start()
    stored = daemon.stored_pings("b")
    # A 200 means committed; a ping committed whose answer was lost is fine.
    assert 1 + acked <= stored
    assert daemon.monitor("b")["n_pings"] == stored


def test_it_stops_on_sigterm_within_5s_while_pings_are_in_flight(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW_A)
    daemon.start()
    signalled: list[float] = []

    def stop_halfway(acked: int) -> None:
        if acked == 100:
            signalled.append(time.monotonic())
            daemon.signal(signal.SIGTERM)

    acked, others = asyncio.run(_burst(f"{daemon.base_url}/ping/a", 300, 32, stop_halfway))
    assert signalled, "the burst ended before the daemon was signalled"
    code = daemon.wait_exit(timeout=max(0.1, 5 - (time.monotonic() - signalled[0])))

    assert code == 0
    log = daemon.log()
    assert "INFO heartbeatd.daemon: stopping" in log
    assert "INFO heartbeatd.daemon: stopped" in log
    assert "Traceback" not in log
    # In-flight pings were finished, not failed: no 503 during shutdown.
    assert others == []
    assert acked <= daemon.stored_pings("a")


def test_it_stops_within_5s_while_an_alert_delivery_hangs(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(SLOW_A, hook=webhook_sink.url)
    daemon.start()
    webhook_sink.hold()
    assert daemon.ping("a/fail").status == 200
    wait_for(lambda: _outbox_claimed(daemon), 5, "the delivery to start")

    started = time.monotonic()
    assert daemon.stop(timeout=5) == 0
    assert time.monotonic() - started < 5


def _outbox_claimed(daemon: DaemonProcess) -> bool:
    return bool(daemon.query("SELECT count(*) FROM outbox WHERE claimed_until IS NOT NULL")[0][0])


# -- restart -------------------------------------------------------------------------


def test_it_gives_grace_after_a_restart_and_does_not_alert_twice(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    # a: due 1 s after a ping, down 2 s later. c: down (failed) before the stop.
    monitors = "[monitors.a]\nperiod = 1\ngrace = 2\n" + SLOW_A.replace("monitors.a", "monitors.c")
    daemon.write_config(monitors, hook=webhook_sink.url)
    daemon.start()
    assert daemon.ping("a").status == 200
    assert daemon.ping("c/fail").status == 200
    wait_for(lambda: webhook_sink.delivered("down", "c"), 5)
    first_down_at = parse_time(daemon.monitor("a")["down_at"])
    assert daemon.stop() == 0

    # a's deadline passes while heartbeatd is not running (published times
    # are whole seconds, so the real deadline may be up to 1 s later).
    wait_for(lambda: utcnow() > first_down_at + timedelta(seconds=1.2), 6)
    # Taken before the start: on a busy machine start() may return well
    # after the daemon moved the deadline to its own start-up + grace.
    restarting = utcnow()
    daemon.start()

    after = daemon.monitor("a")
    assert after["status"] == "late"
    assert parse_time(after["down_at"]) >= restarting + timedelta(seconds=1)
    assert_never(
        lambda: webhook_sink.delivered("down", "a"),
        seconds=max(0.0, (restarting + timedelta(seconds=1.5) - utcnow()).total_seconds()),
        message="a was alerted at once after the restart",
    )
    [down] = wait_for(lambda: webhook_sink.delivered("down", "a"), 5)
    assert parse_time(down["down_at"]) > first_down_at + timedelta(seconds=1)
    assert daemon.monitor("a")["status"] == "down"
    # c was down before the restart and stays down, with no second alert.
    assert daemon.monitor("c")["status"] == "down"
    assert len(webhook_sink.delivered("down", "c")) == 1


# -- systemd -------------------------------------------------------------------------


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: a unix datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[dict[str, str]] = []

    def close(self) -> None:
        self.sock.close()

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            lines = data.decode().split("\n")
            self.messages.append(dict(line.split("=", 1) for line in lines if line))

    def wait(self, after: int = 0, **fields: str) -> tuple[int, dict[str, str]]:
        """The first message from index `after` on holding `fields`: (index, message)."""

        def found() -> tuple[int, dict[str, str]] | None:
            self._receive()
            for i, message in enumerate(self.messages[after:], after):
                if fields.items() <= message.items():
                    return i, message
            return None

        return wait_for(found, 10, f"a notify message with {fields}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Any:
    # sun_path holds 108 bytes; a long tmp_path falls back to a short directory.
    directory = tmp_path if len(str(tmp_path)) < 90 else Path(tempfile.mkdtemp(prefix="hb"))
    sock = NotifySocket(directory / "notify.sock")
    yield sock
    sock.close()


def test_it_notifies_systemd_of_ready_reloading_and_stopping(
    daemon: DaemonProcess, notify_socket: NotifySocket
) -> None:
    daemon.write_config(SLOW_A)
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    daemon.start(env=env, wait=False)

    i, ready = notify_socket.wait(READY="1")
    # READY=1 comes only once the port answers.
    assert http(daemon.base_url + "/healthz").status == 200
    assert ready["STATUS"] == "watching 1 monitor"
    notify_socket.wait(after=i, WATCHDOG="1")

    before = time.monotonic_ns() // 1000
    daemon.signal(signal.SIGHUP)
    i, reloading = notify_socket.wait(after=i, RELOADING="1")
    assert before <= int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
    notify_socket.wait(after=i, READY="1")

    daemon.signal(signal.SIGTERM)
    notify_socket.wait(after=i, STOPPING="1")
    assert daemon.wait_exit() == 0


# -- the outbox ----------------------------------------------------------------------


def test_it_retries_a_failed_alert_after_a_restart_and_delivers_it_once(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    # The receiver answers 503 to the first attempt. The outbox retries after
    # 10 s (+-20% jitter) and keeps the retry time in SQLite, so a restart in
    # between neither loses the alert nor sends it early or twice: the row is
    # due about 10 s after the flip, which keeps this test under 15 s.
    daemon.write_config(SLOW_A, hook=webhook_sink.url)
    daemon.start()
    webhook_sink.answer(503)
    assert daemon.ping("a/fail", data=b"disk full").status == 200
    wait_for(lambda: webhook_sink.count() == 1, 5, "the first attempt")
    [flip] = wait_for(lambda: _attempted(daemon), 5, "the failed attempt to be recorded")
    [delivery] = flip["deliveries"]
    assert delivery["state"] == "pending"
    assert delivery["last_error"] == f"webhook to 127.0.0.1:{webhook_sink.port}: HTTP 503"

    assert daemon.stop() == 0
    daemon.start()

    [down] = wait_for(lambda: webhook_sink.delivered("down"), 14, "the retried alert")
    assert (down["monitor"], down["body"]) == ("a", "disk full")
    [flip] = wait_for(lambda: _delivered(daemon), 5, "the delivery to be recorded")
    assert flip["deliveries"][0]["attempts"] == 2
    assert webhook_sink.count() == 2


def _attempted(daemon: DaemonProcess) -> list[dict[str, Any]]:
    flips = daemon.api("monitors/a/flips")["flips"]
    return flips if flips and flips[0]["deliveries"][0]["attempts"] == 1 else []


def _delivered(daemon: DaemonProcess) -> list[dict[str, Any]]:
    flips = daemon.api("monitors/a/flips")["flips"]
    return flips if flips and flips[0]["deliveries"][0]["state"] == "sent" else []


def test_it_delivers_an_alert_cut_by_shutdown_soon_after_the_restart(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(SLOW_A, hook=webhook_sink.url)
    daemon.start()
    webhook_sink.hold()
    assert daemon.ping("a/fail").status == 200
    wait_for(lambda: _outbox_claimed(daemon), 5, "the delivery to start")
    assert daemon.stop() == 0
    webhook_sink.release()

    daemon.start()

    # The send was cut, not failed: nothing tells the outbox to wait.
    wait_for(lambda: webhook_sink.delivered("down"), 5, "the cut alert to be delivered")
