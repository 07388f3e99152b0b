"""Alerts from a flip to a real SMTP server, through the engine and the outbox.

An outage delays an alert; it never drops or duplicates it.
"""

from __future__ import annotations

import asyncio
import random
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config
from heartbeatd.daemon import Daemon
from heartbeatd.engine import Engine
from heartbeatd.model import Ping, PingKind
from heartbeatd.outbox import Outbox
from heartbeatd.store import Store
from heartbeatd.systemd import Notifier
from tests.channels.conftest import SmtpSink, free_port
from tests.harness.inprocess import PROMPT, settle
from tests.harness.net import POLL

CONFIG = """
[storage]
path = "hb.db"

[smtp]
host = "127.0.0.1"
port = {port}
starttls = false
from = "heartbeatd <hb@example.com>"
timeout = "5s"

[channels.ops]
type = "email"
to = ["ops@example.com"]

[monitors.backup]
name = "Nightly backup"
period = "1d"
"""


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def controllers():
    started: list[Controller] = []
    yield started
    for controller in started:
        controller.stop()


def start_smtp(port: int, controllers: list[Controller], **kw: object) -> SmtpSink:
    sink = SmtpSink(**kw)  # type: ignore[arg-type]
    sink.port = port
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    controllers.append(controller)
    return sink


@pytest.fixture
async def pipeline(tmp_path: Path, port: int, clock: FakeClock):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG.format(port=port)))
    config = load_config(path)
    store = await Store.open(config.storage.path, clock=clock)
    engine = Engine(config, store)
    await engine.recover(clock.now())
    outbox = Outbox(store, clock, channels=config.channels, rng=random.Random(7))
    yield engine, outbox, store
    await outbox.close()
    await store.close()


async def fail_backup(engine: Engine, clock: FakeClock) -> None:
    await engine.handle_ping(
        "backup", Ping(PingKind.FAIL, at=clock.now(), body="pg_dump: disk full")
    )


async def test_a_451_is_retried_and_the_email_delivered_once(
    pipeline, port, controllers, clock: FakeClock
):
    engine, outbox, store = pipeline
    sink = start_smtp(port, controllers, data_replies=["451 4.3.0 Try again later"])
    await fail_backup(engine, clock)

    assert await outbox.deliver_due() == 1
    assert sink.messages == []
    # Nothing is due again before the backoff (10 s, with jitter) has passed.
    clock.advance(seconds=5)
    assert await outbox.deliver_due() == 0
    clock.advance(seconds=10)
    assert await outbox.deliver_due() == 1
    assert [m.message["Subject"] for m in sink.messages] == ["DOWN: Nightly backup"]
    assert "pg_dump: disk full" in sink.messages[0].message.get_content()

    clock.advance(hours=1)
    assert await outbox.deliver_due() == 0
    assert len(sink.messages) == 1
    [flip] = await store.flips("backup")
    [delivery] = flip["deliveries"]
    assert (delivery["state"], delivery["attempts"]) == ("sent", 2)


async def test_an_smtp_server_down_for_an_hour_delays_the_alert_but_never_drops_it(
    pipeline, port, controllers, clock: FakeClock
):
    engine, outbox, store = pipeline
    await fail_backup(engine, clock)
    attempts = 0
    for _ in range(8):
        attempts += await outbox.deliver_due()
        clock.advance(minutes=8)
    assert attempts >= 4
    [flip] = await store.flips("backup")
    assert flip["deliveries"][0]["state"] == "pending"
    assert "connection refused" in flip["deliveries"][0]["last_error"]

    # The relay comes back; the alert goes out once, at the next retry.
    sink = start_smtp(port, controllers)
    clock.advance(minutes=31)
    assert await outbox.deliver_due() == 1
    assert [m.message["Subject"] for m in sink.messages] == ["DOWN: Nightly backup"]
    clock.advance(hours=2)
    await outbox.deliver_due()
    assert len(sink.messages) == 1


async def test_a_recovery_follows_its_down_alert_in_order(
    pipeline, port, controllers, clock: FakeClock
):
    engine, outbox, _store = pipeline
    await fail_backup(engine, clock)
    clock.advance(minutes=3)
    await engine.handle_ping("backup", Ping(PingKind.SUCCESS, at=clock.now()))
    sink = start_smtp(port, controllers)
    await outbox.deliver_due()
    await outbox.deliver_due()
    subjects = [m.message["Subject"] for m in sink.messages]
    assert subjects == ["DOWN: Nightly backup", "UP: Nightly backup"]
    assert "is up again after 3 min." in sink.messages[1].message.get_content()


async def test_undelivered_alerts_survive_a_restart(
    tmp_path: Path, pipeline, port, controllers, clock: FakeClock
):
    engine, outbox, store = pipeline
    await fail_backup(engine, clock)
    await outbox.deliver_due()  # the relay is down: retried later
    await outbox.close()
    await store.close()

    clock.advance(minutes=5)
    config = load_config(tmp_path / "heartbeatd.toml")
    reopened = await Store.open(config.storage.path, clock=clock)
    try:
        again = Outbox(reopened, clock, channels=config.channels)
        sink = start_smtp(port, controllers)
        assert await again.deliver_due() == 1
        assert [m.message["Subject"] for m in sink.messages] == ["DOWN: Nightly backup"]
        await again.close()
    finally:
        await reopened.close()


# -- webhooks to a real aiohttp receiver, on the fake clock -------------------------------


class Receiver:
    """A webhook receiver on the test's own loop that counts requests as they arrive.

    Requests to a path in `held` wait until `release` is set; `statuses` are the
    answers to the next requests (then 200).
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.port = free_port()
        self.arrived: list[tuple[str, float, dict[str, object]]] = []
        self.arrivals: asyncio.Queue[str] = asyncio.Queue()
        self.statuses: list[int] = []
        self.held: set[str] = set()
        self.release = asyncio.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.arrived if p == path)

    async def next_arrival(self, timeout: float = 5) -> str:
        return await asyncio.wait_for(self.arrivals.get(), timeout)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        # When it arrived, on the fake clock's monotonic time.
        self.arrived.append((request.path, self.clock.monotonic(), payload))
        self.arrivals.put_nowait(request.path)
        if request.path in self.held:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")


@pytest.fixture
async def receiver(clock: FakeClock):
    receiver = Receiver(clock)
    app = web.Application()
    app.router.add_route("POST", "/{path}", receiver.handle)
    # A bound on a real server's shutdown (the test releases held requests
    # first), not a wait: it cannot run on the FakeClock.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=PROMPT)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    yield receiver
    receiver.release.set()
    await runner.cleanup()


HOOKS = """
[server]
listen = "127.0.0.1:{listen}"

[storage]
path = "hb.db"

[alerts]
send_timeout = "{send_timeout}"
# A wall-clock step's daemon_gap alert goes there, not among backup's.
channels = ["other"]

[channels.{channel}]
type = "webhook"
url = "{url}"

[channels.other]
type = "webhook"
url = "{other_url}"

[monitors.backup]
period = "1d"
channels = ["{channel}"]

[monitors.other]
period = "1d"
channels = ["other"]
"""


def write_hooks(
    path: Path, receiver: Receiver, *, channel: str = "hook", send_timeout: str = "30s"
) -> Path:
    path.write_text(
        HOOKS.format(
            listen=free_port(),
            send_timeout=send_timeout,
            channel=channel,
            url=receiver.url(f"/{channel}"),
            other_url=receiver.url("/other"),
        )
    )
    return path


async def fail(engine: Engine, slug: str, clock: FakeClock) -> None:
    await engine.handle_ping(slug, Ping(PingKind.FAIL, at=clock.now()))


async def test_a_send_that_outlasts_the_old_300s_lease_is_not_sent_again(
    tmp_path: Path, receiver: Receiver, clock: FakeClock
):
    config = load_config(write_hooks(tmp_path / "heartbeatd.toml", receiver, send_timeout="10m"))
    async with await Store.open(config.storage.path, clock=clock) as store:
        engine = Engine(config, store)
        await engine.recover(clock.now())
        outbox = Outbox(
            store, clock, channels=config.channels, send_timeout=config.alerts.send_timeout
        )
        engine.on_alert = outbox.wake
        receiver.held.add("/hook")
        stop = asyncio.Event()
        worker = asyncio.ensure_future(outbox.run(stop))
        try:
            await fail(engine, "backup", clock)
            assert await receiver.next_arrival() == "/hook"
            # The receiver holds the request for 5 minutes and more (well within
            # send_timeout), and another alert wakes the worker meanwhile.
            clock.advance(seconds=301)
            await fail(engine, "other", clock)
            while await receiver.next_arrival() != "/other":
                pass
        finally:
            receiver.release.set()
            stop.set()
            await asyncio.wait_for(worker, 5)
        assert receiver.count("/hook") == 1
        [flip] = await store.flips("backup")
        assert [(d["state"], d["attempts"]) for d in flip["deliveries"]] == [("sent", 1)]


@asynccontextmanager
async def running_daemon(path: Path, clock: FakeClock) -> AsyncIterator[Daemon]:
    daemon = Daemon(path, clock, asyncio.Event(), asyncio.Event(), notifier=Notifier(""))
    await daemon.startup()
    try:
        yield daemon
    finally:
        await daemon.shutdown()


async def advance_until_arrival(daemon: Daemon, receiver: Receiver, steps: int = 60) -> str:
    """Move the clock a second at a time until a request reaches `receiver`; its path.

    The request travels over a real loopback socket, which no clock step
    hurries: after each step this waits for it up to one e2e poll of real time.
    """
    arrival = asyncio.ensure_future(receiver.next_arrival(timeout=PROMPT))
    try:
        for _ in range(steps):
            receiver.clock.advance(seconds=1)
            await settle(daemon)
            done, _ = await asyncio.wait({arrival}, timeout=POLL)
            if done:
                return arrival.result()
    finally:
        arrival.cancel()
    raise AssertionError(f"nothing arrived within {steps} s of fake time")


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = PROMPT) -> None:
    """Poll (in real time) until the daemon has recorded an answer from the receiver.

    The answer comes over a real loopback socket, which no FakeClock step
    hurries, so this polls, at the e2e tests' interval, within a bound.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, f"timed out after {timeout:g}s"
        await asyncio.sleep(POLL)


async def hook_deliveries(daemon: Daemon) -> list[tuple[str, str, int]]:
    # A wall-clock step shows in the history as a daemon_gap: not backup's flip.
    flips = await daemon.store.flips("backup")
    [flip] = [f for f in flips if f["reason"] != "daemon_gap"]
    return [(d["channel"], d["state"], d["attempts"]) for d in flip["deliveries"]]


async def first_attempt_failed(daemon: Daemon, receiver: Receiver) -> None:
    """Fail `backup`, let its alert be answered 503, and wait until the retry is recorded."""
    receiver.statuses = [503]
    await fail(daemon.engine, "backup", daemon.clock)
    assert await receiver.next_arrival() == "/hook"

    async def retry_recorded() -> bool:
        return await hook_deliveries(daemon) == [("hook", "pending", 1)]

    await wait_until(retry_recorded)


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)


@pytest.mark.usefixtures("no_systemd")
async def test_a_retry_goes_out_after_its_backoff_when_the_wall_clock_steps_back_a_day(
    tmp_path: Path, receiver: Receiver, clock: FakeClock
):
    path = write_hooks(tmp_path / "heartbeatd.toml", receiver)
    async with running_daemon(path, clock) as daemon:
        await first_attempt_failed(daemon, receiver)
        failed_at = clock.monotonic()
        clock.jump(clock.now() - timedelta(days=1))
        # The first retry comes 10 s (±20%) after the failure, on any wall clock.
        assert await advance_until_arrival(daemon, receiver) == "/hook"
        retried_after = receiver.arrived[-1][1] - failed_at
        assert 8 <= retried_after <= 13
        await wait_until(
            lambda: _equals(hook_deliveries(daemon), [("hook", "sent", 2)]),
        )


@pytest.mark.usefixtures("no_systemd")
async def test_a_wall_clock_step_forward_does_not_give_up_a_pending_alert(
    tmp_path: Path, receiver: Receiver, clock: FakeClock
):
    path = write_hooks(tmp_path / "heartbeatd.toml", receiver)
    async with running_daemon(path, clock) as daemon:
        await first_attempt_failed(daemon, receiver)
        # A day ahead: [alerts] give_up_after (1d) has not passed for the alert.
        receiver.statuses = [503]
        clock.jump(clock.now() + timedelta(days=1))
        assert await advance_until_arrival(daemon, receiver) == "/hook"
        await wait_until(lambda: _equals(hook_deliveries(daemon), [("hook", "pending", 2)]))


@pytest.mark.usefixtures("no_systemd")
async def test_an_alert_pending_on_a_channel_renamed_by_a_reload_goes_to_the_new_name(
    tmp_path: Path, receiver: Receiver, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    path = write_hooks(tmp_path / "heartbeatd.toml", receiver)
    async with running_daemon(path, clock) as daemon:
        await first_attempt_failed(daemon, receiver)
        # During the outage, [channels.hook] becomes [channels.pager].
        write_hooks(path, receiver, channel="pager")
        await daemon.apply_reload()
        assert await advance_until_arrival(daemon, receiver) == "/pager"
        assert receiver.arrived[-1][2]["event"] == "down"
        await wait_until(
            lambda: _equals(hook_deliveries(daemon), [("hook", "moved", 1), ("pager", "sent", 1)])
        )
    assert "alert moved monitor=backup event=down from=hook to=pager" in caplog.text


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected
