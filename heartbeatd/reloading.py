"""What a reload counts and tells: the reload counters /metrics shows, the
reload status file `heartbeatd reload` waits on, and the log fields of a
reload; and the part of a reload that runs in a thread (merge and compare).
The daemon does the reload itself."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from heartbeatd.clock import Clock
from heartbeatd.config import Config, reload_problem
from heartbeatd.provision import merge_and_plan
from heartbeatd.reloadplan import ReloadPlan
from heartbeatd.store import Definition
from heartbeatd.systemd import (
    APPLIED,
    REJECTED,
    ReloadStatus,
    reload_status_path,
    write_reload_status,
)
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


def plan_file_reload(
    running: Config,
    from_file: Config,
    definitions: Mapping[str, Definition],
    with_state: list[str],
    forced: bool,
) -> tuple[Config, ReloadPlan, str | None]:
    """In a thread: the new config (the file's monitors, then the API's, read
    again against the new [defaults]; the file's win a clash), what the
    reload changes, and why it needs --force (or None)."""
    new, plan = merge_and_plan(running, from_file, definitions, with_state)
    problem = None if forced else reload_problem(running, new)
    return new, plan, problem


def count_reload(
    reloads: Reloads,
    forced: bool,
    monitors: int,
    *,
    errors: list[str] | None = None,
    diff: dict[str, list[str]] | None = None,
) -> ReloadStatus:
    """Count a finished reload in `reloads`, and say how it ended."""
    if errors:
        reloads.failed += 1
        reloads.last_ok = False
    else:
        reloads.ok += 1
        reloads.last_ok = True
    diff = diff or {}
    return ReloadStatus(
        os.getpid(),
        reloads.generation,
        REJECTED if errors else APPLIED,
        forced,
        monitors=monitors,
        added=len(diff.get("added", ())),
        removed=len(diff.get("removed", ())),
        changed=len(diff.get("changed", ())),
        errors=tuple(errors or ()),
    )
