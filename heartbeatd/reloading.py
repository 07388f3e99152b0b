"""What a reload counts and tells: the reload counters /metrics shows, the
reload status file `heartbeatd reload` waits on, and the log fields of a
reload. The daemon does the reload itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from heartbeatd.clock import Clock
from heartbeatd.config import Config
from heartbeatd.systemd import ReloadStatus, reload_status_path, write_reload_status
from heartbeatd.times import isoformat

# The daemon's logger: these lines are the daemon's and read as such.
log = logging.getLogger("heartbeatd.daemon")


@dataclass
class Reloads:
    ok: int = 0
    failed: int = 0
    last_at: datetime | None = None
    last_ok: bool = True
    # Reloads begun since start: `heartbeatd reload` waits for a higher one.
    generation: int = 0


def report_reload(clock: Clock, db_path: Path, status: ReloadStatus) -> None:
    """Write the reload status next to the database; a failure is logged."""
    at = isoformat(clock.now()) or ""
    path = reload_status_path(db_path)
    try:
        write_reload_status(path, replace(status, at=at))
    except OSError as exc:
        # `heartbeatd reload` then times out and points at this log.
        log.error("cannot write the reload status path=%s error=%s", path, exc)


def needs_restart(old: Config, new: Config) -> list[str]:
    changed = []
    if old.server.listen != new.server.listen:
        changed.append("server.listen")
    if old.storage.path != new.storage.path:
        changed.append("storage.path")
    if old.storage.synchronous != new.storage.synchronous:
        changed.append("storage.synchronous")
    # The self-ping's worker starts with the daemon; a reload may change its
    # URL or stop its pings, not start it.
    if old.selfping.ping_url is None and new.selfping.ping_url is not None:
        changed.append("self.ping_url")
    return changed


def some(slugs: list[str], most: int = 10) -> str:
    """A log field listing slugs: "-" for none, the first ten and a count after."""
    if not slugs:
        return "-"
    shown = ",".join(slugs[:most])
    return shown if len(slugs) <= most else f"{shown},(+{len(slugs) - most} more)"
