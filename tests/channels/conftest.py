"""Channel tests talk to real local servers: the webhook sink (tests/conftest.py)
and an aiosmtpd SMTP sink. Nothing of aiohttp or aiosmtplib is patched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from heartbeatd.channels.base import SendContext
from tests.harness import free_port
from tests.harness.smtp import SmtpSink

__all__ = ["SmtpSink", "free_port"]


@pytest.fixture
async def ctx() -> AsyncIterator[SendContext]:
    async with aiohttp.ClientSession() as session:
        yield SendContext(session=session, timeout=5.0)


@pytest.fixture
def closed_port() -> int:
    return free_port()


# -- SMTP sink ---------------------------------------------------------------------


@pytest.fixture
def make_smtp_sink() -> Iterator[Callable[..., SmtpSink]]:
    """Start SMTP sinks on 127.0.0.1; keywords other than the sink's go to aiosmtpd's SMTP."""
    controllers: list[Controller] = []

    def start(
        data_replies: list[str] | None = None, rcpt_reply: str | None = None, **smtp: Any
    ) -> SmtpSink:
        sink = SmtpSink(data_replies, rcpt_reply)
        sink.port = free_port()
        controller = Controller(sink, hostname="127.0.0.1", port=sink.port, **smtp)
        controller.start()
        controllers.append(controller)
        return sink

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_sink(make_smtp_sink: Callable[..., SmtpSink]) -> SmtpSink:
    return make_smtp_sink()


@pytest.fixture
def smtp_sink_451_once(make_smtp_sink: Callable[..., SmtpSink]) -> SmtpSink:
    """Answers the first message with 451 (try again later), then accepts."""
    return make_smtp_sink(data_replies=["451 4.3.0 Try again later"])
