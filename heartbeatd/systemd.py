"""The sd_notify protocol, by hand: a few datagrams on a unix socket, no libsystemd.

systemd passes the service an address in `NOTIFY_SOCKET`; the service sends
newline-separated `KEY=VALUE` lines to it ("READY=1", "STATUS=…"). Outside
systemd the variable is absent and every call here does nothing, so the daemon
runs the same in a terminal, in tests and under a service manager.

See sd_notify(3) and systemd.service(5) (`Type=notify`, `WatchdogSec=`).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys

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
