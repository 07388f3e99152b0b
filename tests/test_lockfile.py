"""One daemon per database: the lock on `<db>.lock`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from heartbeatd.lockfile import DatabaseInUse, DatabaseLock


@pytest.fixture
def database(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path / "state" / "hb.db"


def test_it_writes_its_pid_and_refuses_a_second_holder(database: Path):
    lock = DatabaseLock.acquire(database)
    try:
        assert Path(f"{database}.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(
            DatabaseInUse, match=rf"in use by another heartbeatd \(pid {os.getpid()},"
        ):
            DatabaseLock.acquire(database)
    finally:
        lock.release()
    DatabaseLock.acquire(database).release()


def test_it_does_not_follow_a_symlink_planted_as_the_lock_file(database: Path, tmp_path: Path):
    # Whoever can write the state directory must not make the daemon (often
    # root) truncate and write another file.
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    Path(f"{database}.lock").symlink_to(victim)
    message = rf"^{re.escape(str(database))}: cannot open the database: .*hb\.db\.lock"
    with pytest.raises(OSError, match=message):
        DatabaseLock.acquire(database).release()
    assert victim.read_text() == "precious\n"


def test_a_program_the_daemon_runs_does_not_inherit_the_lock(database: Path):
    lock = DatabaseLock.acquire(database)
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
        held = [fd for fd in fds if _points_to(fd, Path(f"{database}.lock"))]
        assert held and not any(os.get_inheritable(fd) for fd in held)
    finally:
        lock.release()


def _points_to(fd: int, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return False
