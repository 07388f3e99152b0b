"""Real local servers for the channel tests: an aiohttp webhook sink and an
aiosmtpd SMTP sink. Nothing of aiohttp or aiosmtplib is patched."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from heartbeatd.channels.base import SendContext
from heartbeatd.channels.email import SmtpOptions


def free_port() -> int:
    """A port nobody listens on (right after this call): connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def ctx() -> AsyncIterator[SendContext]:
    async with aiohttp.ClientSession() as session:
        yield SendContext(session=session, timeout=5.0)


@pytest.fixture
def closed_port() -> int:
    return free_port()


# -- webhook sink ------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    # Path and query, as the server saw them.
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookSink:
    """Records every request; answers from a queue of (status, body), then 200."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: list[tuple[int, Any]] = field(default_factory=list)
    # Set to hang every request (for timeouts).
    hang: bool = False

    def answer(self, *answers: int | tuple[int, Any]) -> None:
        for one in answers:
            self.answers.append(one if isinstance(one, tuple) else (one, ""))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path_qs, dict(request.headers), body))
        if self.hang:
            await asyncio.Event().wait()
        status, reply = self.answers.pop(0) if self.answers else (200, "")
        if isinstance(reply, (dict, list)):
            return web.json_response(reply, status=status)
        return web.Response(status=status, text=reply)


@pytest.fixture
async def webhook_sink(aiohttp_server: Callable[..., Any]) -> WebhookSink:
    sink = WebhookSink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink.handle)
    # No access log: it would print the request path, a secret the sink's side.
    server = await aiohttp_server(app, access_log=None)
    sink.url = str(server.make_url("")).rstrip("/")
    return sink


# -- SMTP sink ---------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpSink:
    """An aiosmtpd handler that records messages.

    `data_replies` answer the DATA of the next messages in turn (e.g. a 451
    once); `rcpt_reply` answers every RCPT (e.g. a 550).
    """

    def __init__(self, data_replies: list[str] | None = None, rcpt_reply: str | None = None):
        self.data_replies = list(data_replies or [])
        self.rcpt_reply = rcpt_reply
        self.messages: list[Received] = []
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_replies:
            return self.data_replies.pop(0)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def options(self, **changes: Any) -> SmtpOptions:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "tls": False,
            "starttls": False,
            "username": None,
            "password": None,
            "sender": "heartbeatd <hb@example.com>",
            "timeout": 5.0,
        }
        values.update(changes)
        return SmtpOptions(**values)


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
