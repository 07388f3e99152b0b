"""The real daemon against hostile clients: thousands of idle or stalled
connections, and a body far over max_body.

A client that stalls is cheap for heartbeatd (a socket and, mid-body, one
waiting handler), and bounded: the body timeout (10 s) and aiohttp's
keep-alive timer (75 s from the connection's start) close it, and the open
files limit caps how many there are at once. These tests check that such
clients hold up nobody else, and that a huge body costs no memory.
"""

from __future__ import annotations

import http.client
import os
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.e2e.conftest import DaemonProcess, wait_for

MONITOR = '[monitors.backup]\nperiod = "1h"\ngrace = "1h"\n'
IDLE = 2000
# Of those, how many stop half-way through their headers, or their body.
HALF_HEADERS = 100
HALF_BODIES = 100
PINGS = 20
BATCH = 100
# A ping must stay this quick while the idle crowd is connected.
QUICK = 1.0
MAX_BODY = 10240
HUGE = 50 * 1024 * 1024
CHUNK = 64 * 1024


@contextmanager
def soft_fd_limit(limit: int) -> Iterator[None]:
    """The soft open-files limit set to `limit` (at most the hard one) for a while."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) "Max open files" of a process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files limit in /proc/<pid>/limits")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory figure (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def timed_ping(daemon: DaemonProcess) -> float:
    started = time.monotonic()
    answer = daemon.ping("backup")
    took = time.monotonic() - started
    assert answer.status == 200, answer
    return took


def test_thousands_of_idle_and_stalled_connections_leave_pings_quick(
    daemon: DaemonProcess,
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= IDLE + 200, f"this test needs a hard open files limit over {IDLE + 200}"
    daemon.write_config(MONITOR)
    # Started with the common soft limit of 1024: the daemon raises its own.
    with soft_fd_limit(1024):
        daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    soft, hard = open_files_limit(pid)
    assert soft == hard, "the daemon did not raise its soft open files limit"
    fds_before = open_fds(pid)

    def accepted(count: int) -> None:
        # An fd in the daemon each; a few fds of its own may come and go.
        wait_for(
            lambda: open_fds(pid) >= fds_before + count - 5,
            message=f"the daemon to accept {count} connections",
        )

    with soft_fd_limit(hard), ExitStack() as stack:
        for n in range(IDLE):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", daemon.port), 5))
            if n < HALF_HEADERS:
                sock.sendall(b"GET /ping/backup HTTP/1.1\r\nHost: hb\r\nUser-Ag")
            elif n < HALF_HEADERS + HALF_BODIES:
                sock.sendall(
                    b"POST /ping/backup/fail HTTP/1.1\r\nHost: hb\r\n"
                    b"Content-Length: 1000\r\n\r\nhalf a body"
                )
            if n % BATCH == BATCH - 1:
                # Within the listen backlog (128): a full one drops SYNs, which
                # the kernel retries only a second later.
                accepted(n + 1)
        accepted(IDLE)
        times = [timed_ping(daemon) for _ in range(PINGS)]
        assert max(times) < QUICK, f"slow pings among {IDLE} idle connections: {times}"
        daemon.assert_running()
    # The stalled /fail pings never counted.
    assert daemon.query("SELECT kind, count(*) FROM pings GROUP BY kind") == [("success", PINGS)]


def stream(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(CHUNK, total - sent)
        yield b"x" * piece
        sent += piece


def test_a_huge_body_is_cut_to_max_body_and_costs_no_memory(daemon: DaemonProcess) -> None:
    daemon.write_config(MONITOR, storage=f"max_body = {MAX_BODY}")
    daemon.start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    # Warm up the body-reading path, then take the baseline.
    assert daemon.ping("backup/log", data=b"warm-up" * 1000).status == 200
    rss_before, peak_before = memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM")

    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/ping/backup",
            body=stream(HUGE),
            headers={"Content-Length": str(HUGE), "Content-Type": "text/plain"},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"OK"
    finally:
        conn.close()

    # The body is 51,200 KiB; read in chunks, it leaves the peak about where it was.
    for field, before in (("VmRSS", rss_before), ("VmHWM", peak_before)):
        growth = memory_kib(pid, field) - before
        assert growth < 8 * 1024, f"{field} grew by {growth} KiB for a {HUGE // 1024} KiB body"
    body, truncated = daemon.query("SELECT body, truncated FROM pings ORDER BY id DESC LIMIT 1")[0]
    assert (len(body), truncated) == (MAX_BODY, 1)
    assert body == "x" * MAX_BODY
