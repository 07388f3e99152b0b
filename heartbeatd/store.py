"""SQLite storage: monitor states, ping and flip history, and the alert outbox.

All writes go through one writer task that commits everything queued in one
transaction (group commit), so a burst of pings costs one fsync, not one each.
The writer owns a plain sqlite3 connection on a thread of its own and hands it
a whole batch at once: one thread hop per transaction, not one per statement.
Reads use a second, read-only connection and never wait behind a write batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from heartbeatd.clock import Clock
from heartbeatd.model import Alert, Flip, MonitorState, Ping
from heartbeatd.times import format_stored, parse_stored, publish_stored

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNCHRONOUS_MODES = ("normal", "full", "extra")
# Changes and operations taken into one transaction at most.
MAX_BATCH = 2000
BUSY_TIMEOUT_MS = 5000
# Rows deleted per transaction by retention: each of them is a few
# milliseconds' work that a ping sharing the transaction waits for.
PRUNE_BATCH = 1000

# Numbered migrations: MIGRATIONS[n] brings a database from user_version n to n+1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE monitors (
        slug TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE pings (
        id INTEGER PRIMARY KEY, monitor TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
        exit_status INTEGER, rid TEXT, method TEXT, remote_addr TEXT, user_agent TEXT,
        body TEXT, truncated INTEGER NOT NULL DEFAULT 0, duration REAL);
    CREATE INDEX pings_monitor_id ON pings (monitor, id);
    CREATE TABLE flips (
        id INTEGER PRIMARY KEY, monitor TEXT NOT NULL, at TEXT NOT NULL, old TEXT NOT NULL,
        new TEXT NOT NULL, reason TEXT NOT NULL, event TEXT);
    CREATE INDEX flips_monitor_id ON flips (monitor, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, flip_id INTEGER REFERENCES flips (id),
        monitor TEXT NOT NULL, channel TEXT NOT NULL, event TEXT NOT NULL,
        payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
        created_at TEXT NOT NULL, next_attempt_at TEXT NOT NULL, claimed_until TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, delivered_at TEXT,
        failed_at TEXT);
    CREATE INDEX outbox_state_next ON outbox (state, next_attempt_at);
    CREATE INDEX outbox_flip ON outbox (flip_id);
    """,
    # claim: bumped by every claim, so only the current claimant records an
    # outcome. origin: a moved alert keeps the place in line of the row it
    # came from. finished_at: when a row stopped being pending, for retention.
    """
    ALTER TABLE outbox ADD COLUMN claim INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN origin INTEGER;
    ALTER TABLE outbox ADD COLUMN finished_at TEXT;
    UPDATE outbox SET finished_at = coalesce(delivered_at, failed_at) WHERE state != 'pending';
    CREATE INDEX outbox_finished ON outbox (finished_at) WHERE finished_at IS NOT NULL;
    """,
]

UPSERT_STATE = (
    "INSERT INTO monitors (slug, state, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (slug) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
)
INSERT_PING = (
    "INSERT INTO pings (monitor, at, kind, exit_status, rid, method, remote_addr, user_agent,"
    " body, truncated, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_FLIP = (
    "INSERT INTO flips (id, monitor, at, old, new, reason, event) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_OUTBOX = (
    "INSERT INTO outbox (flip_id, monitor, channel, event, payload, created_at, next_attempt_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# Alerts of one monitor to one channel go out in order: only the oldest pending
# row of each (monitor, channel) may be claimed, so a DOWN still being retried
# is never overtaken by the UP that followed it.
# A moved alert (see move_alerts) stands in line where its original stood.
HEADS_OF_LINE = (
    "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY monitor, channel"
    " ORDER BY coalesce(origin, id), id) AS place FROM outbox WHERE state = 'pending')"
    " WHERE place = 1"
)
# Keeps the newest `keep` pings of one monitor; the subquery is NULL (nothing
# deleted) while the monitor has no more than `keep`.
TRIM_PINGS = (
    "DELETE FROM pings WHERE monitor = ? AND id <= "
    "(SELECT id FROM pings WHERE monitor = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)


class StoreError(Exception):
    """The database cannot be opened or written (disk full, read-only, I/O error)."""


@dataclass(frozen=True)
class PingRecord:
    ping: Ping
    # Seconds since the matching start, computed by the engine.
    duration: float | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    flip_id: int | None
    monitor: str
    channel: str
    alert: Alert
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    # Which claim of the row this is: marks for an older one change nothing.
    claim: int = 0


@dataclass(frozen=True)
class Move:
    """An alert of a removed channel, and where it went (`to`, new rows)."""

    id: int
    monitor: str
    event: str
    channel: str
    to: tuple[str, ...]
    # Current channels that already had this alert: no second row for them.
    already: tuple[str, ...]

    @property
    def is_stuck(self) -> bool:
        """The monitor is gone or has no channels: the alert stays where it is."""
        return not self.to and not self.already


@dataclass
class _Change:
    slug: str
    # Serialised on the writer thread, and only the last one queued per slug.
    state: MonitorState
    updated_at: str
    ping: tuple[Any, ...] | None
    flip: tuple[Any, ...] | None
    outbox: list[tuple[Any, ...]]


@dataclass
class _Job:
    """One unit of a batch: `run(db)` inside the batch's transaction, monitor
    changes, or neither: a flush, resolved once the jobs before it are."""

    run: Callable[[sqlite3.Connection], Any] | None
    future: asyncio.Future[Any]
    # Monitor changes, written in queue order; one job may carry many (a bulk
    # save at start-up) under one future.
    changes: list[_Change] | None = None
    # The future of an earlier job this one builds on: if that one failed,
    # this one is failed too, unwritten (see `submit`).
    after: asyncio.Future[Any] | None = None


class Store:
    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        executor: concurrent.futures.ThreadPoolExecutor,
        reader: aiosqlite.Connection,
        clock: Clock,
    ) -> None:
        self.path = path
        # Used only on the executor's one thread.
        self._writer = writer
        self._executor = executor
        self._reader = reader
        self._clock = clock
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closing = False
        # Monitors that got pings since the last trim; None means "not known
        # yet" (just opened), so the first trim looks at every monitor.
        self._untrimmed: set[str] | None = None
        self._task = asyncio.get_running_loop().create_task(self._write_forever())

    @classmethod
    async def open(
        cls, path: Path | str, *, synchronous: str = "full", clock: Clock | None = None
    ) -> Store:
        """Open (creating if needed) and migrate the database, and start the writer."""
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        path = Path(path)
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="heartbeatd-writer")
        writer: sqlite3.Connection | None = None
        reader = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer, version = await loop.run_in_executor(executor, _open_writer, path, synchronous)
            uri = path.absolute().as_uri() + "?mode=ro"
            reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except (OSError, sqlite3.Error, StoreError) as exc:
            if reader is not None:
                await reader.close()
            if writer is not None:
                await loop.run_in_executor(executor, writer.close)
            executor.shutdown(wait=False)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        log.info("store opened path=%s schema=%d synchronous=%s", path, version, synchronous)
        return cls(path, writer, executor, reader, clock or Clock())

    async def close(self) -> None:
        """Write everything queued, stop the writer and close both connections."""
        if self._closing:
            return
        self._closing = True
        self._queue.put_nowait(None)
        try:
            if not self._task.done():
                await self._task
            elif not self._task.cancelled() and self._task.exception() is not None:
                log.error(
                    "store writer had stopped path=%s", self.path, exc_info=self._task.exception()
                )
            # A writer cancelled before it ever ran left its queue behind.
            await self._write_remaining()
        finally:
            await self._reader.close()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._writer.close)
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- writes -----------------------------------------------------------

    def submit(
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
        now = format_stored(self._clock.now())
        change = _Change(
            slug=slug,
            state=state,
            updated_at=now,
            ping=_ping_row(slug, ping) if ping is not None else None,
            # A reminder (old == new) alerts but is not a flip.
            flip=_flip_row(slug, flip) if flip is not None and flip.old != flip.new else None,
            outbox=[
                (
                    slug,
                    channel,
                    alert.event.value,
                    json.dumps(alert.to_json()),
                    now,
                    format_stored(flip.at) if flip is not None else now,
                )
                for channel, alert in alerts
            ],
        )
        job = _Job(run=None, future=self._new_future(), changes=[change], after=after)
        return self._enqueue(job)

    def submit_states(self, states: Mapping[str, MonitorState]) -> asyncio.Future[None]:
        """Queue many states as one job (start-up): one future, not one per monitor."""
        now = format_stored(self._clock.now())
        changes = [_Change(slug, state, now, None, None, []) for slug, state in states.items()]
        return self._enqueue(_Job(run=None, future=self._new_future(), changes=changes))

    def flush(self) -> asyncio.Future[None]:
        """A barrier: resolves once every job queued before it is written or has
        failed (each reports its own failure); raises StoreError once closed.

        It writes nothing, and it waits for a batch already being written,
        whose jobs are no longer in the queue.
        """
        return self._enqueue(_Job(run=None, future=self._new_future()))

    async def set_meta(self, key: str, value: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._call(run)

    async def trim_pings(self, keep: int) -> int:
        """Delete all but the newest `keep` pings of every monitor; return how many."""
        if keep < 0:
            raise ValueError("keep must be >= 0")

        def run(db: sqlite3.Connection) -> int:
            slugs = self._untrimmed
            if slugs is None:
                rows = db.execute("SELECT DISTINCT monitor FROM pings").fetchall()
                slugs = {row[0] for row in rows}
            self._untrimmed = set()
            try:
                cursor = db.executemany(TRIM_PINGS, [(s, s, keep) for s in sorted(slugs)])
            except BaseException:
                # Not trimmed after all: try these monitors again next time.
                self._untrimmed = None if self._untrimmed is None else self._untrimmed | slugs
                raise
            return max(cursor.rowcount, 0)

        return await self._call(run)

    async def prune_flips(self, keep: int, *, batch: int = PRUNE_BATCH) -> int:
        """Delete all but the newest `keep` flips of every monitor; return how many.

        A flip that a pending alert belongs to stays, and so do its rows; the
        finished outbox rows of a deleted flip go with it. At most `batch`
        flips per transaction, so pings never wait long behind it.
        """
        if keep < 1:
            raise ValueError("keep must be >= 1")
        # Found on the reader's thread: the writer only deletes.
        rows = await self._read(
            "SELECT monitor FROM flips GROUP BY monitor HAVING count(*) > ?", (keep,)
        )
        monitors = [row[0] for row in rows]
        removed = 0
        while monitors:

            def run(db: sqlite3.Connection, todo: list[str] = monitors) -> tuple[int, list[str]]:
                return _prune_flips(db, todo, keep, batch)

            count, monitors = await self._call(run)
            removed += count
        return removed

    async def prune_outbox(self, before: datetime, *, batch: int = PRUNE_BATCH) -> int:
        """Delete sent, failed and moved outbox rows finished before `before`.

        Pending rows are never deleted. At most `batch` rows per transaction.
        """
        sql = (
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE finished_at < ?"
            " AND state != 'pending' ORDER BY finished_at LIMIT ?)"
        )
        params = (format_stored(before), batch)

        def run(db: sqlite3.Connection) -> int:
            return db.execute(sql, params).rowcount

        removed = 0
        while True:
            count = await self._call(run)
            removed += count
            if count < batch:
                return removed

    # --- outbox writes ------------------------------------------------------

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
        at = format_stored(now)
        until = format_stored(now + timedelta(seconds=lease))
        skip = ",".join(str(int(i)) for i in exclude)

        def run(db: sqlite3.Connection) -> list[OutboxItem]:
            # The writer owns the only write transaction (BEGIN IMMEDIATE), so
            # nothing can claim these rows between this SELECT and the UPDATE.
            rows = db.execute(
                "SELECT id, flip_id, monitor, channel, payload, attempts, created_at,"
                " next_attempt_at, claim + 1 FROM outbox WHERE state = 'pending'"
                " AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
                f" AND id NOT IN ({skip}) AND id IN ({HEADS_OF_LINE})"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (at, at, limit),
            ).fetchall()
            if not rows:
                return []
            items, broken = [], []
            for row in rows:
                try:
                    items.append(_outbox_item(row))
                except (ValueError, TypeError, KeyError) as exc:
                    # Cannot be sent, ever; failing it keeps it from blocking the rest.
                    log.error(
                        "unreadable outbox row id=%d monitor=%s error=%s", row[0], row[2], exc
                    )
                    broken.append((f"unreadable alert payload: {exc}", at, at, row[0]))
            db.executemany(
                "UPDATE outbox SET claimed_until = ?, claim = ? WHERE id = ?",
                [(until, i.claim, i.id) for i in items],
            )
            if broken:
                db.executemany(
                    "UPDATE outbox SET state = 'failed', last_error = ?, failed_at = ?,"
                    " finished_at = ? WHERE id = ?",
                    broken,
                )
            return items

        return await self._call(run)

    async def mark_delivered(self, item: OutboxItem, at: datetime) -> bool:
        """Record a delivery; False (nothing changed) if `item`'s claim is no longer current."""
        when = format_stored(at)
        return await self._update_outbox(
            "state = 'sent', attempts = attempts + 1, delivered_at = ?, finished_at = ?,"
            " claimed_until = NULL",
            (when, when),
            item,
        )

    async def mark_retry(self, item: OutboxItem, error: str, next_attempt_at: datetime) -> bool:
        return await self._update_outbox(
            "attempts = attempts + 1, last_error = ?, next_attempt_at = ?, claimed_until = NULL",
            (error, format_stored(next_attempt_at)),
            item,
        )

    async def mark_failed(self, item: OutboxItem, error: str, at: datetime) -> bool:
        when = format_stored(at)
        return await self._update_outbox(
            "state = 'failed', attempts = attempts + 1, last_error = ?, failed_at = ?,"
            " finished_at = ?, claimed_until = NULL",
            (error, when, when),
            item,
        )

    async def _update_outbox(
        self, assignments: str, params: tuple[Any, ...], item: OutboxItem
    ) -> bool:
        # A claim that was taken over (its lease ran out, or the row was
        # moved) must not overwrite what the current claimant records.
        sql = f"UPDATE outbox SET {assignments} WHERE id = ? AND claim = ? AND state = 'pending'"

        def run(db: sqlite3.Connection) -> bool:
            return db.execute(sql, (*params, item.id, item.claim)).rowcount == 1

        return await self._call(run)

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
        this alert; a row whose monitor has no channels stays pending. Without
        `item`, every unclaimed row of a removed channel is looked at (but not
        those in `exclude`, in flight); with it, only that row, and only while
        its claim is current.

        Queued at once (not on the first await), so a reload's moves are
        written before any alert raised under the new config.
        """
        at = format_stored(now)
        # Copied now: the caller's set changes while the job waits in the queue.
        known, skip = frozenset(channels), frozenset(exclude)

        def run(db: sqlite3.Connection) -> list[Move]:
            return _move_alerts(db, known, channels_of, at, item, skip)

        return self._enqueue(_Job(run=run, future=self._new_future()))

    def shift_due_times(self, seconds: float) -> asyncio.Future[int]:
        """Move pending rows' next attempt and lease by `seconds` (a wall-clock step)."""
        return self._shift_pending(seconds, ("next_attempt_at", "claimed_until"))

    def shift_created_times(self, seconds: float) -> asyncio.Future[int]:
        """Move pending rows' creation time, which starts give_up_after, by `seconds`."""
        return self._shift_pending(seconds, ("created_at",))

    def _shift_pending(self, seconds: float, columns: tuple[str, ...]) -> asyncio.Future[int]:
        step = timedelta(seconds=seconds)

        def run(db: sqlite3.Connection) -> int:
            names = ", ".join(columns)
            rows = db.execute(f"SELECT id, {names} FROM outbox WHERE state = 'pending'").fetchall()
            assign = ", ".join(f"{c} = ?" for c in columns)
            db.executemany(
                f"UPDATE outbox SET {assign} WHERE id = ?",
                [(*(_shifted(t, step) for t in row[1:]), row[0]) for row in rows],
            )
            return len(rows)

        return self._enqueue(_Job(run=run, future=self._new_future()))

    # --- reads --------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        rows = await self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def load_states(self) -> dict[str, MonitorState]:
        states = {}
        for slug, text in await self._read("SELECT slug, state FROM monitors"):
            try:
                states[slug] = MonitorState.from_json(json.loads(text))
            except (ValueError, TypeError, KeyError) as exc:
                # One unreadable row must not keep the daemon from starting;
                # that monitor starts over as new (and alerts if not pinged).
                log.error("unreadable monitor state monitor=%s error=%s", slug, exc)
        return states

    async def pings(self, slug: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest pings of a monitor, newest first."""
        rows = await self._read(
            "SELECT id, at, kind, exit_status, rid, method, remote_addr, user_agent, body,"
            " truncated, duration FROM pings WHERE monitor = ? ORDER BY id DESC LIMIT ?",
            (slug, limit),
        )
        return [
            {
                "id": row[0],
                "at": publish_stored(row[1]),
                "kind": row[2],
                "exit_status": row[3],
                "rid": row[4],
                "method": row[5],
                "remote_addr": row[6],
                "user_agent": row[7],
                "body": row[8],
                "truncated": bool(row[9]),
                "duration": row[10],
            }
            for row in rows
        ]

    async def flips(self, slug: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest flips of a monitor, newest first, each with its deliveries."""
        rows = await self._read(
            "SELECT id, at, old, new, reason, event FROM flips WHERE monitor = ?"
            " ORDER BY id DESC LIMIT ?",
            (slug, limit),
        )
        flips = {
            row[0]: {
                "id": row[0],
                "at": publish_stored(row[1]),
                "old": row[2],
                "new": row[3],
                "reason": row[4],
                "event": row[5],
                "deliveries": [],
            }
            for row in rows
        }
        if flips:
            marks = ",".join("?" * len(flips))
            deliveries = await self._read(
                "SELECT flip_id, channel, state, attempts, last_error, delivered_at, failed_at"
                f" FROM outbox WHERE flip_id IN ({marks}) ORDER BY id",
                tuple(flips),
            )
            for flip_id, channel, state, attempts, error, delivered, failed in deliveries:
                flips[flip_id]["deliveries"].append(
                    {
                        "channel": channel,
                        "state": state,
                        "attempts": attempts,
                        "last_error": error,
                        "delivered_at": publish_stored(delivered),
                        "failed_at": publish_stored(failed),
                    }
                )
        return list(flips.values())

    async def next_due(self) -> datetime | None:
        """When the earliest pending row can next be claimed, or None."""
        # A claimed row is not claimable before its lease ends; answering its
        # (past) next_attempt_at would make the worker wake up for nothing.
        rows = await self._read(
            "SELECT min(CASE WHEN claimed_until > next_attempt_at THEN claimed_until"
            f" ELSE next_attempt_at END) FROM outbox WHERE id IN ({HEADS_OF_LINE})"
        )
        return parse_stored(rows[0][0]) if rows and rows[0][0] is not None else None

    async def release_claims(self) -> int:
        """Forget every lease: at start-up no send of this process is under way.

        A crash in the middle of a send left its row claimed; without this it
        would wait out the lease before being sent again (at least once).
        """

        def run(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE outbox SET claimed_until = NULL"
                " WHERE state = 'pending' AND claimed_until IS NOT NULL"
            )
            return cursor.rowcount

        return await self._call(run)

    async def outbox_counts(self) -> dict[str, int]:
        counts = {"pending": 0, "sent": 0, "failed": 0}
        for state, n in await self._read("SELECT state, count(*) FROM outbox GROUP BY state"):
            counts[state] = n
        return counts

    async def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the database: {exc}") from exc

    # --- the writer -----------------------------------------------------------

    def _new_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, job: _Job) -> asyncio.Future[Any]:
        if self._closing or self._task.done():
            job.future.set_exception(StoreError(f"{self.path}: the store is closed"))
        else:
            self._queue.put_nowait(job)
        return job.future

    async def _call(self, run: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._enqueue(_Job(run=run, future=self._new_future()))
        return result

    async def _write_forever(self) -> None:
        stopping = False
        jobs: list[_Job] = []
        try:
            while not stopping:
                jobs = []
                job = await self._queue.get()
                # Let pings whose requests are already parsed and ready join
                # this batch: one pass of the loop, not a timed wait.
                await self._clock.sleep(0)
                while True:
                    if job is None:
                        stopping = True
                    else:
                        jobs.append(job)
                    if len(jobs) >= MAX_BATCH or self._queue.empty():
                        break
                    job = self._queue.get_nowait()
                # Held by `jobs` alone: nothing keeps the last ping's body
                # alive while the writer waits for the next one.
                job = None
                if jobs:
                    await self._write_batch(jobs)
        except asyncio.CancelledError:
            # Cancelled from outside (e.g. the loop shutting down): what is
            # queued was promised to callers, so write it before going.
            self._closing = True
            await self._write_remaining([job for job in jobs if not job.future.done()])
            raise

    async def _write_remaining(self, unfinished: Sequence[_Job] = ()) -> None:
        jobs = [*unfinished, *(job for job in _drain(self._queue) if job is not None)]
        for start in range(0, len(jobs), MAX_BATCH):
            await self._write_batch(jobs[start : start + MAX_BATCH])

    async def _write_batch(self, jobs: list[_Job]) -> None:
        """Commit the jobs in one transaction on the writer thread, then resolve them."""
        jobs = self._skip_broken_chains(jobs)
        barriers = [job for job in jobs if job.run is None and job.changes is None]
        jobs = [job for job in jobs if job.run is not None or job.changes is not None]
        if not jobs:
            _pass(barriers)
            return
        work = self._executor.submit(self._write_batch_sync, jobs)
        try:
            done, failed = await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            # The batch runs to its end on the writer thread (it commits or
            # rolls back as a whole); wait for that, resolve, then stop.
            done, failed = work.result()
            self._settle(done, failed)
            _pass(barriers)
            raise
        self._settle(done, failed)
        # After the jobs they follow, so a flush's waiter sees their outcome.
        _pass(barriers)

    def _skip_broken_chains(self, jobs: list[_Job]) -> list[_Job]:
        """Fail, unwritten, every job built on one that failed; return the others.

        Jobs resolve in queue order, so the job a change builds on has already
        failed or succeeded here, unless it is in this very batch, whose changes
        commit or fail together. Failing a job at once makes the ones built on
        it fail in turn, further down the same list.
        """
        kept = []
        skipped = 0
        for job in jobs:
            before = job.after
            if before is None or not before.done() or _succeeded(before):
                kept.append(job)
                continue
            skipped += 1
            if not job.future.done():
                error = StoreError(f"{self.path}: not written: the change it builds on failed")
                error.__cause__ = None if before.cancelled() else before.exception()
                job.future.set_exception(error)
        if skipped:
            log.warning("store changes skipped path=%s jobs=%d", self.path, skipped)
        return kept

    def _settle(self, done: list[tuple[list[_Job], Any]], failed: list[tuple[list[_Job], Any]]):
        for unit_jobs, exc in failed:
            self._fail(unit_jobs, exc)
        if done:
            self._resolve(done)

    def _write_batch_sync(
        self, jobs: list[_Job]
    ) -> tuple[list[tuple[list[_Job], Any]], list[tuple[list[_Job], BaseException]]]:
        """On the writer thread: one transaction; returns (done, failed) units.

        It never touches the futures (they belong to the event loop).
        """
        db = self._writer
        changes = [job for job in jobs if job.changes is not None]
        units: list[tuple[Callable[[sqlite3.Connection], Any], list[_Job]]] = []
        if changes:
            units.append((lambda db: self._write_changes(db, changes), changes))
        units.extend((job.run, [job]) for job in jobs if job.run is not None)
        # With more than one unit, a savepoint each keeps one failing
        # operation from failing the pings that share its transaction.
        isolate = len(units) > 1
        done: list[tuple[list[_Job], Any]] = []
        failed: list[tuple[list[_Job], BaseException]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for run, unit_jobs in units:
                if isolate:
                    db.execute("SAVEPOINT unit")
                try:
                    value = run(db)
                except Exception as exc:
                    # SQLite rolls the whole transaction back on some errors
                    # (disk full, I/O); then the batch as a whole has failed.
                    if not isolate or not db.in_transaction:
                        raise
                    db.execute("ROLLBACK TO unit")
                    db.execute("RELEASE unit")
                    failed.append((unit_jobs, exc))
                    continue
                if isolate:
                    db.execute("RELEASE unit")
                done.append((unit_jobs, value))
            db.execute("COMMIT")
        except Exception as exc:
            self._rollback()
            return [], [(jobs, exc)]
        return done, failed

    def _resolve(self, done: list[tuple[list[_Job], Any]]) -> None:
        for unit_jobs, value in done:
            for job in unit_jobs:
                if not job.future.done():
                    job.future.set_result(value)

    def _write_changes(self, db: sqlite3.Connection, jobs: list[_Job]) -> None:
        changes = [change for job in jobs for change in job.changes or ()]
        # The last state queued for a monitor is its newest; only it is written.
        last = {c.slug: c for c in changes}
        db.executemany(
            UPSERT_STATE,
            [(c.slug, json.dumps(c.state.to_json()), c.updated_at) for c in last.values()],
        )
        pings = [c.ping for c in changes if c.ping is not None]
        if pings:
            db.executemany(INSERT_PING, pings)
            if self._untrimmed is not None:
                self._untrimmed.update(c.slug for c in changes if c.ping is not None)
        flips = []
        outbox = []
        flip_id = 0
        if any(c.flip is not None for c in changes):
            # Only the writer inserts flips, inside BEGIN IMMEDIATE, so ids
            # can be given here and the outbox rows can refer to them.
            flip_id = db.execute("SELECT coalesce(max(id), 0) FROM flips").fetchone()[0]
        for change in changes:
            this_flip = None
            if change.flip is not None:
                flip_id += 1
                this_flip = flip_id
                flips.append((flip_id, *change.flip))
            outbox.extend((this_flip, *row) for row in change.outbox)
        if flips:
            db.executemany(INSERT_FLIP, flips)
        if outbox:
            db.executemany(INSERT_OUTBOX, outbox)

    def _rollback(self) -> None:
        if not self._writer.in_transaction:
            return
        try:
            self._writer.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("store rollback failed path=%s error=%s", self.path, exc)

    def _fail(self, jobs: list[_Job], exc: BaseException) -> None:
        pending = [job for job in jobs if not job.future.done()]
        if isinstance(exc, sqlite3.Error):
            message = f"{self.path}: cannot write the database: {exc}"
            log.error("store write failed path=%s jobs=%d error=%s", self.path, len(jobs), exc)
        elif isinstance(exc, asyncio.CancelledError):
            message = f"{self.path}: the store writer was cancelled"
            log.error("store write cancelled path=%s jobs=%d", self.path, len(jobs))
        else:
            message = f"{self.path}: internal error writing the database: {exc!r}"
            log.error("store write failed path=%s jobs=%d", self.path, len(jobs), exc_info=exc)
        for job in pending:
            # One exception each: a shared one would collect every caller's traceback.
            error = StoreError(message)
            error.__cause__ = exc
            job.future.set_exception(error)


def _open_writer(path: Path, synchronous: str) -> tuple[sqlite3.Connection, int]:
    """On the writer thread: connect, configure and migrate."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _configure_writer(db, path, synchronous)
        return db, _migrate(db, path)
    except BaseException:
        db.close()
        raise


def _configure_writer(db: sqlite3.Connection, path: Path, synchronous: str) -> None:
    row = db.execute("PRAGMA journal_mode = wal").fetchone()
    mode = str(row[0]).lower() if row else ""
    if mode != "wal":
        # Without WAL a reader blocks the writer, and "committed" means less
        # than we promise; refuse rather than run degraded.
        raise StoreError(f"{path}: journal_mode reads back {mode!r}, need 'wal'")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")


def _migrate(db: sqlite3.Connection, path: Path) -> int:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: schema version {version} is newer than this heartbeatd knows "
            f"({len(MIGRATIONS)}); upgrade heartbeatd"
        )
    for number in range(version, len(MIGRATIONS)):
        # One transaction per migration: a failed one leaves the previous version.
        try:
            db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\n"
                f"PRAGMA user_version = {number + 1};\nCOMMIT;"
            )
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        log.info("store migrated path=%s schema=%d", path, number + 1)
    return len(MIGRATIONS)


def _ping_row(slug: str, record: PingRecord) -> tuple[Any, ...]:
    ping = record.ping
    return (
        slug,
        format_stored(ping.at),
        ping.kind.value,
        ping.exit_status,
        ping.rid,
        ping.method,
        ping.remote_addr,
        ping.user_agent,
        ping.body,
        int(ping.truncated),
        record.duration,
    )


def _flip_row(slug: str, flip: Flip) -> tuple[Any, ...]:
    event = flip.event.value if flip.event is not None else None
    return (slug, format_stored(flip.at), flip.old.value, flip.new.value, flip.reason.value, event)


def _outbox_item(row: Any) -> OutboxItem:
    item_id, flip_id, monitor, channel, payload, attempts, created_at, next_attempt_at, claim = row
    return OutboxItem(
        id=item_id,
        flip_id=flip_id,
        monitor=monitor,
        channel=channel,
        alert=Alert.from_json(json.loads(payload)),
        attempts=attempts,
        created_at=parse_stored(created_at),
        next_attempt_at=parse_stored(next_attempt_at),
        claim=claim,
    )


def _move_alerts(
    db: sqlite3.Connection,
    channels: frozenset[str],
    channels_of: Callable[[str], Sequence[str] | None],
    at: str,
    item: OutboxItem | None,
    exclude: frozenset[int],
) -> list[Move]:
    """On the writer thread: the body of Store.move_alerts."""
    columns = "id, flip_id, monitor, channel, event, payload, created_at, coalesce(origin, id)"
    if item is None:
        # A row whose claim is current has its send under way with the old
        # channel; it is moved, if it must be, when it is next claimed.
        rows = [
            row
            for row in db.execute(
                f"SELECT {columns} FROM outbox WHERE state = 'pending'"
                " AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY id",
                (at,),
            )
            if row[3] not in channels and row[0] not in exclude
        ]
    else:
        rows = db.execute(
            f"SELECT {columns} FROM outbox WHERE id = ? AND claim = ? AND state = 'pending'",
            (item.id, item.claim),
        ).fetchall()
    moves = []
    for row_id, flip_id, monitor, channel, event, payload, created_at, origin in rows:
        targets = [c for c in channels_of(monitor) or () if c in channels]
        if not targets:
            moves.append(Move(row_id, monitor, event, channel, (), ()))
            continue
        # The same alert: its flip's (or, for a reminder, the same payload's)
        # row for a channel, whatever state that row is in.
        taken = {
            c
            for (c,) in db.execute(
                "SELECT channel FROM outbox WHERE monitor = ? AND flip_id IS ? AND payload = ?",
                (monitor, flip_id, payload),
            )
        }
        to = tuple(c for c in targets if c not in taken)
        db.executemany(
            "INSERT INTO outbox (flip_id, monitor, channel, event, payload, created_at,"
            " next_attempt_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(flip_id, monitor, c, event, payload, created_at, at, origin) for c in to],
        )
        shown = ", ".join(to) if to else "none (all had it)"
        db.execute(
            "UPDATE outbox SET state = 'moved', last_error = ?, finished_at = ?,"
            " claimed_until = NULL WHERE id = ?",
            (f"channel {channel} is no longer configured; moved to {shown}", at, row_id),
        )
        already = tuple(c for c in targets if c in taken)
        moves.append(Move(row_id, monitor, event, channel, to, already))
    return moves


def _prune_flips(
    db: sqlite3.Connection, monitors: list[str], keep: int, batch: int
) -> tuple[int, list[str]]:
    """On the writer thread: up to `batch` old flips of `monitors`; returns
    (deleted, the monitors that may have more)."""
    removed = 0
    for index, monitor in enumerate(monitors):
        ids = [
            row[0]
            for row in db.execute(
                "SELECT id FROM flips WHERE monitor = ? AND id <= (SELECT id FROM flips"
                " WHERE monitor = ? ORDER BY id DESC LIMIT 1 OFFSET ?) AND NOT EXISTS"
                " (SELECT 1 FROM outbox WHERE flip_id = flips.id AND state = 'pending')"
                " ORDER BY id LIMIT ?",
                (monitor, monitor, keep, batch - removed),
            )
        ]
        if ids:
            marks = ",".join("?" * len(ids))
            # Their outbox rows first: they refer to the flips (foreign key).
            db.execute(f"DELETE FROM outbox WHERE flip_id IN ({marks})", ids)
            db.execute(f"DELETE FROM flips WHERE id IN ({marks})", ids)
            removed += len(ids)
        if removed >= batch:
            return removed, monitors[index:]
    return removed, []


def _shifted(text: str | None, step: timedelta) -> str | None:
    return None if text is None else format_stored(parse_stored(text) + step)


def _pass(barriers: list[_Job]) -> None:
    for barrier in barriers:
        if not barrier.future.done():
            barrier.future.set_result(None)


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return not future.cancelled() and future.exception() is None


def _drain(queue: asyncio.Queue[T]) -> list[T]:
    items = []
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            items.append(queue.get_nowait())
    return items
