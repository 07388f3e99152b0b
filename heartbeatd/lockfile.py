"""One daemon per database: an exclusive lock on `<db>.lock`.

Two daemons on one database would both run every deadline and both deliver
the outbox, so every alert would go out twice. SQLite does not stop that: its
locks only take turns between writers. The lock is an flock(2), so the kernel
drops it when the holder dies, however it dies: a crash leaves no stale lock.
The file holds the holder's PID as text, for the message the next one shows.

The lock is per path: `<db>.lock` next to the database, under the name the
config gives it. Another spelling of the directory (a symlink, `..`) finds
the same file; a symlink to the database under another name would not, so
point every config at the database by one name.

The state directory is writable by the daemon's user; a symlink planted as
the lock file is refused, not followed (the daemon may run as root).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DatabaseInUse(OSError):
    """Another process holds the lock; the message names its PID."""


class DatabaseLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> DatabaseLock:
        """Lock `database` for this process, or raise DatabaseInUse (or OSError)."""
        path = Path(f"{database}.lock")
        try:
            # As Store.open would (this comes first): create a missing directory.
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC: no program the daemon runs may inherit the lock and
            # keep it after the daemon died, which would block the restart.
            # O_NOFOLLOW: the file is truncated and written below.
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise OSError(f"{database}: cannot open the database: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DatabaseInUse(
                f"{database}: in use by another heartbeatd (pid {holder}, lock file {path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Drop the lock. The file stays: a next daemon may have it open
        already, and would lock a removed file while a third locks a new one."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    # Empty for a moment between the holder's flock() and its write.
    return text if text.isdigit() else "unknown"
