"""The group-commit writer on its own: it knows nothing about monitors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from heartbeatd.clock import FakeClock
from heartbeatd.store import StoreError
from heartbeatd.store.writer import Writer
from tests.conftest import NOW


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = wal")
    db.execute("CREATE TABLE IF NOT EXISTS words (word TEXT NOT NULL)")
    return db


def words(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT word FROM words ORDER BY rowid")]


@pytest.fixture
async def batches(tmp_path: Path, clock: FakeClock):
    """A writer of words, and the batches of words it was handed."""
    seen: list[list[str]] = []

    def write_words(db: sqlite3.Connection, changes: list[str]) -> None:
        seen.append(list(changes))
        db.executemany("INSERT INTO words (word) VALUES (?)", [(w,) for w in changes])

    path = tmp_path / "words.db"
    writer = await Writer.open(path, lambda: connect(path), clock, write_words)
    yield writer, seen, path
    await writer.stop()
    await writer.close()


async def test_it_hands_the_changes_of_one_batch_to_the_caller_at_once(batches):
    writer, seen, path = batches
    futures = [writer.queue_changes([f"w{n}", f"x{n}"]) for n in range(100)]
    await asyncio.gather(*futures)
    assert seen == [[word for n in range(100) for word in (f"w{n}", f"x{n}")]]
    assert len(words(path)) == 200


async def test_it_resolves_an_operation_with_its_result(batches):
    writer, _, _ = batches
    await writer.queue_changes(["a", "b"])
    count = writer.queue(lambda db: db.execute("SELECT count(*) FROM words").fetchone()[0])
    assert await count == 2


async def test_it_keeps_a_failing_operation_from_failing_the_changes_beside_it(batches):
    writer, _, path = batches

    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO words (word) VALUES ('half')")
        db.execute("INSERT INTO nowhere VALUES (1)")

    results = await asyncio.gather(
        writer.queue_changes(["kept"]), writer.queue(broken), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], StoreError)
    assert "no such table: nowhere" in str(results[1])
    # The operation's savepoint took its half-done insert with it.
    assert words(path) == ["kept"]


async def test_it_refuses_jobs_once_stopped(tmp_path: Path, clock: FakeClock):
    path = tmp_path / "words.db"
    writer: Writer[str] = await Writer.open(path, lambda: connect(path), clock, lambda db, c: None)
    queued = writer.queue_changes(["late"])
    await writer.stop()
    assert queued.done() and queued.exception() is None
    for refused in (writer.queue_changes(["later"]), writer.flush()):
        with pytest.raises(StoreError, match="closed"):
            await refused
    await writer.close()


def test_it_writes_the_job_it_just_took_when_the_loop_shuts_down(tmp_path: Path):
    path = tmp_path / "words.db"
    clock = FakeClock(NOW)
    writers: list[Writer[str]] = []

    async def main() -> asyncio.Future[None]:
        writer: Writer[str] = await Writer.open(
            path,
            lambda: connect(path),
            clock,
            lambda db, c: db.executemany("INSERT INTO words VALUES (?)", [(w,) for w in c]),
        )
        writers.append(writer)
        # The writer waits for work.
        await clock.sleep(0)
        # A change queued as the program ends: the writer takes it, and
        # yields once for others to join its batch. asyncio.run cancels it
        # right there, as it cancels every task left when main returns.
        return writer.queue_changes(["promised"])

    promised = asyncio.run(main())
    asyncio.run(writers[0].close())
    assert promised.done() and promised.exception() is None
    assert words(path) == ["promised"]
