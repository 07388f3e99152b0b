"""What the daemon tells its service manager: sd_notify, and the outcome of
each reload for `heartbeatd reload` (ExecReload=).

sd_notify, by hand (a few datagrams on a unix socket, no libsystemd): systemd
passes the service an address in `NOTIFY_SOCKET`; the service sends
newline-separated `KEY=VALUE` lines to it ("READY=1", "STATUS=…"). Outside
systemd the variable is absent and every call here does nothing, so the daemon
runs the same in a terminal, in tests and under a service manager.

See sd_notify(3) and systemd.service(5) (`Type=notify`, `WatchdogSec=`).

The reload handshake: a signal carries no answer, so the daemon writes the
outcome of every reload (numbered) to a small file next to its database, and
`heartbeatd reload` sends SIGHUP and waits there for a reload numbered higher
than the one it saw before. A forced reload is asked for with a file that the
next reload takes away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Field names are upper-case by protocol; anything else is a programming error.
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class Notifier:
    """Sends state changes to the service manager; a no-op outside systemd.

    Sending never raises: a daemon must not stop because systemd went away or
    its queue is full. The first failure is logged at warning, repeats at
    debug, until a send succeeds again.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: bytes | None = None
        self._failing = False
        self._path = path
        if not path:
            return
        if path.startswith("@"):
            # A Linux abstract socket: the name lives in a namespace, not on disk.
            self._address = b"\0" + os.fsencode(path[1:])
        elif path.startswith("/"):
            self._address = os.fsencode(path)
        else:
            # e.g. "vsock:…" (systemd >= 254 in VMs): not something we speak.
            log.warning("event=notify_disabled reason=unsupported_address address=%r", path)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str | None = None, /, **fields: str) -> None:
        """Send `message` as given, or `fields` as KEY=VALUE lines, in order."""
        lines = [] if message is None else [message]
        for name, value in fields.items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"sd_notify field names are upper-case, got {name!r}")
            # One field per line: a newline in a value would start a bogus field.
            lines.append(f"{name}={_one_line(value)}")
        if not lines:
            raise ValueError("notify() needs a message or at least one field")
        self._send("\n".join(lines))

    def ready(self, status: str | None = None) -> None:
        """Start-up (or a reload) is complete; systemctl start/reload returns."""
        self.notify(**_with_status({"READY": "1"}, status))

    def reloading(self, monotonic_usec: int) -> None:
        """A reload has begun; send `ready()` when it is done.

        systemd >= 253 ignores RELOADING=1 without MONOTONIC_USEC, which must be
        CLOCK_MONOTONIC in microseconds. The caller takes it from its clock, so
        this module does not read the time.
        """
        self.notify(RELOADING="1", MONOTONIC_USEC=str(int(monotonic_usec)))

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has begun; `systemctl status` shows the unit as deactivating."""
        self.notify(**_with_status({"STOPPING": "1"}, status))

    def status(self, text: str) -> None:
        """A one-line state shown by `systemctl status`."""
        self.notify(STATUS=text)

    def watchdog(self) -> None:
        """Keep-alive; without one every WatchdogSec= systemd kills and restarts us."""
        self.notify(WATCHDOG="1")

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the event loop: a full queue is a failed send.
                sock.setblocking(False)
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            self._failing = True
            log.log(level, "event=notify_failed address=%s error=%r", self._path, str(exc))
        else:
            if self._failing:
                log.info("event=notify_recovered address=%s", self._path)
            self._failing = False


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings: half of WatchdogSec=, or None if unwatched.

    WATCHDOG_PID guards against a child process that inherited the environment
    believing the watchdog is its job.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        timeout = int(usec)
    except ValueError:
        log.warning("event=watchdog_ignored reason=bad_usec WATCHDOG_USEC=%r", usec)
        return None
    if timeout <= 0:
        return None
    # Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not fatal.
    return timeout / 2 / 1_000_000


def journal_logging() -> bool:
    """Whether stderr is connected to journald, which timestamps each line itself.

    systemd sets JOURNAL_STREAM to "<device>:<inode>" of the stream it gave us;
    comparing it with stderr tells a redirected stderr (`2>file`) from the real one.
    """
    expected = os.environ.get("JOURNAL_STREAM")
    if not expected or sys.stderr is None:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        # Replaced by an in-memory stream (tests, some embedders): not the journal.
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def _one_line(value: str) -> str:
    return " ".join(str(value).splitlines())


def _with_status(fields: dict[str, str], status: str | None) -> dict[str, str]:
    if status is not None:
        fields["STATUS"] = status
    return fields


# -- the reload handshake -----------------------------------------------------------

STARTED, RELOADING, APPLIED, REJECTED = "started", "reloading", "applied", "rejected"


@dataclass(frozen=True)
class ReloadStatus:
    """The daemon's last reload, as `heartbeatd reload` reads it."""

    pid: int
    # 0 at start-up, then one more for each reload begun.
    generation: int
    state: str
    # Whether this reload was asked to skip the [server] reload_max_removed rule.
    forced: bool = False
    at: str = ""
    monitors: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    # Why a reload was rejected: config errors, one line each, never a secret.
    errors: tuple[str, ...] = ()

    @property
    def is_done(self) -> bool:
        return self.state in (APPLIED, REJECTED)


def reload_status_path(database: Path) -> Path:
    return database.with_name(database.name + "-reload")


def force_request_path(database: Path) -> Path:
    return database.with_name(database.name + "-reload-force")


def write_reload_status(path: Path, status: ReloadStatus) -> None:
    """Replace the status file in one step: a reader sees the old or the new.

    Mode 0600: config errors name files and keys, for the daemon's user and root.
    The temporary file has a new random name, created exclusively (mkstemp):
    a name known in advance could be planted as a symlink to another file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(status), handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_reload_status(path: Path) -> ReloadStatus | None:
    """The status in `path`, or None when there is none (or it is not one)."""
    try:
        data = json.loads(path.read_bytes())
        errors = data.get("errors", [])
        status = ReloadStatus(
            pid=int(data["pid"]),
            generation=int(data["generation"]),
            state=str(data["state"]),
            forced=bool(data.get("forced", False)),
            at=str(data.get("at", "")),
            monitors=int(data.get("monitors", 0)),
            added=int(data.get("added", 0)),
            removed=int(data.get("removed", 0)),
            changed=int(data.get("changed", 0)),
            errors=tuple(str(line) for line in errors) if isinstance(errors, list) else (),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    # A pid that would signal a process group, or init, is no daemon's.
    return status if status.pid > 1 else None


def request_forced_reload(path: Path) -> None:
    """Ask the next reload to skip the reload_max_removed rule.

    Empty: the daemon only needs to remove it, which the directory allows
    even when root made it. Created exclusively, never through a symlink:
    root runs this in a directory the daemon's user can write. A regular
    file already there is a request not yet taken, and asks for the same.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        try:
            os.close(os.open(path, flags, 0o600))
            return
        except FileExistsError:
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                # Taken by a reload just now: ask again, for the next one.
                continue
            if stat.S_ISREG(mode):
                return
            raise OSError(f"{path}: not a regular file; remove it and try again") from None


def take_forced_reload(path: Path) -> bool:
    """Whether a forced reload was asked for; the request is used up."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("event=force_request_unreadable path=%s error=%r", path, str(exc))
        return False
    return True


def find_open_database(pid: int) -> Path | None:
    """The SQLite database process `pid` has open, or None.

    In WAL mode SQLite keeps "<database>-wal" open; /proc shows it to the
    same user and to root. This is how `heartbeatd reload --pid` finds the
    running daemon's status file whatever the (maybe broken) config says.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("-wal"):
            return Path(target[: -len("-wal")])
    return None
