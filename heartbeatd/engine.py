"""The engine: config + state machine + timer wheel + store.

It owns the in-memory state of every monitor. Every change goes through
`_commit`: the new state is in memory at once (so the next ping sees it) and in
SQLite when the returned future resolves. If the write fails, the change is
rolled back in memory, so a flip whose alert could not be stored happens again
on the next ping or tick instead of being lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from heartbeatd import states
from heartbeatd.config import Config, Monitor
from heartbeatd.model import Alert, AlertEvent, Flip, MonitorState, Ping, Status, isoformat
from heartbeatd.store import PingRecord, Store
from heartbeatd.wheel import TimerWheel

log = logging.getLogger(__name__)

# After a failed write, try a tick's change again this much later.
RETRY_AFTER = timedelta(seconds=5)


class Engine:
    def __init__(
        self, config: Config, store: Store, *, on_alert: Callable[[], None] = lambda: None
    ) -> None:
        self.config = config
        self.store = store
        self.on_alert = on_alert
        self.wheel: TimerWheel[str] = TimerWheel()
        self.states: dict[str, MonitorState] = {}
        self.pings_by_kind: Counter[str] = Counter()
        self._uuids: dict[str, str] = {}
        self._last_tick = 0.0
        self._index_uuids()

    # -- lookups ------------------------------------------------------------------

    def monitor(self, slug: str) -> Monitor | None:
        return self.config.monitors.get(slug)

    def slug_for_uuid(self, uuid: str) -> str | None:
        return self._uuids.get(uuid)

    def state(self, slug: str) -> MonitorState:
        return self.states[slug]

    def _index_uuids(self) -> None:
        self._uuids = {m.uuid: slug for slug, m in self.config.monitors.items() if m.uuid}

    # -- start-up -----------------------------------------------------------------

    async def recover(self, now: datetime) -> None:
        """Load every stored state and bring it up to `now` without false alarms."""
        self.states = await self.store.load_states()
        changed = {}
        # States are immutable, and a first-seen state depends only on the
        # schedule: monitors sharing a schedule share one object.
        fresh: dict[object, MonitorState] = {}
        for slug, monitor in self.config.monitors.items():
            old = self.states.get(slug)
            if old is None:
                new = fresh.get(monitor.schedule) or fresh.setdefault(
                    monitor.schedule, states.first_seen(monitor, now)
                )
            else:
                new = states.on_startup(states.on_rules_changed(old, monitor), monitor, now)
            self.states[slug] = new
            self._schedule(slug)
            if new != old:
                changed[slug] = new
        # One write for all of them (on a first start, every monitor). It is
        # not awaited: it is queued ahead of any ping, so nothing can overtake
        # it, and start-up need not wait for 100,000 rows to reach the disk.
        if changed:
            self.store.submit_states(changed).add_done_callback(_log_failed_save)
        log.info("monitors loaded count=%d stored=%d", len(self.config.monitors), len(self.states))

    def forgive(self, now: datetime) -> None:
        """Treat passed deadlines as start-up does: after a wall-clock jump forward."""
        for slug, monitor in self.config.monitors.items():
            old = self.states[slug]
            new = states.on_startup(old, monitor, now)
            if new != old:
                self._commit(slug, old, new)
                self._schedule(slug)

    # -- events -------------------------------------------------------------------

    def handle_ping(self, slug: str, ping: Ping) -> asyncio.Future[None]:
        """Apply a ping; the future resolves once it is committed to SQLite."""
        monitor = self.config.monitors[slug]
        old = self.states[slug]
        step = states.on_ping(old, ping, monitor)
        self.pings_by_kind[ping.kind.value] += 1
        record = PingRecord(ping=ping, duration=step.duration)
        future = self._commit(slug, old, step.state, ping=record, flip=step.flip)
        self._schedule(slug)
        return future

    def tick(self, now: datetime) -> int:
        """Apply every deadline that has passed; returns how many monitors were due."""
        self._last_tick = now.timestamp()
        due = self.wheel.pop_due(self._last_tick)
        for slug in due:
            # One bad monitor never stops the loop.
            try:
                self._tick_one(slug, now)
            except Exception:
                log.exception("tick failed monitor=%s", slug)
        return len(due)

    def _tick_one(self, slug: str, now: datetime) -> None:
        monitor = self.config.monitors.get(slug)
        if monitor is None:
            return
        old = self.states[slug]
        step = states.on_tick(old, monitor, now)
        if step.state != old:
            self._commit(slug, old, step.state, flip=step.flip)
        self._schedule(slug)

    def pause(self, slug: str) -> asyncio.Future[None]:
        old = self.states[slug]
        future = self._commit(slug, old, states.pause(old))
        self._schedule(slug)
        return future

    def resume(self, slug: str, now: datetime) -> asyncio.Future[None]:
        old = self.states[slug]
        future = self._commit(slug, old, states.resume(old, self.config.monitors[slug], now))
        self._schedule(slug)
        return future

    # -- reload -------------------------------------------------------------------

    def apply_config(self, config: Config, now: datetime) -> dict[str, list[str]]:
        """Swap in a validated config and diff it with the running one by slug."""
        old_config, self.config = self.config, config
        self._index_uuids()
        diff: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for slug in old_config.monitors.keys() - config.monitors.keys():
            # Its state and history stay in SQLite; it just stops being watched.
            self.wheel.cancel(slug)
            diff["removed"].append(slug)
        for slug, monitor in config.monitors.items():
            before = old_config.monitors.get(slug)
            old = self.states.get(slug)
            if old is None:
                new = states.first_seen(monitor, now)
                diff["added"].append(slug)
            elif before is None:
                # Back after being removed: it was not watched meanwhile.
                new = states.on_startup(states.on_rules_changed(old, monitor), monitor, now)
                diff["added"].append(slug)
            elif before.schedule != monitor.schedule:
                new = states.on_rules_changed(old, monitor)
                diff["changed"].append(slug)
            elif before is monitor or before == monitor:
                # Unchanged (the common case): nothing to recompute or move.
                continue
            else:
                new = old
                diff["changed"].append(slug)
            if new != old:
                self._commit(slug, old, new)
            self._schedule(slug)
        for key in diff:
            diff[key].sort()
        return diff

    # -- plumbing -----------------------------------------------------------------

    def _schedule(self, slug: str, *, retry: bool = False) -> None:
        monitor = self.config.monitors.get(slug)
        when = states.next_deadline(self.states[slug], monitor) if monitor else None
        if when is None:
            self.wheel.cancel(slug)
            return
        at = when.timestamp()
        if retry:
            # A deadline already behind us would be retried on every tick
            # while the disk stays full; space the attempts out.
            at = max(at, self._last_tick + RETRY_AFTER.total_seconds())
        self.wheel.schedule(slug, at)

    def _commit(
        self,
        slug: str,
        old: MonitorState,
        new: MonitorState,
        *,
        ping: PingRecord | None = None,
        flip: Flip | None = None,
    ) -> asyncio.Future[None]:
        self.states[slug] = new
        alerts = self._alerts(slug, flip, old, new) if flip and flip.event else []
        if flip is not None:
            _log_flip(slug, flip)
        future = self.store.submit(slug, new, ping=ping, flip=flip, alerts=alerts)

        def done(fut: asyncio.Future[None]) -> None:
            exc = fut.exception() if not fut.cancelled() else None
            if exc is None:
                if alerts:
                    self.on_alert()
                return
            # Roll back so the flip (and its alerts) happens again, unless a
            # later change has already replaced this one.
            if self.states.get(slug) is new:
                self.states[slug] = old
                self._schedule(slug, retry=True)
            if ping is None:
                log.error("state not saved monitor=%s error=%s", slug, exc)

        future.add_done_callback(done)
        return future

    def _alerts(
        self, slug: str, flip: Flip, old: MonitorState, new: MonitorState
    ) -> list[tuple[str, Alert]]:
        monitor = self.config.monitors[slug]
        assert flip.event is not None
        downtime = None
        if flip.event is AlertEvent.UP and old.down_at is not None:
            downtime = max(0.0, (flip.at - old.down_at).total_seconds())
        alert = Alert(
            event=flip.event,
            monitor=slug,
            name=monitor.name,
            status=new.status,
            reason=flip.reason,
            at=flip.at,
            last_ping=new.last_ping,
            expected_at=new.expected_at if flip.event is AlertEvent.UP else old.expected_at,
            down_at=new.down_at if new.status is Status.DOWN else old.down_at,
            url=f"{self.config.server.base_url}/monitors/{slug}",
            body=new.last_body,
            downtime=downtime,
            exit_status=new.last_exit_status,
        )
        return [(channel, alert) for channel in monitor.channels]

    # -- views --------------------------------------------------------------------

    def view(self, slug: str) -> dict[str, Any]:
        """The API's monitor object (DESIGN §6)."""
        monitor = self.config.monitors[slug]
        state = self.states[slug]
        return {
            "slug": slug,
            "name": monitor.name,
            "description": monitor.description,
            "status": state.status.value,
            "reason": state.reason.value if state.reason else None,
            "schedule": monitor.schedule.describe(),
            "grace": monitor.grace,
            "started_at": isoformat(state.started_at),
            "last_ping": isoformat(state.last_ping),
            "last_success": isoformat(state.last_success),
            "last_exit_status": state.last_exit_status,
            "expected_at": isoformat(state.expected_at),
            "down_at": isoformat(states.down_at(state, monitor)),
            "n_pings": state.n_pings,
            "last_duration": state.last_duration,
            "channels": list(monitor.channels),
        }


def _log_failed_save(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("monitor states not saved at start-up error=%s", future.exception())


def _log_flip(slug: str, flip: Flip) -> None:
    level = logging.WARNING if flip.new is Status.DOWN else logging.INFO
    event = flip.event.value if flip.event else "none"
    log.log(
        level,
        "flip monitor=%s old=%s new=%s reason=%s event=%s at=%s",
        slug,
        flip.old.value,
        flip.new.value,
        flip.reason.value,
        event,
        isoformat(flip.at),
    )
