"""The database file: its tables, and opening, configuring and migrating it.

The writer's connection is a plain sqlite3 one, used only on the writer's
thread; reads go through a second, read-only aiosqlite connection (`Reader`),
which WAL lets read while a batch is being written.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

from heartbeatd.store.errors import StoreError

log = logging.getLogger(__name__)

SYNCHRONOUS_MODES = ("normal", "full", "extra")
BUSY_TIMEOUT_MS = 5000

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
    # Monitors created through the API or by auto-provisioning: `definition`
    # is the monitor's table as JSON, read against [defaults] like a file's.
    """
    CREATE TABLE api_monitors (
        slug TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, definition TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
    """,
]
# The schema version of a database once it is open.
VERSION = len(MIGRATIONS)


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """On the writer thread: connect, configure and migrate."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _configure(db, path, synchronous)
        _migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _configure(db: sqlite3.Connection, path: Path, synchronous: str) -> None:
    row = db.execute("PRAGMA journal_mode = wal").fetchone()
    mode = str(row[0]).lower() if row else ""
    if mode != "wal":
        # Without WAL a reader blocks the writer, and "committed" means less
        # than we promise; refuse rather than run degraded.
        raise StoreError(f"{path}: journal_mode reads back {mode!r}, need 'wal'")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this heartbeatd knows "
            f"({VERSION}); upgrade heartbeatd"
        )
    for number in range(version, VERSION):
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


class Reader:
    """The read-only connection; every read error is a StoreError."""

    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        self.path = path
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> Reader:
        # absolute() asks for the working directory: no disk I/O to wait for.
        uri = path.absolute().as_uri() + "?mode=ro"  # noqa: ASYNC240
        db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except BaseException:
            await db.close()
            raise
        return cls(path, db)

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return list(await self._db.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the database: {exc}") from exc

    async def close(self) -> None:
        await self._db.close()
