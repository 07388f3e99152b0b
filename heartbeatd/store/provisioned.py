"""SQL of the api_monitors table (monitors created at run time), and the
reads the Healthchecks-compatible API needs beyond history's: one ping's
body, and flips within a time range."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from heartbeatd.store.schema import Reader
from heartbeatd.times import format_stored, parse_stored


@dataclass(frozen=True, slots=True)
class Definition:
    """An API-created monitor as stored: its slug, uuid and monitor table."""

    slug: str
    uuid: str
    data: dict[str, Any]


def save(db: sqlite3.Connection, definition: Definition, now: str) -> None:
    db.execute(
        "INSERT INTO api_monitors (slug, uuid, definition, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (slug) DO UPDATE SET"
        " definition = excluded.definition, updated_at = excluded.updated_at",
        (definition.slug, definition.uuid, json.dumps(definition.data, sort_keys=True), now, now),
    )


def delete(db: sqlite3.Connection, slug: str) -> bool:
    """Forget the monitor, its state and its pings; its flips stay with the
    alerts that may still be on their way."""
    found = db.execute("DELETE FROM api_monitors WHERE slug = ?", (slug,)).rowcount > 0
    if found:
        db.execute("DELETE FROM monitors WHERE slug = ?", (slug,))
        db.execute("DELETE FROM pings WHERE monitor = ?", (slug,))
    return found


async def load(reader: Reader) -> list[Definition]:
    rows = await reader.fetch("SELECT slug, uuid, definition FROM api_monitors ORDER BY slug")
    return [Definition(slug, uuid, json.loads(text)) for slug, uuid, text in rows]


async def ping_body(reader: Reader, slug: str, ping_id: int) -> str | None:
    rows = await reader.fetch(
        "SELECT body FROM pings WHERE monitor = ? AND id = ?", (slug, ping_id)
    )
    return rows[0][0] if rows else None


async def flips_between(
    reader: Reader, slug: str, start: datetime | None, end: datetime | None, limit: int
) -> list[tuple[datetime, str]]:
    """(time, new status) of the monitor's flips from `start` to `end`, oldest first."""
    rows = await reader.fetch(
        "SELECT at, new FROM flips WHERE monitor = ? AND at >= ? AND at <= ?"
        " ORDER BY id DESC LIMIT ?",
        (
            slug,
            format_stored(start) if start is not None else "",
            format_stored(end) if end is not None else "~",
            limit,
        ),
    )
    return [(parse_stored(at), new) for at, new in reversed(rows)]


def read_file(path: Path) -> list[Definition]:
    """The API monitors of a database file, read-only, without the daemon
    (`heartbeatd export` and `check`): none when there is no file or table."""
    if not path.exists():
        return []
    db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT slug, uuid, definition FROM api_monitors ORDER BY slug")
        return [Definition(slug, code, json.loads(text)) for slug, code, text in rows]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()
