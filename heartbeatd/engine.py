"""The engine: config + state machine + timer wheel + store.

It owns the in-memory state of every monitor. Every change goes through
`_stage`: the new state is in memory at once (so the next ping sees it) and in
SQLite when the store's future resolves, which may fail (disk full, an outside
write lock). So the engine also knows, per monitor, the state that last reached
the disk, and the changes still on their way there, each built on the one
before. When a change fails, the store fails every later change of that
monitor unwritten, and the engine rolls the monitor back to its stored state:
a flip whose row and alerts could not be stored happens again on the next ping
or tick, instead of a later change storing its outcome without it.

Changes that only re-derive a state from the rules (start-up, a reload, a wall
clock jump) are not dropped by a rollback but derived again from the stored
state, and written with the next change or by a retry on the wheel.

The records of those changes, and the ledger of them per monitor, are in
commits.py; the alerts of a flip and the view of a monitor are built in
announce.py; the index of ack links' tokens is in acks.py.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from heartbeatd import escalation, keywords, policy, states
from heartbeatd.acks import AckTokens
from heartbeatd.alerts import Alert
from heartbeatd.announce import flip_alerts, hears_late, monitor_view, notice_alerts
from heartbeatd.commits import (
    Ledger,
    Rederive,
    Staged,
    StartupSave,
    derive,
    derive_startup,
    on_reload,
)
from heartbeatd.config import Config, Monitor, rules_key
from heartbeatd.model import AlertEvent, Flip, MonitorState, Ping, Status
from heartbeatd.reloadplan import ReloadPlan, plan_reload
from heartbeatd.roster import Roster
from heartbeatd.store import PingRecord, Store
from heartbeatd.times import isoformat
from heartbeatd.views import MonitorView
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
        # Told of every ping, of any kind (the silence alert's timer).
        self.on_ping: Callable[[], None] = lambda: None
        self.wheel: TimerWheel[str] = TimerWheel()
        self.states: dict[str, MonitorState] = {}
        self.pings_by_kind: Counter[str] = Counter()
        # Notices raised, by (event, monitor), for /metrics.
        self.notices_by_event: Counter[tuple[str, str]] = Counter()
        self._uuids: dict[str, str] = {}
        # The last tick's `now` in epoch seconds, the wheel's scale (not monotonic).
        self._last_tick_epoch = 0.0
        # The changes on their way to disk, and the states stored, per monitor.
        self._ledger = Ledger(
            monitor=self.monitor, restore=self._restore, alerted=lambda: self.on_alert()
        )
        # The monitors by status, for pages and API lists; kept as statuses change.
        self.roster = Roster()
        # The ack links' tokens; kept as states change.
        self._acks = AckTokens()
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

    def _context(self, monitor: Monitor) -> policy.Context:
        """What the policy needs of other monitors; nothing for most."""
        if not monitor.depends_on:
            return policy.NO_CONTEXT
        down = tuple(
            parent
            for parent in monitor.depends_on
            if parent in self.states and self.states[parent].status is Status.DOWN
        )
        return policy.Context(down, self.config.alerts.dependency_wait)

    def _parent_up(self, slug: str, at: datetime) -> None:
        """`slug` is no longer down: its dependents' held alerts get their grace."""
        for dependent in self.config.dependents.get(slug, ()):
            monitor = self.config.monitors.get(dependent)
            old = self.states.get(dependent)
            if monitor is None or old is None:
                continue
            new = policy.on_parent_up(old, monitor, at)
            if new != old:
                self._stage(dependent, old, new)
                self._schedule(dependent)

    def _tick_time(self) -> datetime | None:
        if not self._last_tick_epoch:
            return None
        return datetime.fromtimestamp(self._last_tick_epoch, timezone.utc)

    # -- start-up -----------------------------------------------------------------

    async def recover(self, now: datetime) -> None:
        """Load every stored state and bring it up to `now` without false alarms."""
        self.states = await self.store.load_states()
        stored = len(self.states)
        again = Rederive(now, rules_changed=True, startup=True)
        changed, before = derive_startup(self.config.monitors, self.states, again)
        self._schedule_all()
        # One write for all of them (on a first start, every monitor). It is
        # not awaited: it is queued ahead of any ping, so nothing can overtake
        # it, and start-up need not wait for 100,000 rows to reach the disk.
        if changed:
            future = self.store.queue_states(changed)
            self._ledger.add_startup(StartupSave(future, changed, before, again, {}))
        self._acks.rebuild(self.states)
        self.roster.rebuild(
            (slug, m.name, m.tags, self.states[slug].status)
            for slug, m in self.config.monitors.items()
        )
        log.info("monitors loaded count=%d stored=%d", len(self.config.monitors), stored)

    def forgive(self, now: datetime) -> None:
        """Treat passed deadlines as start-up does: after a wall-clock jump forward."""
        again = Rederive(now, startup=True)
        for slug, monitor in self.config.monitors.items():
            old = self.states[slug]
            new = derive(monitor, old, again)
            if new != old:
                self._stage(slug, old, new, rederive=again)
                self._schedule(slug)

    # -- events -------------------------------------------------------------------

    def handle_ping(self, slug: str, ping: Ping) -> asyncio.Future[None]:
        """Apply a ping; the future resolves once it is committed to SQLite."""
        monitor = self.config.monitors[slug]
        old = self.states[slug]
        # Keyword and method rules may make it another kind of ping, or ignore it.
        ping = keywords.classify(ping, monitor.ping_filter)
        step = states.on_ping(old, ping, monitor)
        step = policy.on_ping(old, step, ping, monitor, self._context(monitor))
        self.pings_by_kind[ping.kind.value] += 1
        self.on_ping()
        record = PingRecord(ping=ping, duration=step.duration)
        notices = notice_alerts(self.config, slug, step.notices, step.state)
        for notice in step.notices:
            assert notice.event is not None
            self.notices_by_event[notice.event.value, slug] += 1
            log.warning(
                "notice monitor=%s event=%s at=%s",
                slug,
                notice.event.value,
                isoformat(notice.at),
            )
        # The alert of a ping's flip carries the ping's whole body, not the
        # preview kept in memory.
        staged = self._stage(
            slug, old, step.state, ping=record, flip=step.flip, body=ping.body, notices=notices
        )
        self._schedule(slug)
        if old.status is Status.DOWN and step.state.status is not Status.DOWN:
            self._parent_up(slug, ping.at)
        return self._answer(staged)

    def tick(self, now: datetime) -> int:
        """Apply every deadline that has passed; returns how many monitors were due."""
        due = self.pop_due(now)
        self.tick_due(due, now)
        return len(due)

    def pop_due(self, now: datetime) -> list[str]:
        """The monitors whose deadline has passed by `now`, taken off the wheel:
        the daemon applies them with tick_due a slice at a time, since
        thousands may fall due in one second (a restart, a network outage)."""
        self._last_tick_epoch = now.timestamp()
        return self.wheel.pop_due(self._last_tick_epoch)

    def tick_due(self, slugs: Iterable[str], now: datetime) -> None:
        """Apply the deadlines of `slugs` (from pop_due). A monitor pinged,
        removed or rescheduled since is judged as it is now, so a ping that
        came between two slices is never undone."""
        for slug in slugs:
            # One bad monitor never stops the loop.
            try:
                self._tick_one(slug, now)
            except Exception:
                log.exception("tick failed monitor=%s", slug)

    def _tick_one(self, slug: str, now: datetime) -> None:
        monitor = self.config.monitors.get(slug)
        old = self.states.get(slug)
        if monitor is None or old is None:
            # Removed, or its first write rolled back (tick_due runs a slice
            # at a time, so either may happen after pop_due): nothing is due.
            return
        step = states.on_tick(old, monitor, now)
        step = policy.on_tick(old, step, monitor, now, self._context(monitor))
        late = step.flip is not None and step.flip.event is AlertEvent.LATE
        if late and not hears_late(self.config, monitor):
            # Only channels that opted in hear it: none, no flip to log.
            step = states.Step(step.state)
        # A state re-derived after a rollback is stored again by the next
        # change, or here, at the retry, if no change is on its way.
        if step.state != old or self._ledger.must_store_again(slug):
            self._stage(slug, old, step.state, flip=step.flip)
        self._schedule(slug)

    def pause(self, slug: str) -> asyncio.Future[None]:
        old = self.states[slug]
        staged = self._stage(slug, old, policy.pause(states.pause(old)))
        self._schedule(slug)
        at = self._tick_time() or old.down_at or old.first_seen
        if old.status is Status.DOWN and at is not None:
            self._parent_up(slug, at)
        return self._answer(staged)

    def resume(self, slug: str, now: datetime) -> asyncio.Future[None]:
        old = self.states[slug]
        staged = self._stage(slug, old, states.resume(old, self.config.monitors[slug], now))
        self._schedule(slug)
        return self._answer(staged)

    def snooze(self, slug: str, until: datetime, reason: str) -> asyncio.Future[None]:
        """Hold the monitor's down alerts and reminders until `until`."""
        old = self.states[slug]
        staged = self._stage(slug, old, policy.snooze(old, until, reason))
        self._schedule(slug)
        return self._answer(staged)

    def ack(self, slug: str, now: datetime, by: str, note: str) -> asyncio.Future[None] | None:
        """Acknowledge the monitor's incident; None when there is none."""
        old = self.states[slug]
        new = policy.acknowledge(old, now, by, note)
        if new is None:
            return None
        staged = self._stage(slug, old, new)
        self._schedule(slug)
        if new is not old:
            log.info("acknowledged monitor=%s by=%s", slug, by or "-")
        return self._answer(staged)

    def slug_for_ack_token(self, token: str) -> str | None:
        """The monitor whose incident's ack link holds `token` (only monitors
        with an open incident have one); one lookup, see acks.py."""
        found = self._acks.slug_for(token, self.states)
        return found if found is not None and found in self.config.monitors else None

    def unsnooze(self, slug: str, now: datetime) -> asyncio.Future[None]:
        """End a snooze now; a down alert it held goes out."""
        old = self.states[slug]
        monitor = self.config.monitors[slug]
        step = policy.unsnooze(old, monitor, now, self._context(monitor))
        staged = self._stage(slug, old, step.state, flip=step.flip)
        self._schedule(slug)
        return self._answer(staged)

    # -- reload -------------------------------------------------------------------

    def apply_config(
        self, config: Config, now: datetime, plan: ReloadPlan | None = None
    ) -> dict[str, list[str]]:
        """Swap in a validated config and diff it with the running one by slug.

        `plan` (plan_reload, made off the loop) names the few monitors to look
        at; without it every monitor is compared here, on the loop."""
        old_config, self.config = self.config, config
        if plan is None or plan.old is not old_config or plan.new is not config:
            plan = plan_reload(old_config, config, list(self.states))
        self._uuids = plan.uuids
        diff: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for slug in plan.removed:
            # Its state and history stay in SQLite; it just stops being watched.
            self.wheel.cancel(slug)
            diff["removed"].append(slug)
        for slug in plan.touched:
            old = self.states.get(slug)
            change = on_reload(old_config.monitors.get(slug), config.monitors[slug], old, now)
            if change is None:
                continue
            what, new, again = change
            diff[what].append(slug)
            if new != old:
                self._stage(slug, old, new, rederive=again)
            self._schedule(slug)
        for key in diff:
            diff[key].sort()
        for slug in diff["removed"]:
            self.roster.remove(slug)
        for slug in diff["added"] + diff["changed"]:
            monitor = config.monitors[slug]
            self.roster.put(slug, monitor.name, monitor.tags, self.states[slug].status)
        return diff

    # -- plumbing -----------------------------------------------------------------

    def _schedule_all(self) -> None:
        """Every monitor on the wheel (start-up). Never-pinged monitors that
        share a state object (derive_startup) and their rules share one
        deadline, computed once, and go on the wheel together."""
        deadlines: dict[tuple[object, ...], float | None] = {}
        due: dict[float, list[str]] = {}
        for slug, monitor in self.config.monitors.items():
            state = self.states[slug]
            if state.n_pings:
                self._schedule(slug)
                continue
            kind = (id(state), *rules_key(monitor))
            if kind not in deadlines:
                when = policy.next_deadline(state, monitor)
                deadlines[kind] = when.timestamp() if when is not None else None
            at = deadlines[kind]
            if at is not None:
                due.setdefault(at, []).append(slug)
        for at, slugs in due.items():
            self.wheel.schedule_many(slugs, at)

    def _schedule(self, slug: str, *, retry: bool = False) -> None:
        monitor = self.config.monitors.get(slug)
        when = policy.next_deadline(self.states[slug], monitor) if monitor else None
        at = when.timestamp() if when is not None else None
        if retry:
            # A deadline already behind us would be retried on every tick
            # while the disk stays full: space the attempts out. A state that
            # must be stored again is retried even without a deadline.
            soon = self._last_tick_epoch + RETRY_AFTER.total_seconds()
            if monitor is not None and self._ledger.is_unsaved(slug):
                at = soon
            elif at is not None:
                at = max(at, soon)
        if at is None:
            self.wheel.cancel(slug)
        else:
            self.wheel.schedule(slug, at)

    def _stage(
        self,
        slug: str,
        old: MonitorState | None,
        new: MonitorState,
        *,
        ping: PingRecord | None = None,
        flip: Flip | None = None,
        body: str | None = None,
        rederive: Rederive | None = None,
        notices: list[tuple[str, Alert]] | None = None,
    ) -> Staged:
        """Put `new` in memory and queue it for the disk; it rolls back if the
        write (or one it builds on) fails. `old` is None for a monitor seen for
        the first time, which has no flip."""
        if flip is not None and escalation.needs_token(new):
            # A new incident: the secret of its ack link, stored with it.
            new = replace(new, ack_token=secrets.token_urlsafe(24))
        self._acks.update(slug, self.states.get(slug), new)
        self.states[slug] = new
        if old is None or old.status is not new.status:
            self.roster.set_status(slug, new.status)
        alerts: list[tuple[str, Alert]] = []
        if flip is not None and (flip.event or flip.held_by) and old is not None:
            alerts = flip_alerts(self.config, slug, flip, old, new, body)
        if notices:
            alerts = alerts + notices
        if flip is not None:
            _log_flip(slug, flip)
        prev = self._ledger.pending(slug)
        future = self.store.queue_change(
            slug,
            new,
            ping=ping,
            flip=flip,
            alerts=alerts,
            after=prev.future if prev is not None else None,
        )
        staged = Staged(new, future, prev, rederive, bool(alerts), ping is not None)
        self._ledger.add(slug, old, staged)
        return staged

    def _answer(self, staged: Staged) -> asyncio.Future[None]:
        """A future of our own for the caller: it resolves after the engine has
        taken note of the outcome, and cancelling it loses nothing."""
        staged.answer = asyncio.get_running_loop().create_future()
        return staged.answer

    def _restore(self, slug: str, state: MonitorState | None) -> None:
        """Put back `state` (None: the monitor has none) after a failed write."""
        self._acks.update(slug, self.states.get(slug), state)
        if state is None:
            self.states.pop(slug, None)
            self.wheel.cancel(slug)
            self.roster.remove(slug)
            return
        self.states[slug] = state
        self.roster.set_status(slug, state.status)
        self._schedule(slug, retry=True)

    # -- views --------------------------------------------------------------------

    def view(self, slug: str) -> MonitorView:
        """The monitor as the API, the status page and /metrics show it (DESIGN §6)."""
        # The last tick's time: surfaces ask without a clock, and the ticker
        # runs every second.
        return monitor_view(self.config, slug, self.states[slug], self._tick_time())


def _log_flip(slug: str, flip: Flip) -> None:
    level = logging.WARNING if flip.new is Status.DOWN else logging.INFO
    event = flip.event.value if flip.event else "none"
    log.log(
        level,
        "flip monitor=%s old=%s new=%s reason=%s event=%s at=%s%s",
        slug,
        flip.old.value,
        flip.new.value,
        flip.reason.value,
        event,
        isoformat(flip.at),
        f" held_by={flip.held_by}" if flip.held_by else "",
    )
