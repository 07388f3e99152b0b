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

The records of those changes are in commits.py; the alerts of a flip and the
view of a monitor are built in announce.py.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from heartbeatd import escalation, keywords, policy, states
from heartbeatd.alerts import Alert
from heartbeatd.announce import flip_alerts, hears_late, monitor_view, notice_alerts
from heartbeatd.commits import Rederive, Staged, StartupSave, derive_again, failure
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
        # The newest change of each monitor that is still on its way to disk.
        self._tail: dict[str, Staged] = {}
        # The stored state (None: never stored) of each monitor whose state in
        # memory is not (yet) the stored one; any other monitor's is.
        self._committed: dict[str, MonitorState | None] = {}
        # Re-derivations rolled back and not yet stored again, per monitor.
        self._unsaved: dict[str, tuple[Rederive, ...]] = {}
        self._startup: StartupSave | None = None
        # The monitors by status, for pages and API lists; kept as statuses change.
        self.roster = Roster()
        self._index_uuids()
        self._index_dependents()

    # -- lookups ------------------------------------------------------------------

    def monitor(self, slug: str) -> Monitor | None:
        return self.config.monitors.get(slug)

    def slug_for_uuid(self, uuid: str) -> str | None:
        return self._uuids.get(uuid)

    def state(self, slug: str) -> MonitorState:
        return self.states[slug]

    def _index_uuids(self) -> None:
        self._uuids = {m.uuid: slug for slug, m in self.config.monitors.items() if m.uuid}

    def _index_dependents(self) -> None:
        self._dependents: dict[str, list[str]] = {}
        for slug, monitor in self.config.monitors.items():
            for parent in monitor.depends_on:
                self._dependents.setdefault(parent, []).append(slug)

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
        for dependent in self._dependents.get(slug, ()):
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
        changed = {}
        before = {}
        # States are immutable, and a first-seen state depends only on the
        # schedule: monitors sharing a schedule share one object.
        fresh: dict[object, MonitorState] = {}
        # And so do their deadlines, where their rules are alike: each is
        # computed once, and its monitors go on the wheel together.
        deadlines: dict[tuple[object, ...], float | None] = {}
        due: dict[float, list[str]] = {}
        for slug, monitor in self.config.monitors.items():
            old = self.states.get(slug)
            if old is None:
                new = fresh.get(monitor.schedule) or fresh.setdefault(
                    monitor.schedule, states.first_seen(monitor, now)
                )
                kind = (id(new), *rules_key(monitor))
                if kind not in deadlines:
                    when = policy.next_deadline(new, monitor)
                    deadlines[kind] = when.timestamp() if when is not None else None
                at = deadlines[kind]
                self.states[slug] = new
                if at is not None:
                    due.setdefault(at, []).append(slug)
            else:
                new = states.on_startup(states.on_rules_changed(old, monitor), monitor, now)
                new = policy.on_startup(new, monitor, now)
                self.states[slug] = new
                self._schedule(slug)
            # Identity first: a stored state is most often kept as it is, and
            # comparing 100,000 states field by field costs.
            if new is not old and new != old:
                changed[slug] = new
                if old is not None:
                    before[slug] = old
        for at, slugs in due.items():
            self.wheel.schedule_many(slugs, at)
        # One write for all of them (on a first start, every monitor). It is
        # not awaited: it is queued ahead of any ping, so nothing can overtake
        # it, and start-up need not wait for 100,000 rows to reach the disk.
        if changed:
            future = self.store.queue_states(changed)
            again = Rederive(now, rules_changed=True, startup=True)
            self._startup = StartupSave(future, changed, before, again, {})
            future.add_done_callback(self._settle_startup)
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
            new = policy.on_startup(states.on_startup(old, monitor, now), monitor, now)
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
        self._last_tick_epoch = now.timestamp()
        due = self.wheel.pop_due(self._last_tick_epoch)
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
        step = policy.on_tick(old, step, monitor, now, self._context(monitor))
        late = step.flip is not None and step.flip.event is AlertEvent.LATE
        if late and not hears_late(self.config, monitor):
            # Only channels that opted in hear it: none, no flip to log.
            step = states.Step(step.state)
        # A state re-derived after a rollback is stored again by the next
        # change, or here, at the retry, if no change is on its way.
        if step.state != old or (slug in self._unsaved and slug not in self._tail):
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
        """The monitor whose incident's ack link holds `token`, compared in
        constant time (only monitors with an open incident have one)."""
        found = None
        given = token.encode()
        for slug, state in self.states.items():
            if state.ack_token and hmac.compare_digest(state.ack_token.encode(), given):
                found = slug
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
            monitor = config.monitors[slug]
            before = old_config.monitors.get(slug)
            old = self.states.get(slug)
            again: Rederive | None
            if old is None:
                new = states.first_seen(monitor, now)
                again = Rederive(now)
                diff["added"].append(slug)
            elif before is None:
                # Back after being removed: it was not watched meanwhile.
                new = states.on_startup(states.on_rules_changed(old, monitor), monitor, now)
                new = policy.on_startup(new, monitor, now)
                again = Rederive(now, rules_changed=True, startup=True)
                diff["added"].append(slug)
            elif before.schedule != monitor.schedule:
                new = policy.on_reload(states.on_rules_changed(old, monitor), now)
                again = Rederive(now, rules_changed=True)
                diff["changed"].append(slug)
            elif before is monitor or before == monitor:
                # Unchanged (the common case): nothing to recompute or move.
                continue
            else:
                # A changed policy: a down alert held back (by a parent, or
                # by the threshold) is judged again at the next tick.
                new, again = policy.on_reload(old, now), None
                diff["changed"].append(slug)
            if new != old:
                self._stage(slug, old, new, rederive=again)
            self._schedule(slug)
        self._index_dependents()
        for key in diff:
            diff[key].sort()
        for slug in diff["removed"]:
            self.roster.remove(slug)
        for slug in diff["added"] + diff["changed"]:
            monitor = config.monitors[slug]
            self.roster.put(slug, monitor.name, monitor.tags, self.states[slug].status)
        return diff

    # -- plumbing -----------------------------------------------------------------

    def _schedule(self, slug: str, *, retry: bool = False) -> None:
        monitor = self.config.monitors.get(slug)
        when = policy.next_deadline(self.states[slug], monitor) if monitor else None
        at = when.timestamp() if when is not None else None
        if retry:
            # A deadline already behind us would be retried on every tick
            # while the disk stays full: space the attempts out. A state that
            # must be stored again is retried even without a deadline.
            soon = self._last_tick_epoch + RETRY_AFTER.total_seconds()
            if monitor is not None and slug in self._unsaved:
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
        prev = self._pending(slug)
        future = self.store.queue_change(
            slug,
            new,
            ping=ping,
            flip=flip,
            alerts=alerts,
            after=prev.future if prev is not None else None,
        )
        # With nothing on its way and nothing to store again, the state this
        # change was computed from is the stored one.
        self._committed.setdefault(slug, old)
        staged = Staged(new, future, prev, rederive, bool(alerts), ping is not None)
        self._tail[slug] = staged
        future.add_done_callback(functools.partial(self._settle_one, slug, staged))
        return staged

    def _pending(self, slug: str) -> Staged | None:
        """The newest change of the monitor still on its way to disk, if any."""
        staged = self._tail.get(slug)
        startup = self._startup
        if staged is None and startup is not None and slug in startup.changed:
            staged = self._startup_part(startup, slug)
        return staged

    def _startup_part(self, startup: StartupSave, slug: str) -> Staged:
        part = Staged(startup.changed[slug], startup.future, None, startup.rederive)
        startup.parts[slug] = part
        self._committed[slug] = startup.before.get(slug)
        self._tail[slug] = part
        return part

    def _answer(self, staged: Staged) -> asyncio.Future[None]:
        """A future of our own for the caller: it resolves after the engine has
        taken note of the outcome, and cancelling it loses nothing."""
        staged.answer = asyncio.get_running_loop().create_future()
        return staged.answer

    def _settle_one(self, slug: str, staged: Staged, future: asyncio.Future[None]) -> None:
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
            self.on_alert()

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
        for how in again:
            state = derive_again(self.config.monitors.get(slug), state, how)
        if state is None:
            self.states.pop(slug, None)
            self.wheel.cancel(slug)
            self.roster.remove(slug)
            return True
        self.states[slug] = state
        self.roster.set_status(slug, state.status)
        if state != stored:
            self._committed[slug] = stored
            self._unsaved[slug] = again
        self._schedule(slug, retry=True)
        return True

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
