"""The alert outbox table: rows queued with their flip, claimed, marked, moved.

Alerts of one monitor to one channel go out in order (only the head of each
line can be claimed), and only the current claim of a row records an
outcome. The writes take the writer's connection; the reads take the Reader.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from heartbeatd.alerts import Alert
from heartbeatd.store.schema import Reader
from heartbeatd.times import format_stored, parse_stored

log = logging.getLogger(__name__)

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

# The monitor column of a group's row: its alerts stand in line together.
GROUP_MONITOR = "*"

# A new row of the outbox table, from flip_id on (see INSERT_OUTBOX).
AlertRow = tuple[Any, ...]


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
    # Current channels where a newer alert of the monitor went out already:
    # sent there now, this one would arrive out of order (DOWN after UP).
    superseded: tuple[str, ...] = ()

    @property
    def is_stuck(self) -> bool:
        """The monitor is gone or has no channels: the alert stays where it is."""
        return not self.to and not self.already and not self.superseded


def alert_row(slug: str, channel: str, alert: Alert, created_at: str, due: str) -> AlertRow:
    """An alert's row, without its flip_id (known only once the flip is written)."""
    return (slug, channel, alert.event.value, json.dumps(alert.to_json()), created_at, due)


# --- writes (on the writer's thread) ------------------------------------------


def add_alerts(db: sqlite3.Connection, rows: list[AlertRow]) -> None:
    """Insert (flip_id, *alert_row) rows."""
    if rows:
        db.executemany(INSERT_OUTBOX, rows)


def add_grouped(db: sqlite3.Connection, rows: list[tuple[AlertRow, int]]) -> None:
    """Insert (flip_id, *alert_row) rows of channels that group, with their
    group_wait: each waits, as state 'grouping', until its channel's window
    closes. The first alert to a channel opens a window of group_wait; the
    alerts that come before it closes join it."""
    for row, wait in rows:
        channel, created_at = row[2], row[5]
        found = db.execute(
            "SELECT min(next_attempt_at) FROM outbox WHERE state = 'grouping' AND channel = ?",
            (channel,),
        ).fetchone()
        due = found[0] if found and found[0] is not None else None
        if due is None:
            due = format_stored(parse_stored(created_at) + timedelta(seconds=wait))
        db.execute(
            "INSERT INTO outbox (flip_id, monitor, channel, event, payload, created_at,"
            " next_attempt_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'grouping')",
            (*row[:6], due),
        )


def flush_groups(db: sqlite3.Connection, now: datetime) -> int:
    """Every channel's closed window becomes one pending row: a lone alert
    as it is, several as one `group` alert listing them (GROUP_MONITOR
    stands in line for them). Returns how many rows were made."""
    at = format_stored(now)
    channels = [
        c
        for (c,) in db.execute(
            "SELECT DISTINCT channel FROM outbox WHERE state = 'grouping' AND next_attempt_at <= ?",
            (at,),
        )
    ]
    for channel in channels:
        members = db.execute(
            "SELECT id, flip_id, monitor, event, payload, created_at FROM outbox"
            " WHERE state = 'grouping' AND channel = ? ORDER BY id",
            (channel,),
        ).fetchall()
        if len(members) == 1:
            db.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE id = ?",
                (at, members[0][0]),
            )
            continue
        payload = {"event": "group", "alerts": [json.loads(m[4]) for m in members]}
        db.execute(
            "INSERT INTO outbox (flip_id, monitor, channel, event, payload, created_at,"
            " next_attempt_at) VALUES (NULL, ?, ?, 'group', ?, ?, ?)",
            (GROUP_MONITOR, channel, json.dumps(payload), members[0][5], at),
        )
        db.executemany(
            "UPDATE outbox SET state = 'grouped', finished_at = ? WHERE id = ?",
            [(at, m[0]) for m in members],
        )
    return len(channels)


def claim_due(
    db: sqlite3.Connection, now: datetime, until: datetime, limit: int, exclude: frozenset[int]
) -> list[OutboxItem]:
    """Lease due, unclaimed heads of line until `until`; return what was claimed."""
    at = format_stored(now)
    skip = ",".join(str(int(i)) for i in exclude)
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
            log.error("unreadable outbox row id=%d monitor=%s error=%s", row[0], row[2], exc)
            broken.append((f"unreadable alert payload: {exc}", at, at, row[0]))
    db.executemany(
        "UPDATE outbox SET claimed_until = ?, claim = ? WHERE id = ?",
        [(format_stored(until), i.claim, i.id) for i in items],
    )
    if broken:
        db.executemany(
            "UPDATE outbox SET state = 'failed', last_error = ?, failed_at = ?,"
            " finished_at = ? WHERE id = ?",
            broken,
        )
    return items


def mark_delivered(db: sqlite3.Connection, item: OutboxItem, at: datetime) -> bool:
    when = format_stored(at)
    return _mark(
        db,
        item,
        "state = 'sent', attempts = attempts + 1, delivered_at = ?, finished_at = ?,"
        " claimed_until = NULL",
        (when, when),
    )


def mark_retry(db: sqlite3.Connection, item: OutboxItem, error: str, due: datetime) -> bool:
    return _mark(
        db,
        item,
        "attempts = attempts + 1, last_error = ?, next_attempt_at = ?, claimed_until = NULL",
        (error, format_stored(due)),
    )


def mark_failed(db: sqlite3.Connection, item: OutboxItem, error: str, at: datetime) -> bool:
    when = format_stored(at)
    return _mark(
        db,
        item,
        "state = 'failed', attempts = attempts + 1, last_error = ?, failed_at = ?,"
        " finished_at = ?, claimed_until = NULL",
        (error, when, when),
    )


def _mark(db: sqlite3.Connection, item: OutboxItem, assign: str, params: tuple[Any, ...]) -> bool:
    # A claim that was taken over (its lease ran out, or the row was
    # moved) must not overwrite what the current claimant records.
    sql = f"UPDATE outbox SET {assign} WHERE id = ? AND claim = ? AND state = 'pending'"
    return db.execute(sql, (*params, item.id, item.claim)).rowcount == 1


def release_claims(db: sqlite3.Connection) -> int:
    cursor = db.execute(
        "UPDATE outbox SET claimed_until = NULL"
        " WHERE state = 'pending' AND claimed_until IS NOT NULL"
    )
    return cursor.rowcount


def move_alerts(
    db: sqlite3.Connection,
    channels: frozenset[str],
    channels_of: Callable[[str], Sequence[str] | None],
    now: datetime,
    item: OutboxItem | None,
    exclude: frozenset[int],
) -> list[Move]:
    """The body of Store.move_alerts."""
    at = format_stored(now)
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
        newer = _newer_alerts_out(db, monitor, origin, at)
        to = tuple(c for c in targets if c not in taken and c not in newer)
        db.executemany(
            "INSERT INTO outbox (flip_id, monitor, channel, event, payload, created_at,"
            " next_attempt_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(flip_id, monitor, c, event, payload, created_at, at, origin) for c in to],
        )
        already = tuple(c for c in targets if c in taken)
        superseded = tuple(c for c in targets if c not in taken and c in newer)
        state = "superseded" if superseded and not to and not already else "moved"
        db.execute(
            "UPDATE outbox SET state = ?, last_error = ?, finished_at = ?,"
            " claimed_until = NULL WHERE id = ?",
            (state, _move_note(channel, to, superseded), at, row_id),
        )
        moves.append(Move(row_id, monitor, event, channel, to, already, superseded))
    return moves


def _newer_alerts_out(db: sqlite3.Connection, monitor: str, origin: int, at: str) -> set[str]:
    """The channels where an alert of `monitor` later in line than `origin` is
    sent, failed or being sent: one moved there now would come after it.

    A later alert still waiting is fine: the moved one takes its place ahead.
    """
    return {
        c
        for (c,) in db.execute(
            "SELECT DISTINCT channel FROM outbox WHERE monitor = ? AND coalesce(origin, id) > ?"
            " AND (state IN ('sent', 'failed') OR (state = 'pending' AND claimed_until > ?))",
            (monitor, origin, at),
        )
    }


def _move_note(channel: str, to: tuple[str, ...], superseded: tuple[str, ...]) -> str:
    note = f"channel {channel} is no longer configured"
    if to or not superseded:
        note += f"; moved to {', '.join(to) if to else 'none (all had it)'}"
    if superseded:
        note += f"; not moved: {', '.join(superseded)} already had a newer alert"
    return note


def shift_pending(db: sqlite3.Connection, step: timedelta, columns: tuple[str, ...]) -> int:
    """Move `columns` of every pending row by `step`; return how many rows."""
    names = ", ".join(columns)
    # A group's window (state 'grouping') is a due time too.
    rows = db.execute(
        f"SELECT id, {names} FROM outbox WHERE state IN ('pending', 'grouping')"
    ).fetchall()
    assign = ", ".join(f"{c} = ?" for c in columns)
    db.executemany(
        f"UPDATE outbox SET {assign} WHERE id = ?",
        [(*(_shifted(t, step) for t in row[1:]), row[0]) for row in rows],
    )
    return len(rows)


def prune_finished(db: sqlite3.Connection, before: datetime, batch: int) -> int:
    """Delete up to `batch` finished (not pending) rows finished before `before`."""
    return db.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE finished_at < ?"
        " AND state != 'pending' ORDER BY finished_at LIMIT ?)",
        (format_stored(before), batch),
    ).rowcount


# --- reads ------------------------------------------------------------------


async def next_due(reader: Reader) -> datetime | None:
    """When the earliest head of line can next be claimed, or None."""
    # A claimed row is not claimable before its lease ends; answering its
    # (past) next_attempt_at would make the worker wake up for nothing.
    rows = await reader.fetch(
        "SELECT min(CASE WHEN claimed_until > next_attempt_at THEN claimed_until"
        f" ELSE next_attempt_at END) FROM outbox WHERE id IN ({HEADS_OF_LINE})"
        # A group's window closes: its row is made then (flush_groups).
        " UNION ALL SELECT min(next_attempt_at) FROM outbox WHERE state = 'grouping'"
    )
    times = [parse_stored(row[0]) for row in rows if row[0] is not None]
    return min(times, default=None)


async def oldest_pending(reader: Reader) -> datetime | None:
    """When the longest-waiting pending alert was queued, or None."""
    rows = await reader.fetch("SELECT min(created_at) FROM outbox WHERE state = 'pending'")
    return parse_stored(rows[0][0]) if rows and rows[0][0] is not None else None


async def counts(reader: Reader) -> dict[str, int]:
    found = {"pending": 0, "sent": 0, "failed": 0}
    for state, n in await reader.fetch("SELECT state, count(*) FROM outbox GROUP BY state"):
        found[state] = n
    return found


async def count_pending(reader: Reader) -> int:
    # Only the pending rows: the (state, next_attempt_at) index finds them
    # without reading the finished ones, which retention keeps for weeks.
    rows = await reader.fetch("SELECT count(*) FROM outbox WHERE state = 'pending'")
    return int(rows[0][0])


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


def _shifted(text: str | None, step: timedelta) -> str | None:
    return None if text is None else format_stored(parse_stored(text) + step)
