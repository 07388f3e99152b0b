"""What the engine knows of each change on its way to SQLite.

A change is in memory at once and on disk when the store's future resolves,
which may fail. These records let the engine roll a monitor back to the state
that last reached the disk, and derive again the changes that only follow from
the rules (start-up, a reload, a wall clock jump), as the engine's docstring
tells. No event loop here beyond the store's futures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from heartbeatd import policy, states
from heartbeatd.config import Monitor
from heartbeatd.model import MonitorState


@dataclass(frozen=True, slots=True)
class Rederive:
    """How a start-up, reload or clock-jump change is derived again from
    another state when the state it was computed from is rolled back."""

    now: datetime
    rules_changed: bool = False
    startup: bool = False


@dataclass(eq=False, slots=True)
class Staged:
    """A change handed to the store and not yet known to be on disk."""

    state: MonitorState
    # The store's future; only the engine waits on it, so nobody cancels it.
    future: asyncio.Future[None]
    # The change of the same monitor staged just before, while it is pending.
    prev: Staged | None
    rederive: Rederive | None = None
    alerts: bool = False
    # A ping's failure is logged (and answered 503) by the web layer.
    ping: bool = False
    # False once rolled back: the store fails it (it builds on a failed change).
    live: bool = True
    # What the caller of handle_ping, pause or resume awaits.
    answer: asyncio.Future[None] | None = None


@dataclass(slots=True)
class StartupSave:
    """Start-up's one write of every changed state, while it is pending.

    A change of a monitor in it builds on it like on any staged change; the
    `Staged` for its part is made only then (`parts`), not for 100,000
    monitors up front.
    """

    future: asyncio.Future[None]
    changed: Mapping[str, MonitorState]
    # The stored state of each changed monitor that had one.
    before: Mapping[str, MonitorState]
    rederive: Rederive
    parts: dict[str, Staged]


def derive_again(
    monitor: Monitor | None, state: MonitorState | None, how: Rederive
) -> MonitorState | None:
    """`state` brought forward as `how` says; a removed monitor's stays as it is."""
    if monitor is None:
        return state
    if state is None:
        return states.first_seen(monitor, how.now)
    if how.rules_changed:
        state = states.on_rules_changed(state, monitor)
    if how.startup:
        state = policy.on_startup(states.on_startup(state, monitor, how.now), monitor, how.now)
    return state


def failure(future: asyncio.Future[None]) -> BaseException | None:
    if future.cancelled():
        # Nobody but the engine holds the store's futures; should one be
        # cancelled all the same, its outcome is unknown: assume the worst.
        return asyncio.CancelledError()
    return future.exception()
