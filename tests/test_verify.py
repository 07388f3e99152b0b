"""`heartbeatd verify-db`: a read-only check of a real SQLite file.

Each database is made by heartbeatd's own schema code (so it is migrated the
way the daemon migrates it), filled with plain SQL, then checked through the
command as a sysadmin runs it after a restore.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from heartbeatd.cli import main
from heartbeatd.store import schema
from heartbeatd.store.verify import VerifyError, verify
from tests.harness import DaemonProcess
from tests.samples import BACKUP, config_text

PINGS = 500


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"HEARTBEATD_CONFIG": None})


def make_db(path: Path, *, pings: int = PINGS) -> Path:
    db = schema.connect(path, "full")
    try:
        db.execute("BEGIN")
        db.execute("INSERT INTO monitors VALUES ('backup', '{}', '2026-01-14T12:00:00+00:00')")
        db.execute("INSERT INTO monitors VALUES ('queue', '{}', '2026-01-14T12:00:00+00:00')")
        db.executemany(
            "INSERT INTO pings (monitor, at, kind, body) VALUES ('backup', ?, 'success', ?)",
            [(f"2026-01-14T11:{i // 60:02d}:{i % 60:02d}+00:00", "x" * 200) for i in range(pings)],
        )
        db.execute(
            "INSERT INTO flips (monitor, at, old, new, reason) "
            "VALUES ('queue', '2026-01-14T11:30:00+00:00', 'up', 'down', 'grace')"
        )
        for state in ("pending", "sent", "sent"):
            db.execute(
                "INSERT INTO outbox (flip_id, monitor, channel, event, payload, state,"
                " created_at, next_attempt_at) VALUES (1, 'queue', 'hook', 'down', '{}', ?,"
                " '2026-01-14T11:30:00+00:00', '2026-01-14T11:30:00+00:00')",
                (state,),
            )
        db.execute("COMMIT")
    finally:
        db.close()
    return path


def test_it_reports_a_good_database_and_exits_0(tmp_path: Path) -> None:
    path = make_db(tmp_path / "hb.db")

    result = run("verify-db", "--db", str(path))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"ok path={path} integrity_check=ok",
        f"schema={schema.VERSION} known={schema.VERSION}",
        f"monitors=2 pings={PINGS} flips=1 outbox=3",
        "outbox pending=1 sent=2",
        "newest_ping=2026-01-14T11:08:19+00:00",
        "newest_flip=2026-01-14T11:30:00+00:00",
    ]


def test_it_finds_the_database_through_the_config(tmp_path: Path) -> None:
    make_db(tmp_path / "hb.db")
    config = tmp_path / "heartbeatd.toml"
    config.write_text(config_text(db="hb.db"))

    result = run("verify-db", "-c", str(config), "--quick")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"ok path={tmp_path / 'hb.db'} quick_check=ok"


def test_it_fails_on_a_missing_file_in_one_line(tmp_path: Path) -> None:
    result = run("verify-db", "--db", str(tmp_path / "gone.db"))

    assert result.exit_code == 1
    assert result.output == f"FAILED {tmp_path / 'gone.db'}: no such database file\n"
    assert not (tmp_path / "gone.db").exists()


def corrupt(path: Path) -> None:
    """Overwrite pages in the middle of the file (the pings table's leaves)."""
    page = 4096
    with path.open("r+b") as f:
        size = f.seek(0, 2)
        assert size > 20 * page, "too small a file to corrupt its middle"
        for number in range(5, size // page - 5, 3):
            f.seek(number * page)
            f.write(bytes([0xA5]) * page)


@pytest.mark.parametrize("quick", [False, True], ids=["integrity_check", "quick_check"])
def test_it_fails_on_a_corrupted_file(tmp_path: Path, quick: bool) -> None:
    path = make_db(tmp_path / "hb.db", pings=2000)
    corrupt(path)

    result = run("verify-db", "--db", str(path), *(["--quick"] if quick else []))

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"FAILED {path}: ")
    assert "failed" in lines[0] or "malformed" in lines[0], lines[0]


def test_it_fails_on_a_schema_newer_than_it_knows(tmp_path: Path) -> None:
    path = make_db(tmp_path / "hb.db")
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {schema.VERSION + 1}")

    result = run("verify-db", "--db", str(path))

    assert result.exit_code == 1
    assert result.output == (
        f"FAILED {path}: schema version {schema.VERSION + 1} is newer than this heartbeatd "
        f"knows ({schema.VERSION}); upgrade heartbeatd\n"
    )


def test_it_fails_on_a_file_that_is_not_a_heartbeatd_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    path.write_bytes(b"not a database at all" * 300)

    with pytest.raises(VerifyError, match=r"other\.db: cannot (open|read) the database"):
        verify(path)


def test_it_never_migrates_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = wal")
    db.executescript(schema.MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    db.close()
    before = path.read_bytes()

    report = verify(path)

    assert (report.schema, report.known_schema) == (1, schema.VERSION)
    assert path.read_bytes() == before


def test_it_reads_beside_a_writer_holding_a_write_transaction(tmp_path: Path) -> None:
    path = make_db(tmp_path / "hb.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM pings")
    try:
        report = verify(path)
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    # The committed snapshot, not the writer's uncommitted delete.
    assert report.counts["pings"] == PINGS


def test_it_checks_the_live_database_of_a_running_daemon(daemon: DaemonProcess) -> None:
    daemon.write_config(BACKUP)
    daemon.start()
    assert daemon.ping("backup").status == 200

    result = run("verify-db", "-c", str(daemon.config_path))

    assert result.exit_code == 0, result.output
    assert "monitors=1 pings=1 " in result.output
    # It took neither the daemon's lock nor its writes: the daemon goes on.
    assert daemon.ping("backup").status == 200
    assert daemon.stored_pings("backup") == 2
    daemon.assert_running()


def test_it_reads_the_wal_a_killed_daemon_left_behind(daemon: DaemonProcess) -> None:
    daemon.write_config(BACKUP)
    daemon.start()
    for _ in range(3):
        assert daemon.ping("backup").status == 200
    daemon.kill()
    wal = daemon.db_path.with_name(daemon.db_path.name + "-wal")
    assert wal.stat().st_size > 0

    result = run("verify-db", "--db", str(daemon.db_path))

    # The acknowledged pings live in the WAL until a checkpoint: they count.
    assert result.exit_code == 0, result.output
    assert "monitors=1 pings=3 " in result.output
