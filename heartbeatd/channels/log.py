"""The `log` channel: one structured line in the daemon's log (the journal)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from heartbeatd.alerts import Alert
from heartbeatd.channels.base import ParseEnv, SendContext
from heartbeatd.model import AlertEvent
from heartbeatd.tables import Table
from heartbeatd.times import isoformat

log = logging.getLogger("heartbeatd.alert")


@dataclass(frozen=True)
class Options:
    level: str = "warning"


LEVELS = ("debug", "info", "warning", "error", "critical")


def parse_options(table: Table, env: ParseEnv) -> Options:
    return Options(level=table.choice("level", LEVELS, "warning"))


def render(alert: Alert, opts: Options) -> str:
    if alert.is_daemon_event:
        # About heartbeatd itself: no monitor, status or reason to tell.
        return (
            f"alert event={alert.event.value} from={isoformat(alert.since) or 'none'}"
            f' to={isoformat(alert.at)} count={alert.count} text="{_escape(alert.note)}"'
        )
    fields = {
        "event": alert.event.value,
        "monitor": alert.monitor,
        "status": alert.status.value,
        "reason": alert.reason.value,
        "at": isoformat(alert.at),
        "last_ping": isoformat(alert.last_ping),
        "expected_at": isoformat(alert.expected_at),
    }
    if alert.downtime is not None:
        fields["downtime"] = f"{int(alert.downtime)}s"
    # A run's length, and what it was held against (too short, anomaly).
    for key, seconds in (
        ("duration", alert.duration),
        ("min_runtime", alert.min_runtime),
        ("median", alert.median),
    ):
        if seconds is not None:
            fields[key] = f"{seconds:g}s"
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    line = f'alert {text} name="{alert.name}"'
    if alert.body:
        # What the job printed is often the cause: its first line, and how
        # much more there is (the whole of it is in the ping history).
        # Leading blank lines skipped; only what may be shown is looked at.
        head = alert.body.lstrip()[: FIRST_LINE_CHARS + 1]
        first = _LINE_END.split(head, maxsplit=1)[0]
        size = len(alert.body.encode("utf-8", "surrogatepass"))
        line += f' body_first_line="{_escape(_cut(first))}" body_bytes={size}'
    return line


# Of the body's first line, in characters: a log line, not a dump.
FIRST_LINE_CHARS = 200
# Quotes, backslashes and control characters, which would break the
# key="value" reading of the line or act on a terminal.
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_LINE_END = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n"}


def _cut(text: str) -> str:
    return text if len(text) <= FIRST_LINE_CHARS else text[: FIRST_LINE_CHARS - 1] + "\u2026"


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text)


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    level = logging.INFO if alert.event is AlertEvent.UP else getattr(logging, opts.level.upper())
    log.log(level, "%s", render(alert, opts))
