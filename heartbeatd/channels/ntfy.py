"""The `ntfy` channel: a push notification through ntfy.sh or a self-hosted ntfy.

Published as JSON to the server's root URL, so topic, title, tags and priority
travel in the body and only the optional token goes in a header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from heartbeatd.alerts import Alert
from heartbeatd.channels import http, text
from heartbeatd.channels.base import ParseEnv, SendContext
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.tables import Table

PRIORITIES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5}
TAGS = {
    AlertEvent.DOWN: "rotating_light",
    AlertEvent.ESCALATION: "rotating_light",
    AlertEvent.GROUP: "clipboard",
    AlertEvent.REMINDER: "rotating_light",
    AlertEvent.UP: "white_check_mark",
    AlertEvent.TEST: "test_tube",
    AlertEvent.OVERLAP: "warning",
    AlertEvent.ANOMALY: "warning",
    AlertEvent.DAEMON_GAP: "warning",
    AlertEvent.SILENCE: "warning",
    AlertEvent.LATE: "warning",
    AlertEvent.HELD: "zzz",
}
_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
# ntfy keeps messages up to 4096 bytes; the output excerpt must leave room.
OUTPUT_CHARS = 1000


@dataclass(frozen=True)
class Options:
    topic: str
    server: str = "https://ntfy.sh"
    # For down and reminder alerts.
    priority: int = 4
    # For up and test alerts: a recovery need not wake anybody.
    priority_up: int = 3
    tags: tuple[str, ...] = ()
    token: Secret | None = None


def parse_options(table: Table, env: ParseEnv) -> Options:
    server = http.plain_url(table, "server", "https://ntfy.sh")
    topic = table.text("topic")
    if topic is not None and not _TOPIC.fullmatch(topic):
        table.error("topic", f'expected 1 to 64 letters, digits, "-" or "_", got "{topic}"')
    priority = _priority(table, "priority", 4)
    priority_up = _priority(table, "priority_up", 3)
    tags = table.text_list("tags", [])
    token = table.secret("token", required=False)
    return Options(
        topic=topic or "",
        server=server,
        priority=priority,
        priority_up=priority_up,
        tags=tuple(tags),
        token=token,
    )


def render(alert: Alert, opts: Options) -> dict[str, Any]:
    urgent = alert.event is not AlertEvent.UP and alert.event is not AlertEvent.TEST
    lines = [text.headline(alert), ""]
    if alert.event is AlertEvent.GROUP:
        lines.append(text.member_list(alert, 3500))
    else:
        lines += [f"{label}: {value}" for label, value in text.facts(alert)[1:]]
    if alert.body.strip():
        lines += ["", "Last output:", text.excerpt(alert.body, OUTPUT_CHARS)]
    payload: dict[str, Any] = {
        "topic": opts.topic,
        "title": text.title(alert),
        "message": "\n".join(lines),
        "priority": opts.priority if urgent else opts.priority_up,
        "tags": [TAGS[alert.event], *opts.tags],
    }
    if alert.url:
        payload["click"] = alert.url
    return payload


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    headers = {}
    if opts.token is not None:
        headers["Authorization"] = f"Bearer {opts.token.reveal()}"
    root = opts.server.rstrip("/") + "/"
    await http.request(ctx, "POST", root, what="ntfy", json=render(alert, opts), headers=headers)


def _priority(table: Table, key: str, default: int) -> int:
    value = table.raw(key, None)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return value
    if isinstance(value, str) and value.lower() in PRIORITIES:
        return PRIORITIES[value.lower()]
    shown = f'"{value}"' if isinstance(value, str) else repr(value).lower()
    names = ", ".join(f'"{name}"' for name in PRIORITIES)
    table.error(key, f"expected 1 to 5 or one of {names}, got {shown}")
    return default
