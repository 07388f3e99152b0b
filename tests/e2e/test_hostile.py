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
import signal
import socket
import sqlite3
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from heartbeatd.store import BUSY_TIMEOUT_MS
from tests.harness import DaemonProcess, assert_never, wait_for
from tests.harness import http as http_request

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


# -- junk that must cost a 4xx and no journal lines ------------------------------------

TOKEN = "e2e-t0ken"
TARGETS = (
    '[monitors.backup]\nperiod = "1h"\ngrace = "1h"\n'
    '[monitors.doomed]\nperiod = "1h"\ngrace = "1h"\n'
)
REPEAT = 200
# A request line with an exit status of 5,000 digits (int() refuses past 4,300).
HUGE_STATUS = b"1" * 5000


def exchange(port: int, request: bytes, *, leave: bool = False) -> bytes:
    """Send `request` on a new connection and read until the daemon closes it
    (b"" when `leave`: the client goes away without waiting)."""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(request)
        if leave:
            return b""
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def post(path: str, headers: bytes, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: hb\r\nConnection: close\r\n".encode()
        + headers
        + b"\r\n"
        + body
    )


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


# name: (request, expected status; 0 when the client leaves without an answer)
HOSTILE = {
    "exit-status-of-5000-digits": (
        b"GET /ping/backup/" + HUGE_STATUS + b" HTTP/1.1\r\nHost: hb\r\nConnection: close\r\n\r\n",
        400,
    ),
    "gzip-body-that-is-not-gzip": (
        post("/ping/backup/fail", b"Content-Encoding: gzip\r\nContent-Length: 9\r\n", b"not gzip!"),
        400,
    ),
    "deflate-body-that-is-not-deflate": (
        post(
            "/ping/backup/fail",
            b"Content-Encoding: deflate\r\nContent-Length: 11\r\n",
            b"not deflate",
        ),
        400,
    ),
    "truncated-deflate-stream": (
        post(
            "/ping/backup/fail",
            b"Content-Encoding: deflate\r\nContent-Length: 8\r\n",
            zlib.compress(b"job output " * 50)[:8],
        ),
        400,
    ),
    "brotli-without-a-decoder-or-junk": (
        post("/ping/backup/fail", b"Content-Encoding: br\r\nContent-Length: 4\r\n", b"junk"),
        400,
    ),
    "bad-chunk-size": (
        post("/ping/backup/fail", b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"),
        400,
    ),
    "bad-gzip-body-to-the-api": (
        post(
            "/api/v1/monitors/backup/pause",
            b"Content-Encoding: gzip\r\nContent-Length: 9\r\n",
            b"not gzip!",
        ),
        401,
    ),
    "bad-gzip-body-to-an-unknown-url": (
        post("/nowhere", b"Content-Encoding: gzip\r\nContent-Length: 9\r\n", b"not gzip!"),
        404,
    ),
    "api-limit-of-5000-digits": (
        b"GET /api/v1/monitors/backup/pings?limit="
        + HUGE_STATUS
        + b" HTTP/1.1\r\nHost: hb\r\nConnection: close\r\n"
        + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode(),
        200,
    ),
    "client-leaves-mid-body": (
        post("/ping/backup/fail", b"Content-Length: 100\r\n", b"half a body"),
        0,
    ),
}


def log_lines(daemon: DaemonProcess) -> list[str]:
    return daemon.log().splitlines()


def assert_quiet(daemon: DaemonProcess, before: int, what: str) -> None:
    """Fewer log lines than requests since line `before`, none an error."""
    new = log_lines(daemon)[before:]
    assert len(new) < REPEAT, f"{what}: {len(new)} log lines for {REPEAT} requests"
    assert not [line for line in new if "ERROR" in line or "Traceback" in line], (what, new[:20])


def test_junk_requests_repeated_get_4xx_and_leave_the_log_quiet(daemon: DaemonProcess) -> None:
    daemon.write_config(TARGETS, server=f'api_token = "{TOKEN}"')
    daemon.start()
    for name, (request, expected) in HOSTILE.items():
        before = len(log_lines(daemon))
        for _ in range(REPEAT):
            answer = exchange(daemon.port, request, leave=expected == 0)
            if expected:
                assert status_of(answer) == expected, (name, answer[:300])
        # Lines about a client that left come after it left: give them a moment.
        assert_never(
            lambda b=before: any("ERROR" in x for x in log_lines(daemon)[b:]),
            0.5,
            f"{name}: an error in the log",
        )
        assert_quiet(daemon, before, name)
        daemon.assert_running()
    assert daemon.ping("backup").status == 200
    assert daemon.query("SELECT kind, count(*) FROM pings GROUP BY kind") == [("success", 1)]


def test_pings_whose_monitor_a_reload_removes_mid_body_get_404(daemon: DaemonProcess) -> None:
    daemon.write_config(TARGETS)
    daemon.start()
    before = len(log_lines(daemon))
    with ExitStack() as stack:
        socks = [
            stack.enter_context(socket.create_connection(("127.0.0.1", daemon.port), 5))
            for _ in range(REPEAT)
        ]
        for sock in socks:
            sock.sendall(post("/ping/doomed/fail", b"Content-Length: 20\r\n", b"first half"))
        # Every one of them is in its handler, waiting for the rest of its body,
        # once the daemon has taken them all and answered a ping after them.
        assert daemon.ping("backup/log").status == 200
        daemon.write_config('[monitors.backup]\nperiod = "1h"\ngrace = "1h"\n')
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("config reloaded monitors=1 added=- removed=doomed")
        for sock in socks:
            sock.sendall(b"second one")
        answers = []
        for sock in socks:
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            answers.append(answer)
    assert {status_of(a) for a in answers} == {404}
    assert_quiet(daemon, before, "pings to a removed monitor")
    assert daemon.ping("backup").status == 200
    assert daemon.stored_pings("doomed") == 0


def test_pause_and_resume_answer_503_with_json_while_the_database_is_locked(
    daemon: DaemonProcess,
) -> None:
    """An outside BEGIN EXCLUSIVE held past the store's busy timeout (5 s)."""
    daemon.write_config(TARGETS, server=f'api_token = "{TOKEN}"')
    daemon.start()
    assert daemon.ping("backup").status == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    lock = sqlite3.connect(daemon.db_path, isolation_level=None, timeout=5)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            # Sent together, but the writer takes one after the other (5 s
            # each): the lock is held until both are answered.
            answers = list(
                pool.map(
                    lambda action: http_request(
                        f"{daemon.base_url}/api/v1/monitors/backup/{action}",
                        method="POST",
                        headers=auth,
                        timeout=30,
                    ),
                    ["pause", "resume"],
                )
            )
        held = time.monotonic() - started
    finally:
        lock.rollback()
        lock.close()
    for answer in answers:
        assert answer.status == 503, answer
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json() == {"error": "storage unavailable"}
    assert held >= BUSY_TIMEOUT_MS / 1000
    # Free again: the same requests work, and so do pings.
    answer = http_request(
        f"{daemon.base_url}/api/v1/monitors/backup/pause", method="POST", headers=auth
    )
    assert (answer.status, answer.json()["status"]) == (200, "paused")
    assert daemon.ping("backup").status == 200
    assert "Error handling request" not in daemon.log()
