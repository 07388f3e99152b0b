"""`Store`: the one object the rest of heartbeatd uses to reach SQLite.

It turns each call into a job for the writer (or a read on the reader) made of
the history and outbox modules' SQL, and supplies the writer with the one
piece of monitor knowledge a batch needs: how to write monitor changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from heartbeatd.alerts import Alert
from heartbeatd.clock import Clock
from heartbeatd.model import Flip, MonitorState
from heartbeatd.store import history, outbox, provisioned, schema
from heartbeatd.store.errors import StoreError
from heartbeatd.store.history import PingRecord
from heartbeatd.store.outbox import Move, OutboxItem
from heartbeatd.store.provisioned import Definition
from heartbeatd.store.writer import Writer
from heartbeatd.times import format_stored

log = logging.getLogger(__name__)

# Rows deleted per transaction by retention: each of them is a few
# milliseconds' work that a ping sharing the transaction waits for.
PRUNE_BATCH = 1000


class _Change(NamedTuple):
    """One monitor's change, as queued: its rows, short of the flip's id.

    A tuple: a first start makes 100,000 of them, and a frozen dataclass
    takes ten times as long to build."""

    slug: str
    # Serialised on the writer thread, and only the last one queued per slug.
    state: MonitorState
    updated_at: str
    ping: history.PingRow | None
    flip: history.FlipRow | None
    alerts: list[outbox.AlertRow]
    # Alerts to channels with a group_wait, with its seconds: they wait in
    # the outbox for their channel's window to close (outbox.flush_groups).
    grouped: tuple[tuple[outbox.AlertRow, int], ...] = ()


def _write_changes(
    trims: history.PingTrims, db: sqlite3.Connection, changes: list[_Change]
) -> None:
    """On the writer thread: every monitor change of a batch, in queue order."""
    # The last state queued for a monitor is its newest; only it is written.
    last = {change.slug: change for change in changes}
    history.save_states(db, ((c.slug, c.state, c.updated_at) for c in last.values()))
    pinged = [change for change in changes if change.ping is not None]
    history.add_pings(db, [change.ping for change in pinged if change.ping is not None])
    trims.note(change.slug for change in pinged)
    flip_ids = iter(history.add_flips(db, [c.flip for c in changes if c.flip is not None]))
    rows: list[outbox.AlertRow] = []
    grouped: list[tuple[outbox.AlertRow, int]] = []
    # Most batches alert nobody (a first start's 100,000 states, say).
    alerting = any(c.alerts or c.grouped for c in changes)
    for change in changes if alerting else ():
        flip_id = next(flip_ids) if change.flip is not None else None
        rows.extend((flip_id, *row) for row in change.alerts)
        grouped.extend(((flip_id, *row), wait) for row, wait in change.grouped)
    outbox.add_alerts(db, rows)
    outbox.add_grouped(db, grouped)


class Store:
    def __init__(
        self,
        path: Path,
        writer: Writer[_Change],
        reader: schema.Reader,
        trims: history.PingTrims,
        clock: Clock,
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        # Used by jobs on the writer's thread only.
        self._trims = trims
        self._clock = clock
        self._closing = False
        # [channels.x] group_wait in seconds, of the channels that group
        # (Outbox.set_channels keeps it current).
        self.group_waits: Mapping[str, int] = {}

    @classmethod
    async def open(
        cls, path: Path | str, *, synchronous: str = "full", clock: Clock | None = None
    ) -> Store:
        """Open (creating if needed) and migrate the database, and start the writer."""
        if synchronous not in schema.SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(schema.SYNCHRONOUS_MODES)}")
        path = Path(path)
        clock = clock or Clock()
        trims = history.PingTrims()
        writer: Writer[_Change] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = await Writer.open(
                path,
                functools.partial(schema.connect, path, synchronous),
                clock,
                functools.partial(_write_changes, trims),
            )
            reader = await schema.Reader.open(path)
        except (OSError, sqlite3.Error, StoreError) as exc:
            if writer is not None:
                await writer.stop()
                await writer.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        log.info("store opened path=%s schema=%d synchronous=%s", path, schema.VERSION, synchronous)
        return cls(path, writer, reader, trims, clock)

    async def close(self) -> None:
        """Write everything queued, stop the writer and close both connections."""
        if self._closing:
            return
        self._closing = True
        try:
            await self._writer.stop()
        finally:
            await self._reader.close()
            # Last: the last connection to close checkpoints the WAL away.
            await self._writer.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- monitor changes ----------------------------------------------------

    def queue_change(
        self,
        slug: str,
        state: MonitorState,
        *,
        ping: PingRecord | None = None,
        flip: Flip | None = None,
        alerts: Sequence[tuple[str, Alert]] = (),
        after: asyncio.Future[Any] | None = None,
    ) -> asyncio.Future[None]:
        """Queue a monitor's change; the future resolves once it is committed.

        `after` is the future of an earlier change this one was computed from.
        If that one fails, this one fails too (a StoreError) without being
        written: committed on its own, it would store a state whose flip was
        never stored. A cancelled `after` counts as failed, since its outcome
        is unknown. Cancelling the future does not withdraw the change: it is
        written anyway.
        """
        row = history.ping_row(slug, ping) if ping is not None else None
        # A ping's change is stamped with the ping's time, already formatted:
        # one clock read and one formatting less on every ping.
        now = row[1] if row is not None else format_stored(self._clock.now())
        due = format_stored(flip.at) if flip is not None else now
        change = _Change(
            slug=slug,
            state=state,
            updated_at=now,
            ping=row,
            # A reminder (old == new) alerts but is not a flip.
            flip=history.flip_row(slug, flip)
            if flip is not None and flip.old != flip.new
            else None,
            alerts=[
                outbox.alert_row(slug, channel, alert, now, due)
                for channel, alert in alerts
                if not self.group_waits.get(channel)
            ],
            grouped=tuple(
                (outbox.alert_row(slug, channel, alert, now, due), self.group_waits[channel])
                for channel, alert in alerts
                if self.group_waits.get(channel)
            ),
        )
        return self._writer.queue_changes([change], after=after)

    def queue_states(self, states: Mapping[str, MonitorState]) -> asyncio.Future[None]:
        """Queue many states as one job (start-up): one future, not one per monitor."""
        now = format_stored(self._clock.now())
        changes = [_Change(slug, state, now, None, None, []) for slug, state in states.items()]
        return self._writer.queue_changes(changes)

    def flush(self) -> asyncio.Future[None]:
        """Resolves once every job queued before it is written or has failed
        (each reports its own failure); raises StoreError once closed."""
        return self._writer.flush()

    # --- history ------------------------------------------------------------

    async def set_meta(self, key: str, value: str) -> None:
        await self._writer.queue(lambda db: history.set_meta(db, key, value))

    async def get_meta(self, key: str) -> str | None:
        return await history.get_meta(self._reader, key)

    async def load_states(self) -> dict[str, MonitorState]:
        return await history.load_states(self._reader)

    async def pings(self, slug: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest pings of a monitor, newest first."""
        return await history.pings(self._reader, slug, limit)

    async def run_durations(self, slug: str, limit: int = 1000) -> list[float]:
        """Seconds of the newest measured runs of a monitor, newest first."""
        return await history.run_durations(self._reader, slug, limit)

    async def flips(self, slug: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest flips of a monitor, newest first, each with its deliveries."""
        return await history.flips(self._reader, slug, limit)

    async def flips_since(
        self, since: Mapping[str, datetime], limit: int | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Per monitor: its flips from `since[slug]` on, oldest first, with the
        one before them (no more than the newest `limit`); `at` in the stored
        form. One query for all of them."""
        stored = {slug: format_stored(when) for slug, when in since.items()}
        return await history.flips_since(self._reader, stored, limit)

    async def runs(self, slug: str, limit: int = 60) -> list[dict[str, Any]]:
        """The newest pings that ended a measured run (with a duration), newest first."""
        return await history.runs(self._reader, slug, limit)

    async def trim_pings(self, keep: int) -> int:
        """Delete all but the newest `keep` pings of every monitor; return how many."""
        if keep < 0:
            raise ValueError("keep must be >= 0")
        return await self._writer.queue(lambda db: self._trims.trim(db, keep))

    async def prune_flips(self, keep: int, *, batch: int = PRUNE_BATCH) -> int:
        """Delete all but the newest `keep` flips of every monitor; return how many.

        A flip that a pending alert belongs to stays, and so do its rows; the
        finished outbox rows of a deleted flip go with it. At most `batch`
        flips per transaction, so pings never wait long behind it.
        """
        if keep < 1:
            raise ValueError("keep must be >= 1")
        # Found on the reader's thread: the writer only deletes.
        monitors = await history.monitors_with_more_flips(self._reader, keep)
        removed = 0
        while monitors:
            count, monitors = await self._writer.queue(
                functools.partial(history.prune_flips, monitors=monitors, keep=keep, batch=batch)
            )
            removed += count
        return removed

    # --- the outbox ---------------------------------------------------------

    async def claim_due(
        self,
        now: datetime,
        *,
        limit: int = 100,
        lease: float = 300,
        exclude: Collection[int] = (),
    ) -> list[OutboxItem]:
        """Lease due, unclaimed pending rows; return only the rows this call claimed.

        Each claim gets a new number (`OutboxItem.claim`): the mark_* calls
        record an outcome only for the claim that is still current. `exclude`
        are rows whose send is under way in this process, whatever their lease.
        """
        until = now + timedelta(seconds=lease)
        # Copied now: the caller's set changes while the job waits in the queue.
        skip = frozenset(exclude)

        def claim(db: sqlite3.Connection) -> list[OutboxItem]:
            # A group whose window has closed becomes one row first, in the
            # same transaction.
            outbox.flush_groups(db, now)
            return outbox.claim_due(db, now, until, limit, skip)

        return await self._writer.queue(claim)

    async def mark_delivered(self, item: OutboxItem, at: datetime) -> bool:
        """Record a delivery; False (nothing changed) if `item`'s claim is no longer current."""
        return await self._writer.queue(lambda db: outbox.mark_delivered(db, item, at))

    async def mark_retry(self, item: OutboxItem, error: str, next_attempt_at: datetime) -> bool:
        return await self._writer.queue(
            lambda db: outbox.mark_retry(db, item, error, next_attempt_at)
        )

    async def mark_failed(self, item: OutboxItem, error: str, at: datetime) -> bool:
        return await self._writer.queue(lambda db: outbox.mark_failed(db, item, error, at))

    async def release_claims(self) -> int:
        """Forget every lease: at start-up no send of this process is under way.

        A crash in the middle of a send left its row claimed; without this it
        would wait out the lease before being sent again (at least once).
        """
        return await self._writer.queue(outbox.release_claims)

    def move_alerts(
        self,
        channels: Collection[str],
        channels_of: Callable[[str], Sequence[str] | None],
        now: datetime,
        *,
        item: OutboxItem | None = None,
        exclude: Collection[int] = (),
    ) -> asyncio.Future[list[Move]]:
        """Send pending alerts of channels no longer in `channels` to their monitor's.

        `channels_of(monitor)` gives a monitor's current channels (None: the
        monitor is gone). Each such row is marked `moved`, and a new row, due
        `now`, is queued for every current channel that does not already have
        this alert and has no newer alert of the monitor sent, failed or being
        sent (it would arrive after that one); a row that went to no channel
        for that reason alone is marked `superseded` instead. A row whose
        monitor has no channels stays pending. Without
        `item`, every unclaimed row of a removed channel is looked at (but not
        those in `exclude`, in flight); with it, only that row, and only while
        its claim is current.

        Queued at once (not on the first await), so a reload's moves are
        written before any alert raised under the new config.
        """
        # Copied now: the caller's set changes while the job waits in the queue.
        known, skip = frozenset(channels), frozenset(exclude)
        return self._writer.queue(
            lambda db: outbox.move_alerts(db, known, channels_of, now, item, skip)
        )

    def shift_due_times(self, seconds: float) -> asyncio.Future[int]:
        """Move pending rows' next attempt and lease by `seconds` (a wall-clock step)."""
        step = timedelta(seconds=seconds)
        return self._writer.queue(
            lambda db: outbox.shift_pending(db, step, ("next_attempt_at", "claimed_until"))
        )

    def shift_created_times(self, seconds: float) -> asyncio.Future[int]:
        """Move pending rows' creation time, which starts give_up_after, by `seconds`."""
        step = timedelta(seconds=seconds)
        return self._writer.queue(lambda db: outbox.shift_pending(db, step, ("created_at",)))

    async def prune_outbox(self, before: datetime, *, batch: int = PRUNE_BATCH) -> int:
        """Delete outbox rows that finished (sent, failed, moved, superseded) before `before`.

        Pending rows are never deleted. At most `batch` rows per transaction.
        """
        removed = 0
        while True:
            count = await self._writer.queue(lambda db: outbox.prune_finished(db, before, batch))
            removed += count
            if count < batch:
                return removed

    async def next_due(self) -> datetime | None:
        """When the earliest pending row can next be claimed, or None."""
        return await outbox.next_due(self._reader)

    async def oldest_pending(self) -> datetime | None:
        """When the longest-waiting pending alert was queued, or None."""
        return await outbox.oldest_pending(self._reader)

    def queue_daemon_event(
        self,
        alerts: Sequence[tuple[str, Alert]],
        *,
        flips: Sequence[history.FlipRow] = (),
        meta: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None]:
        """Queue alerts about heartbeatd itself, with flips and meta values,
        in one transaction: a daemon_gap's alerts are stored together with
        the new `last_alive` that ends the gap, so a crash loses neither."""
        now = format_stored(self._clock.now())
        rows = [
            (None, *outbox.alert_row(alert.monitor, channel, alert, now, now))
            for channel, alert in alerts
        ]
        values = dict(meta or {})

        def write(db: sqlite3.Connection) -> None:
            history.add_flips(db, list(flips))
            outbox.add_alerts(db, rows)
            for key, value in values.items():
                history.set_meta(db, key, value)

        return self._writer.queue(write)

    async def outbox_counts(self) -> dict[str, int]:
        return await outbox.counts(self._reader)

    async def outbox_pending(self) -> int:
        """Alerts waiting for delivery; cheap whatever the outbox holds."""
        return await outbox.count_pending(self._reader)

    # --- monitors created at run time ----------------------------------------

    async def api_monitors(self) -> list[Definition]:
        return await provisioned.load(self._reader)

    async def save_api_monitor(self, definition: Definition) -> None:
        """Resolves once the definition is committed (a 201 means it is on disk)."""
        now = format_stored(self._clock.now())
        await self._writer.queue(lambda db: provisioned.save(db, definition, now))

    async def delete_api_monitor(self, slug: str) -> bool:
        return await self._writer.queue(lambda db: provisioned.delete(db, slug))

    async def ping_body(self, slug: str, ping_id: int) -> str | None:
        return await provisioned.ping_body(self._reader, slug, ping_id)

    async def flips_between(
        self, slug: str, start: datetime | None, end: datetime | None, limit: int = 1000
    ) -> list[tuple[datetime, str]]:
        return await provisioned.flips_between(self._reader, slug, start, end, limit)
