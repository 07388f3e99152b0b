"""The `log` channel: one structured line in the daemon's log (the journal)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from heartbeatd.channels.base import ParseEnv, SendContext
from heartbeatd.model import Alert, AlertEvent
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
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    return f'alert {text} name="{alert.name}"'


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    level = logging.INFO if alert.event is AlertEvent.UP else getattr(logging, opts.level.upper())
    log.log(level, "%s", render(alert, opts))
