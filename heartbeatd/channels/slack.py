"""The `slack` channel: a Slack incoming webhook (Block Kit plus a text fallback)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heartbeatd.alerts import Alert
from heartbeatd.channels import http, text
from heartbeatd.channels.base import ParseEnv, SendContext
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.tables import Table

# Blocks cannot be coloured; the emoji in the first line carries the colour.
EMOJI = {
    AlertEvent.DOWN: ":red_circle:",
    AlertEvent.ESCALATION: ":rotating_light:",
    AlertEvent.GROUP: ":clipboard:",
    AlertEvent.REMINDER: ":red_circle:",
    AlertEvent.UP: ":large_green_circle:",
    AlertEvent.TEST: ":white_circle:",
    AlertEvent.OVERLAP: ":warning:",
    AlertEvent.ANOMALY: ":warning:",
    AlertEvent.DAEMON_GAP: ":warning:",
    AlertEvent.SILENCE: ":warning:",
    AlertEvent.LATE: ":large_yellow_circle:",
    AlertEvent.HELD: ":white_circle:",
}
# A section's text may hold 3000 characters; leave room for the fences.
OUTPUT_CHARS = 2500


@dataclass(frozen=True)
class Options:
    url: Secret


def parse_options(table: Table, env: ParseEnv) -> Options:
    url = http.secret_url(table, "url")
    return Options(url=url or Secret(""))


def render(alert: Alert, opts: Options) -> dict[str, Any]:
    title = text.title(alert)
    if alert.event is AlertEvent.GROUP:
        # A section holds at most 3000 characters, and ten fields.
        listed = escape(text.member_list(alert, 2800))
        group = [_section(f"{EMOJI[alert.event]} *{escape(title)}*\n{listed}")]
        return {"text": title, "blocks": group}
    blocks: list[dict[str, Any]] = [
        _section(f"{EMOJI[alert.event]} *{escape(title)}*\n{escape(text.headline(alert))}"),
        {
            "type": "section",
            # Slack shows at most ten fields in a section.
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"}
                for label, value in text.facts(alert)[:10]
            ],
        },
    ]
    if alert.body.strip():
        output = escape(text.excerpt(alert.body, OUTPUT_CHARS))
        blocks.append(_section(f"*Last output*\n```{output}```"))
    if alert.url:
        link = f"<{escape(alert.url)}|Open in heartbeatd>"
        if alert.ack_url:
            link += f" · <{escape(alert.ack_url)}|Acknowledge>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
    # `text` is what notifications and old clients show instead of the blocks.
    return {"text": f"{title}: {text.explain(alert)}", "blocks": blocks}


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    await http.request(ctx, "POST", opts.url, what="slack", json=render(alert, opts))


def escape(value: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are special."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(markdown: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown}}
