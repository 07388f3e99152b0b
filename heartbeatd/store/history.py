"""What happened to each monitor: its state, pings and flips, and the meta table.

The writes take the writer's connection: they run inside a batch on the
writer's thread. The reads take the `Reader`. Retention lives here too:
trimming pings and pruning flips.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeatd.model import Flip, MonitorState, Ping
from heartbeatd.store.schema import Reader
from heartbeatd.times import format_stored, publish_stored

log = logging.getLogger(__name__)

UPSERT_STATE = (
    "INSERT INTO monitors (slug, state, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (slug) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
)
INSERT_PING = (
    "INSERT INTO pings (monitor, at, kind, exit_status, rid, method, remote_addr, user_agent,"
    " body, truncated, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_FLIP = (
    "INSERT INTO flips (id, monitor, at, old, new, reason, event, held_by)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Keeps the newest `keep` pings of one monitor; the subquery is NULL (nothing
# deleted) while the monitor has no more than `keep`.
TRIM_PINGS = (
    "DELETE FROM pings WHERE monitor = ? AND id <= "
    "(SELECT id FROM pings WHERE monitor = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)

# A row of the pings table (without its id), and of the flips table (without its id).
PingRow = tuple[Any, ...]
# (monitor, at, old, new, reason, event, held_by): typed, so a column added
# to the table cannot be left out of a row that some other code builds.
FlipRow = tuple[str, str, str, str, str, str | None, str | None]


@dataclass(frozen=True)
class PingRecord:
    ping: Ping
    # Seconds since the matching start, computed by the engine.
    duration: float | None = None


def ping_row(slug: str, record: PingRecord) -> PingRow:
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


def flip_row(slug: str, flip: Flip) -> FlipRow:
    event = flip.event.value if flip.event is not None else None
    return (
        slug,
        format_stored(flip.at),
        flip.old.value,
        flip.new.value,
        flip.reason.value,
        event,
        flip.held_by,
    )


# The status and reason a monitor's history shows for a time heartbeatd did
# not watch it (not running, or its wall clock jumped): no ping could be seen.
UNKNOWN = "unknown"
DAEMON_GAP = "daemon_gap"


def unknown_rows(slug: str, status: str, since: datetime, until: datetime) -> list[FlipRow]:
    """Two flips: into `unknown` at `since`, back to `status` at `until`."""
    return [
        (slug, format_stored(since), status, UNKNOWN, DAEMON_GAP, None, None),
        (slug, format_stored(until), UNKNOWN, status, DAEMON_GAP, None, None),
    ]


# --- writes (on the writer's thread) ------------------------------------------


# Written for every monitor a batch changed: compact, and no cycle check (a
# state's JSON is flat).
_encode_state = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


def save_states(db: sqlite3.Connection, states: Iterable[tuple[str, MonitorState, str]]) -> None:
    """Upsert (slug, state, updated_at) rows.

    A first start saves 100,000 states of which most are one shared object
    (Engine.recover): each distinct object is serialised once. Keyed by id(),
    which is safe while the caller holds every state, as it does here.
    """
    texts: dict[int, str] = {}
    rows = []
    for slug, state, updated_at in states:
        text = texts.get(id(state))
        if text is None:
            text = texts[id(state)] = _encode_state(state.to_json())
        rows.append((slug, text, updated_at))
    db.executemany(UPSERT_STATE, rows)


def add_pings(db: sqlite3.Connection, rows: list[PingRow]) -> None:
    if rows:
        db.executemany(INSERT_PING, rows)


def add_flips(db: sqlite3.Connection, rows: list[FlipRow]) -> list[int]:
    """Insert flips; return their ids, in order, for the outbox rows to refer to."""
    if not rows:
        return []
    # Only the writer inserts flips, inside BEGIN IMMEDIATE, so ids can be
    # given here.
    last: int = db.execute("SELECT coalesce(max(id), 0) FROM flips").fetchone()[0]
    ids = list(range(last + 1, last + 1 + len(rows)))
    db.executemany(INSERT_FLIP, [(flip_id, *row) for flip_id, row in zip(ids, rows, strict=True)])
    return ids


def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


class PingTrims:
    """Which monitors got pings since the last trim, so a trim looks only at those.

    Used on the writer's thread only.
    """

    def __init__(self) -> None:
        # None means "not known yet" (just opened): the first trim looks at
        # every monitor.
        self._untrimmed: set[str] | None = None

    def note(self, slugs: Iterable[str]) -> None:
        if self._untrimmed is not None:
            self._untrimmed.update(slugs)

    def trim(self, db: sqlite3.Connection, keep: int) -> int:
        """Delete all but the newest `keep` pings of every monitor; return how many."""
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


def prune_flips(
    db: sqlite3.Connection, *, monitors: list[str], keep: int, batch: int
) -> tuple[int, list[str]]:
    """Up to `batch` old flips of `monitors`, with their finished outbox rows;
    returns (deleted, the monitors that may have more).

    A flip that a pending alert belongs to stays.
    """
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


# --- reads ------------------------------------------------------------------


async def monitors_with_more_flips(reader: Reader, keep: int) -> list[str]:
    rows = await reader.fetch(
        "SELECT monitor FROM flips GROUP BY monitor HAVING count(*) > ?", (keep,)
    )
    return [row[0] for row in rows]


async def get_meta(reader: Reader, key: str) -> str | None:
    rows = await reader.fetch("SELECT value FROM meta WHERE key = ?", (key,))
    return rows[0][0] if rows else None


async def load_states(reader: Reader) -> dict[str, MonitorState]:
    states = {}
    for slug, text in await reader.fetch("SELECT slug, state FROM monitors"):
        try:
            states[slug] = MonitorState.from_json(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            # One unreadable row must not keep the daemon from starting;
            # that monitor starts over as new (and alerts if not pinged).
            log.error("unreadable monitor state monitor=%s error=%s", slug, exc)
    return states


async def pings(reader: Reader, slug: str, limit: int) -> list[dict[str, Any]]:
    """The newest pings of a monitor, newest first."""
    rows = await reader.fetch(
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


async def run_durations(reader: Reader, slug: str, limit: int) -> list[float]:
    """Seconds of the newest measured runs of a monitor, newest first."""
    rows = await reader.fetch(
        "SELECT duration FROM pings WHERE monitor = ? AND duration IS NOT NULL"
        " ORDER BY id DESC LIMIT ?",
        (slug, limit),
    )
    return [row[0] for row in rows]


async def flips(reader: Reader, slug: str, limit: int) -> list[dict[str, Any]]:
    """The newest flips of a monitor, newest first, each with its deliveries."""
    rows = await reader.fetch(
        "SELECT id, at, old, new, reason, event, held_by FROM flips WHERE monitor = ?"
        " ORDER BY id DESC LIMIT ?",
        (slug, limit),
    )
    found: dict[int, dict[str, Any]] = {
        row[0]: {
            "id": row[0],
            "at": publish_stored(row[1]),
            "old": row[2],
            "new": row[3],
            "reason": row[4],
            "event": row[5],
            "held_by": row[6],
            "deliveries": [],
        }
        for row in rows
    }
    if found:
        marks = ",".join("?" * len(found))
        deliveries = await reader.fetch(
            "SELECT flip_id, channel, state, attempts, last_error, delivered_at, failed_at"
            f" FROM outbox WHERE flip_id IN ({marks}) ORDER BY id",
            tuple(found),
        )
        for flip_id, channel, state, attempts, error, delivered, failed in deliveries:
            found[flip_id]["deliveries"].append(
                {
                    "channel": channel,
                    "state": state,
                    "attempts": attempts,
                    "last_error": error,
                    "delivered_at": publish_stored(delivered),
                    "failed_at": publish_stored(failed),
                }
            )
    return list(found.values())


async def flips_since(
    reader: Reader, since: dict[str, str], limit: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """For each monitor, its flips from its stored time `since[slug]` on and
    the one before them (what it was at that time), oldest first: one query
    for a whole page of monitors. With `limit`, no more than the newest
    `limit` of them: a monitor that flapped all day costs a page no more
    than that (the oldest one kept then tells what it was before, as after
    flip_history pruned the older ones)."""
    found: dict[str, list[dict[str, Any]]] = {slug: [] for slug in since}
    if not since:
        return found
    values = ",".join("(?, ?)" for _ in since)
    # The first id per monitor walks its flips back from the newest (the
    # (monitor, id) index) only as far as the first one before `since`, or
    # `limit` flips back, whichever comes first.
    newest = (
        "coalesce((SELECT id FROM flips WHERE flips.monitor = w.monitor"
        " ORDER BY id DESC LIMIT 1 OFFSET ?), 0)"
        if limit is not None
        else "0"
    )
    params: tuple[str | int, ...] = tuple(part for pair in since.items() for part in pair)
    if limit is not None:
        params += (max(0, limit - 1),)
    rows = await reader.fetch(
        f"WITH w (monitor, since) AS (VALUES {values}),"
        " b (monitor, first) AS MATERIALIZED (SELECT monitor, max(coalesce((SELECT id FROM"
        " flips WHERE flips.monitor = w.monitor AND at < w.since ORDER BY id DESC LIMIT 1), 0),"
        f" {newest}) FROM w)"
        " SELECT f.monitor, f.at, f.old, f.new, f.reason FROM b JOIN flips f"
        " ON f.monitor = b.monitor AND f.id >= b.first ORDER BY f.id",
        params,
    )
    for slug, at, old, new, reason in rows:
        found[slug].append({"at": at, "old": old, "new": new, "reason": reason})
    return found


async def runs(reader: Reader, slug: str, limit: int) -> list[dict[str, Any]]:
    """The newest pings that ended a measured run, newest first."""
    rows = await reader.fetch(
        "SELECT at, kind, exit_status, duration FROM pings"
        " WHERE monitor = ? AND duration IS NOT NULL ORDER BY id DESC LIMIT ?",
        (slug, limit),
    )
    return [
        {"at": publish_stored(at), "kind": kind, "exit_status": status, "duration": duration}
        for at, kind, status, duration in rows
    ]
