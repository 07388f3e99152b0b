"""What the engine knows of each change on its way to SQLite.

A change is in memory at once and on disk when the store's future resolves,
which may fail. These records (`Staged`, kept per monitor in a `Ledger`) let
the engine roll a monitor back to the state that last reached the disk, and
derive again the changes that only follow from the rules (start-up, a reload,
a wall clock jump), as the engine's docstring tells. How a reload changes a
monitor's state is here too (`on_reload`), with the way to derive it again,
and how start-up does (`derive_startup`).
No event loop here beyond the store's futures.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from heartbeatd import policy, states
from heartbeatd.config import Monitor
from heartbeatd.model import MonitorState

log = logging.getLogger(__name__)


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
    return derive(monitor, state, how)


def derive(monitor: Monitor, state: MonitorState | None, how: Rederive) -> MonitorState:
    """`state` (None: never seen) brought forward as `how` says."""
    if state is None:
        return states.first_seen(monitor, how.now)
    if how.rules_changed:
        state = states.on_rules_changed(state, monitor)
    if how.startup:
        state = policy.on_startup(states.on_startup(state, monitor, how.now), monitor, how.now)
    return state


def derive_startup(
    monitors: Mapping[str, Monitor], loaded: dict[str, MonitorState], how: Rederive
) -> tuple[dict[str, MonitorState], dict[str, MonitorState]]:
    """Bring the state of every monitor in `loaded` (the stored states, changed
    in place) up to start-up as `how` says; a monitor without one is seen for
    the first time. Returns the states that changed, and the stored states
    they replace."""
    changed = {}
    before = {}
    # States are immutable, and a first-seen state depends only on the
    # schedule: monitors sharing a schedule share one object.
    fresh: dict[object, MonitorState] = {}
    for slug, monitor in monitors.items():
        old = loaded.get(slug)
        if old is None:
            new = fresh.get(monitor.schedule) or fresh.setdefault(
                monitor.schedule, states.first_seen(monitor, how.now)
            )
        else:
            new = derive(monitor, old, how)
        loaded[slug] = new
        # Identity first: a stored state is most often kept as it is, and
        # comparing 100,000 states field by field costs.
        if new is not old and new != old:
            changed[slug] = new
            if old is not None:
                before[slug] = old
    return changed, before


def on_reload(
    before: Monitor | None, monitor: Monitor, old: MonitorState | None, now: datetime
) -> tuple[str, MonitorState, Rederive | None] | None:
    """What a reload did to a monitor it touched ("added" or "changed"), its
    new state, and how to derive that again after a rollback (None: it is
    judged again at the next tick anyway); None when the monitor is unchanged."""
    if old is None:
        how = Rederive(now)
        return "added", derive(monitor, None, how), how
    if before is None:
        # Back after being removed: it was not watched meanwhile.
        how = Rederive(now, rules_changed=True, startup=True)
        return "added", derive(monitor, old, how), how
    if before.schedule != monitor.schedule:
        new = policy.on_reload(states.on_rules_changed(old, monitor), now)
        return "changed", new, Rederive(now, rules_changed=True)
    if before is monitor or before == monitor:
        # Unchanged (the common case): nothing to recompute or move.
        return None
    # A changed policy: a down alert held back (by a parent, or by the
    # threshold) is judged again at the next tick.
    return "changed", policy.on_reload(old, now), None


class Ledger:
    """Per monitor, the changes on their way to disk and the state that last
    reached it. It settles each change when the store's future resolves: a
    failed one rolls the monitor back, through `restore`, to the stored
    state with the rolled-back re-derivations derived again."""

    def __init__(
        self,
        *,
        monitor: Callable[[str], Monitor | None],
        restore: Callable[[str, MonitorState | None], None],
        alerted: Callable[[], None],
    ) -> None:
        self._monitor = monitor
        self._restore = restore
        self._alerted = alerted
        # The newest change of each monitor that is still on its way to disk.
        self._tail: dict[str, Staged] = {}
        # The stored state (None: never stored) of each monitor whose state in
        # memory is not (yet) the stored one; any other monitor's is.
        self._committed: dict[str, MonitorState | None] = {}
        # Re-derivations rolled back and not yet stored again, per monitor.
        self._unsaved: dict[str, tuple[Rederive, ...]] = {}
        self._startup: StartupSave | None = None

    def pending(self, slug: str) -> Staged | None:
        """The newest change of the monitor still on its way to disk, if any."""
        staged = self._tail.get(slug)
        startup = self._startup
        if staged is None and startup is not None and slug in startup.changed:
            staged = self._startup_part(startup, slug)
        return staged

    def add(self, slug: str, old: MonitorState | None, staged: Staged) -> None:
        """`staged`, computed from `old`, is now the monitor's newest change;
        it is settled when its future resolves."""
        # With nothing on its way and nothing to store again, the state this
        # change was computed from is the stored one.
        self._committed.setdefault(slug, old)
        self._tail[slug] = staged
        staged.future.add_done_callback(functools.partial(self._settle, slug, staged))

    def add_startup(self, startup: StartupSave) -> None:
        """Start-up's one write of every changed state."""
        self._startup = startup
        startup.future.add_done_callback(self._settle_startup)

    def is_unsaved(self, slug: str) -> bool:
        """A state re-derived after a rollback is not yet stored again."""
        return slug in self._unsaved

    def must_store_again(self, slug: str) -> bool:
        """Unsaved, and no change on its way will store it."""
        return slug in self._unsaved and slug not in self._tail

    def _startup_part(self, startup: StartupSave, slug: str) -> Staged:
        part = Staged(startup.changed[slug], startup.future, None, startup.rederive)
        startup.parts[slug] = part
        self._committed[slug] = startup.before.get(slug)
        self._tail[slug] = part
        return part

    def _settle(self, slug: str, staged: Staged, future: asyncio.Future[None]) -> None:
        error = failure(future)
        if error is None:
            self._saved(slug, staged)
        else:
            if self._roll_back(slug, staged) and not staged.ping:
                log.error("state not saved, rolled back monitor=%s error=%s", slug, error)
        answer = staged.answer
        if answer is not None and not answer.done():
            if error is None:
                answer.set_result(None)
            else:
                answer.set_exception(error)

    def _settle_startup(self, future: asyncio.Future[None]) -> None:
        startup, self._startup = self._startup, None
        assert startup is not None
        error = failure(future)
        if error is None:
            # A monitor changed since has its part; the others are on disk
            # as they are in memory.
            for slug, part in startup.parts.items():
                self._saved(slug, part)
            return
        log.error(
            "monitor states not saved at start-up count=%d error=%s; retrying",
            len(startup.changed),
            error,
        )
        for slug in startup.changed:
            part = startup.parts.get(slug) or self._startup_part(startup, slug)
            self._roll_back(slug, part)

    def _saved(self, slug: str, staged: Staged) -> None:
        # Changes resolve in the order they were staged: this one is on disk,
        # and everything before it is.
        staged.prev = None
        self._unsaved.pop(slug, None)
        if self._tail.get(slug) is staged:
            del self._tail[slug]
            self._committed.pop(slug, None)
        else:
            self._committed[slug] = staged.state
        if staged.alerts:
            self._alerted()

    def _roll_back(self, slug: str, failed: Staged) -> bool:
        """Back to the stored state after `failed` (and so every change built
        on it) failed; False if an earlier failure already rolled it back."""
        if not failed.live:
            return False
        lost: list[Staged] = []
        one = self._tail.pop(slug, None)
        while one is not None and one is not failed:
            lost.append(one)
            one = one.prev
        lost.append(failed)
        again = self._unsaved.pop(slug, ())
        for one in reversed(lost):
            one.live = False
            if one.rederive is not None:
                again += (one.rederive,)
        stored = self._committed.pop(slug, None)
        state = stored
        monitor = self._monitor(slug)
        for how in again:
            state = derive_again(monitor, state, how)
        if state != stored:
            self._committed[slug] = stored
            self._unsaved[slug] = again
        self._restore(slug, state)
        return True


def failure(future: asyncio.Future[None]) -> BaseException | None:
    if future.cancelled():
        # Nobody but the engine holds the store's futures; should one be
        # cancelled all the same, its outcome is unknown: assume the worst.
        return asyncio.CancelledError()
    return future.exception()
