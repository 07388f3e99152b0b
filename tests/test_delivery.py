"""Alerts from a flip to a real SMTP server, through the engine and the outbox.

An outage delays an alert; it never drops or duplicates it.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config
from heartbeatd.engine import Engine
from heartbeatd.model import Ping, PingKind
from heartbeatd.outbox import Outbox
from heartbeatd.store import Store
from tests.channels.conftest import SmtpSink, free_port

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
