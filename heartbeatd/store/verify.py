"""Read-only checks of a database file, for `heartbeatd verify-db`.

Meant for a file restored from a replica, or the live one while the daemon
runs: the connection is opened with `mode=ro`, so it never migrates, never
writes and never takes the daemon's lock; WAL lets it read beside the writer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from heartbeatd.store.schema import BUSY_TIMEOUT_MS, VERSION

# The tables `counts` reports, in the order printed.
TABLES = ("monitors", "pings", "flips", "outbox")


class VerifyError(Exception):
    """The database failed a check; the message is the one-line reason."""


@dataclass(frozen=True, slots=True)
class Report:
    path: Path
    check: str
    schema: int
    known_schema: int
    counts: dict[str, int]
    outbox: dict[str, int] = field(default_factory=dict)
    newest_ping: str | None = None
    newest_flip: str | None = None

    def lines(self) -> list[str]:
        """The report as key=value lines, the first one the verdict."""
        outbox = " ".join(f"{state}={n}" for state, n in sorted(self.outbox.items()))
        return [
            f"ok path={self.path} {self.check}=ok",
            f"schema={self.schema} known={self.known_schema}",
            " ".join(f"{table}={self.counts[table]}" for table in TABLES),
            f"outbox {outbox or 'empty'}",
            f"newest_ping={self.newest_ping or 'none'}",
            f"newest_flip={self.newest_flip or 'none'}",
        ]


def verify(path: Path, *, quick: bool = False) -> Report:
    """Check the file at `path`; raise VerifyError with the reason when it fails."""
    # sqlite3 with mode=ro on a missing file says only "unable to open".
    if not path.is_file():
        raise VerifyError(f"{path}: no such database file")
    uri = path.absolute().as_uri() + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise VerifyError(f"{path}: cannot open the database: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return _inspect(db, path, quick)
    except sqlite3.Error as exc:
        # A page too damaged to parse fails the statement itself, not the check.
        raise VerifyError(f"{path}: cannot read the database: {exc}") from exc
    finally:
        db.close()


def _inspect(db: sqlite3.Connection, path: Path, quick: bool) -> Report:
    check = "quick_check" if quick else "integrity_check"
    # One read transaction: the counts and the check see the same snapshot.
    db.execute("BEGIN")
    try:
        rows = [str(row[0]) for row in db.execute(f"PRAGMA {check}")]
        # A row may hold several lines, headed by "*** in database main ***".
        problems = [p for row in rows for p in row.splitlines() if not p.startswith("***")]
        if problems != ["ok"]:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise VerifyError(f"{path}: {check} failed: {problems[0]}{more}")
        schema: int = db.execute("PRAGMA user_version").fetchone()[0]
        if schema > VERSION:
            raise VerifyError(
                f"{path}: schema version {schema} is newer than this heartbeatd knows "
                f"({VERSION}); upgrade heartbeatd"
            )
        if schema < 1:
            raise VerifyError(f"{path}: not a heartbeatd database (schema version 0)")
        counts = {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}
        outbox = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        # Ids grow with time; the newest row is the last one, found by the primary key.
        ping = db.execute("SELECT at FROM pings ORDER BY id DESC LIMIT 1").fetchone()
        flip = db.execute("SELECT at FROM flips ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.execute("ROLLBACK")
    return Report(
        path=path,
        check=check,
        schema=schema,
        known_schema=VERSION,
        counts=counts,
        outbox=outbox,
        newest_ping=ping[0] if ping else None,
        newest_flip=flip[0] if flip else None,
    )
