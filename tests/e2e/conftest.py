"""The daemon as a subprocess, and a real webhook receiver, for end-to-end tests.

Every test gets its own config, database and free port in `tmp_path`. Periods
are seconds long, so the tests wait for real deadlines; they wait by polling a
condition (`wait_for`), never by sleeping a fixed time. The daemon's stderr is
written to a file and printed at teardown, which pytest shows only when a test
failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

POLL = 0.05
START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, message: str | None = None) -> T:
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


def assert_never(predicate: Callable[[], Any], seconds: float, message: str) -> None:
    """Poll `predicate` for `seconds`; fail as soon as it is truthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not predicate(), message
        time.sleep(POLL)
    assert not predicate(), message


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(text: str) -> datetime:
    """A published time ("2026-01-01T02:03:04Z") as an aware datetime."""
    assert text.endswith("Z"), f"not a UTC ISO 8601 time: {text!r}"
    return datetime.fromisoformat(text[:-1] + "+00:00")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    """One request; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


# -- the webhook receiver ------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and the status it answered (0: none, the
    sender had gone)."""

    status: int
    json: Any


class WebhookSink:
    """An aiohttp server on its own thread and loop, recording what it receives.

    A thread of its own lets plain (sync) tests wait for it with `wait_for`.
    `answer(503, 503)` sets the statuses of the next requests (then 200 again);
    `hold()` makes requests hang until `release()` or `stop()`.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self._planned: list[int] = []
        self._lock = threading.Lock()
        self._holding = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, *statuses: int) -> None:
        with self._lock:
            self._planned.extend(statuses)

    def hold(self) -> None:
        self._holding = True
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.clear)

    def release(self) -> None:
        self._holding = False
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def delivered(self, event: str | None = None, monitor: str | None = None) -> list[Any]:
        """JSON bodies of the requests answered 2xx, optionally of one event/monitor."""
        with self._lock:
            bodies = [r.json for r in self.received if 200 <= r.status < 300]
        return [
            b
            for b in bodies
            if (event is None or b.get("event") == event)
            and (monitor is None or b.get("monitor") == monitor)
        ]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"raw": body.decode("utf-8", errors="replace")}
        if self._holding:
            assert self._release is not None
            await self._release.wait()
            if request.transport is None or request.transport.is_closing():
                # The sender gave up meanwhile: this one was never answered.
                with self._lock:
                    self.received.append(Received(0, payload))
                return web.Response(status=499)
        with self._lock:
            status = self._planned.pop(0) if self._planned else 200
            self.received.append(Received(status, payload))
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/hook", self._handle)
        self._release = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    def start(self) -> WebhookSink:
        started = threading.Event()
        errors: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=main, name="webhook-sink", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT) or errors:
            raise RuntimeError(f"the webhook receiver did not start: {errors}")
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._thread = None
        self._loop = None


# -- the daemon ----------------------------------------------------------------------


class DaemonProcess:
    """`python -m heartbeatd run -c FILE` on a temp config, db and port."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.config_path = directory / "heartbeatd.toml"
        self.db_path = directory / "heartbeatd.db"
        self.log_path = directory / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(
        self,
        monitors: str,
        *,
        hook: str | None = None,
        server: str = "",
        storage: str = "",
        defaults: str = "",
    ) -> str:
        """A whole config: [server], [storage], [defaults], a webhook channel, monitors."""
        channels = ""
        if hook is not None:
            channels = f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\n'
        return (
            f'[server]\nlisten = "127.0.0.1:{self.port}"\n{server}\n'
            f'[storage]\npath = "{self.db_path.name}"\nping_history = 100000\n{storage}\n'
            f"[defaults]\n{defaults}\n"
            f"{channels}\n{monitors}\n"
        )

    def write_config(self, monitors: str, **kwargs: Any) -> Path:
        # A new inode: the daemon may read the file while we write.
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(self.config(monitors, **kwargs))
        tmp.replace(self.config_path)
        return self.config_path

    def write_raw_config(self, text: str) -> Path:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config_path)
        return self.config_path

    # -- process ------------------------------------------------------------------

    def start(self, *, env: dict[str, str] | None = None, wait: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heartbeatd", "run", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.dir,
                env={**os.environ, **(env or {})},
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            self.assert_running()
            try:
                return http(self.base_url + "/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(ready, timeout, "the daemon to answer /healthz")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        assert code is None, f"the daemon exited with {code}:\n{self.log()}"

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, and the exit code (fails if it takes longer than `timeout`)."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 5.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon did not exit within {timeout:g}s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(START_TIMEOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        def logged() -> bool:
            return text in self.log()

        wait_for(logged, timeout, f"{text!r} in the daemon's log")
        return self.log()

    # -- HTTP -----------------------------------------------------------------------

    def ping(self, path: str, *, data: bytes | None = None, method: str | None = None) -> Answer:
        return http(
            f"{self.base_url}/ping/{path}",
            data=data,
            method=method or ("POST" if data is not None else "GET"),
        )

    def api(self, path: str, *, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = http(f"{self.base_url}/api/v1/{path}", headers=headers)
        assert answer.status == 200, (answer.status, answer.text)
        return answer.json()

    def monitors(self) -> dict[str, Any]:
        return {m["slug"]: m for m in self.api("monitors")["monitors"]}

    def monitor(self, slug: str, *, token: str | None = None) -> Any:
        return self.api(f"monitors/{slug}", token=token)

    # -- the database (read-only: the daemon may be running) ------------------------

    def query(self, sql: str, *params: Any) -> list[Any]:
        uri = self.db_path.absolute().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            return db.execute(sql, params).fetchall()

    def stored_pings(self, slug: str) -> int:
        return int(self.query("SELECT count(*) FROM pings WHERE monitor = ?", slug)[0][0])
