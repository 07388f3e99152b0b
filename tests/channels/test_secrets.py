"""No channel leaks its secret: not in its options' repr, not in a delivery
error (message, repr or traceback), not in any log line.

Every channel type is configured against a failing local server (an error
status, or a refused connection) with the secret where that type keeps it:
URL path and query, a header, the bot token in the path, the SMTP password.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult

from heartbeatd.channels import CHANNEL_TYPES
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.model import Secret
from tests.channels.samples import DOWN, parse

SECRET = "s3cr3t-T0KEN-9f8e7d"
BOT_TOKEN = f"987654321:{SECRET}"


@dataclass
class Servers:
    webhook_sink: Any
    closed_port: int
    make_smtp_sink: Callable[..., Any]
    tmp_path: Path
    # Seconds a send may take; a case lowers it to provoke a timeout.
    timeout: float = 5.0

    @property
    def refused(self) -> str:
        return f"http://127.0.0.1:{self.closed_port}"

    def failing(self, status: int = 500) -> str:
        # The answer quotes the secret, as frameworks' 404/500 pages often quote the path.
        self.webhook_sink.answer((status, f"Cannot POST /hook/{SECRET}"))
        return self.webhook_sink.url

    def secret_file(self, value: str) -> str:
        path = self.tmp_path / "secret"
        path.write_text(value + "\n")
        return str(path)


# Each case gives the channel type and its table (plus the [smtp] table for email).
Case = Callable[[Servers], tuple[str, dict[str, Any], Any]]


def webhook_failing(s: Servers):
    url = f"{s.failing()}/hook/{SECRET}?token={SECRET}"
    return "webhook", {"url": url, "headers": {"Authorization": f"Bearer {SECRET}"}}, None


def webhook_timeout(s: Servers):
    # aiohttp's timeout errors quote the whole URL.
    s.webhook_sink.hold()
    s.timeout = 0.2
    return "webhook", {"url": f"{s.webhook_sink.url}/hook/{SECRET}"}, None


def webhook_refused(s: Servers):
    headers_file = s.tmp_path / "headers"
    headers_file.write_text(f"X-Token: {SECRET}\n")
    url = f"{s.refused}/hook/{SECRET}"
    return "webhook", {"url": url, "headers_file": str(headers_file)}, None


def slack_failing(s: Servers):
    return "slack", {"url_file": s.secret_file(f"{s.failing(404)}/services/{SECRET}")}, None


def slack_refused(s: Servers):
    return "slack", {"url": f"{s.refused}/services/{SECRET}"}, None


def discord_failing(s: Servers):
    return "discord", {"url": f"{s.failing(429)}/api/webhooks/1/{SECRET}"}, None


def discord_refused(s: Servers):
    return "discord", {"url_file": s.secret_file(f"{s.refused}/api/webhooks/1/{SECRET}")}, None


def ntfy_failing(s: Servers):
    return "ntfy", {"server": s.failing(403), "topic": "ops", "token": SECRET}, None


def ntfy_refused(s: Servers):
    return "ntfy", {"server": s.refused, "topic": "ops", "token_file": s.secret_file(SECRET)}, None


def telegram_failing(s: Servers):
    s.webhook_sink.answer(
        (500, {"ok": False, "error_code": 500, "description": f"Internal: bot{BOT_TOKEN}"})
    )
    data = {"bot_token": BOT_TOKEN, "chat_id": 1, "api_url": s.webhook_sink.url}
    return "telegram", data, None


def telegram_refused(s: Servers):
    data = {"bot_token_file": s.secret_file(BOT_TOKEN), "chat_id": 1, "api_url": s.refused}
    return "telegram", data, None


def email_login_refused(s: Servers):
    sink = s.make_smtp_sink(
        auth_require_tls=False, authenticator=lambda *args: AuthResult(success=False, handled=False)
    )
    smtp = sink.options(username="alerts", password=Secret(SECRET))
    return "email", {"to": ["ops@example.com"]}, smtp


def email_server_down(s: Servers):
    smtp = s.make_smtp_sink().options(
        port=s.closed_port, username="alerts", password=Secret(SECRET)
    )
    return "email", {"to": "ops@example.com"}, smtp


def command_failing(s: Servers):
    program = s.tmp_path / "notify.sh"
    program.write_text("#!/bin/sh\necho 'could not notify' >&2\nexit 1\n")
    program.chmod(0o755)
    return "command", {"command": [str(program), "--token", SECRET]}, None


def log_only(s: Servers):
    # Nothing secret to configure; the alert must still log without trouble.
    return "log", {"level": "error"}, None


CASES: list[Case] = [
    webhook_failing,
    webhook_timeout,
    webhook_refused,
    slack_failing,
    slack_refused,
    discord_failing,
    discord_refused,
    ntfy_failing,
    ntfy_refused,
    telegram_failing,
    telegram_refused,
    email_login_refused,
    email_server_down,
    command_failing,
    log_only,
]


def test_every_channel_type_has_a_leak_case(tmp_path: Path) -> None:
    servers = Servers(None, 1, lambda **kw: None, tmp_path)
    covered = {case.__name__.split("_")[0] for case in CASES}
    assert covered == set(CHANNEL_TYPES)
    assert servers.refused == "http://127.0.0.1:1"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
async def test_no_channel_leaks_its_secret(
    case: Case,
    webhook_sink,
    closed_port: int,
    make_smtp_sink,
    tmp_path: Path,
    ctx: SendContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    servers = Servers(webhook_sink, closed_port, make_smtp_sink, tmp_path)
    kind, data, smtp = case(servers)
    ctx = SendContext(session=ctx.session, timeout=servers.timeout)
    module = CHANNEL_TYPES[kind]
    opts, problems = parse(module, data, smtp=smtp, base_dir=tmp_path)
    assert problems == []
    assert SECRET not in repr(opts)
    assert SECRET not in str(opts)

    error: DeliveryError | None = None
    try:
        await module.send(DOWN, opts, ctx)
    except DeliveryError as exc:
        error = exc
    if kind != "log":
        assert error is not None, "the failing server should have failed the send"
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
        # What a logger prints for logger.exception(...): the chain included.
        assert SECRET not in "".join(traceback.format_exception(error))
    assert SECRET not in caplog.text
