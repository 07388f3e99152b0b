"""The `discord` channel: a Discord webhook message with one embed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heartbeatd.alerts import Alert
from heartbeatd.channels import http, text
from heartbeatd.channels.base import ParseEnv, SendContext
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.tables import Table
from heartbeatd.times import isoformat

RED, GREEN, GREY, AMBER = 0xD83C3E, 0x2EB67D, 0x95A5A6, 0xF1C40F
COLOURS = {
    AlertEvent.DOWN: RED,
    AlertEvent.ESCALATION: RED,
    AlertEvent.GROUP: GREY,
    AlertEvent.REMINDER: RED,
    AlertEvent.UP: GREEN,
    AlertEvent.TEST: GREY,
    AlertEvent.OVERLAP: AMBER,
    AlertEvent.ANOMALY: AMBER,
    AlertEvent.DAEMON_GAP: RED,
    AlertEvent.SILENCE: RED,
    AlertEvent.LATE: 0xF2C744,
    AlertEvent.HELD: GREY,
}
# Discord's limits: title 256, description 4096, field value 1024 characters.
OUTPUT_CHARS = 3000


@dataclass(frozen=True)
class Options:
    url: Secret


def parse_options(table: Table, env: ParseEnv) -> Options:
    url = http.secret_url(table, "url")
    return Options(url=url or Secret(""))


def render(alert: Alert, opts: Options) -> dict[str, Any]:
    description = text.headline(alert)
    if alert.event is AlertEvent.GROUP:
        # An embed holds at most 25 fields and 4096 characters of description.
        description += "\n" + text.member_list(alert, 3900)
    if alert.body.strip():
        output = text.excerpt(alert.body, OUTPUT_CHARS).replace("```", "'''")
        description += f"\n\n**Last output**\n```\n{output}\n```"
    embed: dict[str, Any] = {
        "title": text.title(alert)[:256],
        "description": description,
        "color": COLOURS[alert.event],
        "fields": [
            {"name": label, "value": value[:1024], "inline": True}
            for label, value in text.facts(alert)
        ]
        if alert.event is not AlertEvent.GROUP
        else [],
        "timestamp": isoformat(alert.at),
    }
    if alert.url:
        embed["url"] = alert.url
    # Job output may contain "@everyone": never let it ping anybody.
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    await http.request(ctx, "POST", opts.url, what="discord", json=render(alert, opts))
