"""The group-commit writer: one task, one thread, one transaction per batch.

Everything queued while a batch is written goes into the next one, so a burst
of writes costs one fsync, not one each. The connection lives on a thread of
its own and gets a whole batch at once: one thread hop per transaction, not
one per statement.

The writer knows nothing about monitors. A job is one of:

- changes: values of the caller's type, collected from every such job of a
  batch and written by the caller's `write_changes(db, changes)` in one go;
- an operation: `run(db)`, in a savepoint of its own when the batch holds
  more than one unit, so one failing operation does not fail the rest;
- a flush: nothing to write; it resolves once the jobs before it have.

A job's future resolves once its batch is committed, or fails with a
StoreError. A job queued `after` another fails, unwritten, if that one failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from heartbeatd.clock import Clock
from heartbeatd.store.errors import StoreError

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")

# Jobs taken into one transaction at most.
MAX_BATCH = 2000

Run = Callable[[sqlite3.Connection], Any]
# (the jobs of a unit, its result or its error)
Done = list[tuple[list["_Job[Any]"], Any]]
Failed = list[tuple[list["_Job[Any]"], BaseException]]


@dataclass
class _Job(Generic[C]):
    future: asyncio.Future[Any]
    run: Run | None = None
    # Written in queue order; one job may carry many (a bulk save at
    # start-up) under one future.
    changes: list[C] | None = None
    # The future of an earlier job this one builds on (see `queue_changes`).
    after: asyncio.Future[Any] | None = None

    @property
    def is_flush(self) -> bool:
        return self.run is None and self.changes is None


class Writer(Generic[C]):
    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        executor: concurrent.futures.ThreadPoolExecutor,
        clock: Clock,
        write_changes: Callable[[sqlite3.Connection, list[C]], None],
    ) -> None:
        self.path = path
        # Used only on the executor's one thread.
        self._db = db
        self._executor = executor
        self._clock = clock
        self._write_changes = write_changes
        self._queue: asyncio.Queue[_Job[C] | None] = asyncio.Queue()
        self._closing = False
        self._stopped = False
        self._task = asyncio.get_running_loop().create_task(self._write_forever())

    @classmethod
    async def open(
        cls,
        path: Path,
        connect: Callable[[], sqlite3.Connection],
        clock: Clock,
        write_changes: Callable[[sqlite3.Connection, list[C]], None],
    ) -> Writer[C]:
        """Open the connection with `connect` on the writer's thread and start writing."""
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="heartbeatd-writer")
        try:
            db = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, db, executor, clock, write_changes)

    # --- queueing -----------------------------------------------------------

    def queue_changes(
        self, changes: list[C], *, after: asyncio.Future[Any] | None = None
    ) -> asyncio.Future[None]:
        """Queue changes; the future resolves once they are committed.

        `after` is the future of an earlier job these were computed from. If
        that one fails, so do these (a StoreError), without being written:
        committed on their own, they would store an outcome without its cause.
        A cancelled `after` counts as failed, since its outcome is unknown.
        Cancelling the future does not withdraw the changes.
        """
        return self._enqueue(_Job(self._new_future(), changes=changes, after=after))

    def queue(self, run: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue an operation; the future resolves with its result once committed."""
        return self._enqueue(_Job(self._new_future(), run=run))

    def flush(self) -> asyncio.Future[None]:
        """A barrier: resolves once every job queued before it is written or has
        failed (each reports its own failure); raises StoreError once closed.

        It writes nothing, and it waits for a batch already being written,
        whose jobs are no longer in the queue.
        """
        return self._enqueue(_Job(self._new_future()))

    def _new_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, job: _Job[C]) -> asyncio.Future[Any]:
        if self._closing or self._task.done():
            job.future.set_exception(StoreError(f"{self.path}: the store is closed"))
        else:
            self._queue.put_nowait(job)
        return job.future

    # --- stopping -----------------------------------------------------------

    async def stop(self) -> None:
        """Write everything queued, then stop the task; later jobs are refused."""
        if self._stopped:
            return
        self._stopped = self._closing = True
        self._queue.put_nowait(None)
        if not self._task.done():
            await self._task
        elif not self._task.cancelled() and self._task.exception() is not None:
            log.error(
                "store writer had stopped path=%s", self.path, exc_info=self._task.exception()
            )
        # A writer cancelled before it ever ran left its queue behind.
        await self._write_remaining()

    async def close(self) -> None:
        """Close the connection and the thread (after `stop`)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._db.close)
        self._executor.shutdown(wait=True)

    # --- the task -----------------------------------------------------------

    async def _write_forever(self) -> None:
        stopping = False
        jobs: list[_Job[C]] = []
        try:
            while not stopping:
                jobs = []
                job = await self._queue.get()
                stopping = job is None
                if job is not None:
                    # In `jobs` before the next await: cancelled there, the
                    # writer still writes what it took off the queue.
                    jobs.append(job)
                    # Let pings whose requests are already parsed and ready
                    # join this batch: one pass of the loop, not a timed wait.
                    await self._clock.sleep(0)
                # The stop marker comes last: `stop` refuses jobs once it is queued.
                while not stopping and len(jobs) < MAX_BATCH and not self._queue.empty():
                    job = self._queue.get_nowait()
                    stopping = job is None
                    if job is not None:
                        jobs.append(job)
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

    async def _write_remaining(self, unfinished: Sequence[_Job[C]] = ()) -> None:
        jobs = [*unfinished, *(job for job in _drain(self._queue) if job is not None)]
        for start in range(0, len(jobs), MAX_BATCH):
            await self._write_batch(jobs[start : start + MAX_BATCH])

    async def _write_batch(self, jobs: list[_Job[C]]) -> None:
        """Commit the jobs in one transaction on the writer thread, then resolve them."""
        jobs = self._skip_broken_chains(jobs)
        flushes = [job for job in jobs if job.is_flush]
        jobs = [job for job in jobs if not job.is_flush]
        if not jobs:
            _pass(flushes)
            return
        work = self._executor.submit(self._write_batch_sync, jobs)
        try:
            done, failed = await asyncio.wrap_future(work)
        except asyncio.CancelledError:
            # The batch runs to its end on the writer thread (it commits or
            # rolls back as a whole); wait for that, resolve, then stop.
            done, failed = work.result()
            self._settle(done, failed)
            _pass(flushes)
            raise
        self._settle(done, failed)
        # After the jobs they follow, so a flush's waiter sees their outcome.
        _pass(flushes)

    def _skip_broken_chains(self, jobs: list[_Job[C]]) -> list[_Job[C]]:
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

    def _write_batch_sync(self, jobs: list[_Job[C]]) -> tuple[Done, Failed]:
        """On the writer thread: one transaction; returns (done, failed) units.

        It never touches the futures (they belong to the event loop).
        """
        db = self._db
        changing = [job for job in jobs if job.changes is not None]
        units: list[tuple[Run, list[_Job[Any]]]] = []
        if changing:
            changes = [change for job in changing for change in job.changes or ()]
            units.append((lambda db: self._write_changes(db, changes), list(changing)))
        units.extend((job.run, [job]) for job in jobs if job.run is not None)
        # With more than one unit, a savepoint each keeps one failing
        # operation from failing the pings that share its transaction.
        isolate = len(units) > 1
        done: Done = []
        failed: Failed = []
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
            return [], [(list(jobs), exc)]
        return done, failed

    def _rollback(self) -> None:
        if not self._db.in_transaction:
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("store rollback failed path=%s error=%s", self.path, exc)

    def _settle(self, done: Done, failed: Failed) -> None:
        for unit_jobs, exc in failed:
            self._fail(unit_jobs, exc)
        for unit_jobs, value in done:
            for job in unit_jobs:
                if not job.future.done():
                    job.future.set_result(value)

    def _fail(self, jobs: list[_Job[Any]], exc: BaseException) -> None:
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


def _pass(flushes: list[_Job[Any]]) -> None:
    for flush in flushes:
        if not flush.future.done():
            flush.future.set_result(None)


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return not future.cancelled() and future.exception() is None


def _drain(queue: asyncio.Queue[T]) -> list[T]:
    items = []
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            items.append(queue.get_nowait())
    return items
