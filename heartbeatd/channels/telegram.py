"""The `telegram` channel: a message from a bot through the Bot API's sendMessage.

The bot token is part of the request path, so no error message may quote the
URL; Telegram's own error descriptions are passed on with the token cut out.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any

from heartbeatd.alerts import Alert
from heartbeatd.channels import http, text
from heartbeatd.channels.base import DeliveryError, ParseEnv, SendContext
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.tables import Table

EMOJI = {
    AlertEvent.DOWN: "🔴",
    AlertEvent.ESCALATION: "🚨",
    AlertEvent.GROUP: "📋",
    AlertEvent.REMINDER: "🔴",
    AlertEvent.UP: "🟢",
    AlertEvent.TEST: "⚪",
    AlertEvent.OVERLAP: "🟡",
    AlertEvent.ANOMALY: "🟡",
    AlertEvent.DAEMON_GAP: "⚠️",
    AlertEvent.SILENCE: "⚠️",
    AlertEvent.LATE: "🟡",
    AlertEvent.HELD: "⚪",
}
# A message may hold 4096 characters; the output excerpt leaves room for the rest.
OUTPUT_CHARS = 1500
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_CHAT = re.compile(r"-?[0-9]+|@[A-Za-z0-9_]{4,}")


@dataclass(frozen=True)
class Options:
    bot_token: Secret
    chat_id: int | str
    api_url: str = "https://api.telegram.org"


def parse_options(table: Table, env: ParseEnv) -> Options:
    token = table.secret("bot_token")
    if token is not None and not _TOKEN.fullmatch(token.reveal()):
        key = "bot_token_file" if table.has("bot_token_file") else "bot_token"
        # Describe the shape only: the value is the secret.
        table.error(key, 'expected a token as BotFather gives it ("<digits>:<letters>")')
        token = None
    chat_id = _chat_id(table)
    api_url = http.plain_url(table, "api_url", "https://api.telegram.org")
    return Options(bot_token=token or Secret(""), chat_id=chat_id, api_url=api_url)


def render(alert: Alert, opts: Options) -> dict[str, Any]:
    lines = [
        f"{EMOJI[alert.event]} <b>{html.escape(text.title(alert))}</b>",
        html.escape(text.headline(alert)),
        "",
    ]
    if alert.event is AlertEvent.GROUP:
        # A message holds at most 4096 characters.
        lines.append(html.escape(text.member_list(alert, 3500)))
    else:
        lines += [f"<b>{label}:</b> {html.escape(value)}" for label, value in text.facts(alert)]
    if alert.url:
        lines.append(f'<a href="{html.escape(alert.url)}">Open in heartbeatd</a>')
    if alert.body.strip():
        lines += [
            "",
            "<b>Last output:</b>",
            f"<pre>{html.escape(text.excerpt(alert.body, OUTPUT_CHARS))}</pre>",
        ]
    return {
        "chat_id": opts.chat_id,
        "text": "\n".join(lines),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    token = opts.bot_token.reveal()
    url = Secret(f"{opts.api_url.rstrip('/')}/bot{token}/sendMessage")
    where = f"telegram to {http.host_of(opts.api_url)}"
    status, body = await http.fetch(ctx, "POST", url, what="telegram", json=render(alert, opts))
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        error = http.classify_status(status, where)
        if error is not None:
            raise error
        # A 2xx that is not the Bot API's JSON: api_url points somewhere else.
        raise DeliveryError(f"{where}: HTTP {status}, but not a Bot API answer", permanent=True)
    if answer.get("ok") is True and 200 <= status < 300:
        return
    raise _classify(answer, status, where, token)


def _classify(answer: dict[str, Any], status: int, where: str, token: str) -> DeliveryError:
    # Telegram sometimes answers 200 with "ok": false; its error_code is the truth then.
    code = answer.get("error_code")
    if not isinstance(code, int) or (200 <= status < 300 and code < 400):
        code = status if status >= 400 else 400
    error = http.classify_status(code, where) or DeliveryError(f"{where}: HTTP {code}")
    description = str(answer.get("description") or "").replace(token, "<secret>")
    detail = f": {description[:200]}" if description else ""
    params = answer.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("retry_after"), int):
        detail += f" (retry after {params['retry_after']}s)"
    return DeliveryError(f"{error}{detail}", permanent=error.permanent)


def _chat_id(table: Table) -> int | str:
    value = table.raw("chat_id")
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _CHAT.fullmatch(value):
        return int(value) if value.lstrip("-").isdigit() else value
    shown = f'"{value}"' if isinstance(value, str) else repr(value).lower()
    table.error(
        "chat_id",
        f'expected a chat id such as -1001234567890 or a channel such as "@ops_alerts", '
        f"got {shown}",
    )
    return 0
