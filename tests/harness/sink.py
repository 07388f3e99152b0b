"""A real webhook receiver: an aiohttp server on a thread of its own.

Its own thread and loop serve plain tests (which poll it with `wait_for`),
async tests (which await `next_request()`) and the daemon as a subprocess alike.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from heartbeatd.clock import Clock
from tests.harness.net import START_TIMEOUT, free_port

# What the sink answers: a status, and a text or JSON body.
Reply = tuple[int, Any]


@dataclass
class Received:
    """One request, and what the sink answered it."""

    method: str
    # Path and query, as the server saw them.
    path: str
    headers: dict[str, str]
    body: bytes
    # The sink's clock's monotonic time on arrival (with a clock).
    at: float | None = None
    # The status answered; None while held, 0 if the sender gave up first.
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def payload(self) -> Any:
        """The JSON body, or {"raw": text} for a body that is not JSON."""
        try:
            return self.json()
        except ValueError:
            return {"raw": self.body.decode("utf-8", errors="replace")}


class WebhookSink:
    """Records every request to any path of `url`, and answers it.

    `answer(503, (400, {...}))` sets the answers to the next requests; after
    them, `respond(request)` answers, or 200. `hold()` (every path) or
    `hold("/hook")` makes requests hang until `release()` or `stop()`.
    """

    def __init__(
        self,
        *,
        respond: Callable[[Received], Reply] | None = None,
        clock: Clock | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.requests: list[Received] = []
        self._respond = respond
        self._clock = clock
        self._answers: list[Reply] = []
        self._held: set[str] = set()
        self._hold_all = False
        self._taken = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        # Held requests wait on these until release().
        self._gates: list[asyncio.Future[None]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL; any path under it reaches the sink."""
        return f"http://127.0.0.1:{self.port}"

    # -- what it answers ----------------------------------------------------------

    def answer(self, *answers: int | Reply) -> None:
        with self._lock:
            for one in answers:
                self._answers.append(one if isinstance(one, tuple) else (one, ""))

    def hold(self, *paths: str) -> None:
        with self._lock:
            self._held.update(paths)
            self._hold_all = self._hold_all or not paths

    def release(self) -> None:
        with self._lock:
            self._held.clear()
            self._hold_all = False
            gates, self._gates = self._gates, []
        if self._loop is not None:
            for gate in gates:
                self._loop.call_soon_threadsafe(_wake, gate)

    # -- what it got --------------------------------------------------------------

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def count(self, path: str | None = None) -> int:
        return len(self.received(path))

    def delivered(self, event: str | None = None, monitor: str | None = None) -> list[Any]:
        """JSON bodies of the requests answered 2xx, optionally of one event/monitor."""
        bodies = [r.payload() for r in self.received() if r.status and 200 <= r.status < 300]
        return [
            b
            for b in bodies
            if (event is None or b.get("event") == event)
            and (monitor is None or b.get("monitor") == monitor)
        ]

    async def next_request(self, timeout: float = START_TIMEOUT) -> Received:
        """The next request not yet returned here, in order of arrival."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if self._taken < len(self.requests):
                    self._taken += 1
                    return self.requests[self._taken - 1]
                arrived = loop.create_future()
                self._waiters.append((loop, arrived))
            left = deadline - loop.time()
            done, _ = await asyncio.wait({arrived}, timeout=max(left, 0))
            if not done:
                arrived.cancel()
                raise AssertionError(f"no request reached the sink within {timeout:g}s")

    # -- the server ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        at = self._clock.monotonic() if self._clock is not None else None
        got = Received(request.method, request.path_qs, dict(request.headers), body, at)
        gate = None
        with self._lock:
            self.requests.append(got)
            waiters, self._waiters = self._waiters, []
            if self._hold_all or request.path in self._held:
                gate = asyncio.get_running_loop().create_future()
                self._gates.append(gate)
        for loop, arrived in waiters:
            loop.call_soon_threadsafe(_wake, arrived)
        if gate is not None:
            await gate
            if request.transport is None or request.transport.is_closing():
                # The sender gave up meanwhile: this one was never answered.
                got.status = 0
                return web.Response(status=499)
        with self._lock:
            if self._answers:
                status, reply = self._answers.pop(0)
            elif self._respond is not None:
                status, reply = self._respond(got)
            else:
                status, reply = 200, ""
            got.status = status
        if isinstance(reply, (dict, list)):
            return web.json_response(reply, status=status)
        return web.Response(status=status, text=reply)

    def start(self) -> WebhookSink:
        started = threading.Event()
        errors: list[BaseException] = []

        async def serve() -> web.AppRunner:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            # No access log: it would print the request path, a secret the sender's side.
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
            return runner

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                runner = loop.run_until_complete(serve())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=main, name="webhook-sink", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT) or errors:
            raise RuntimeError(f"the webhook sink did not start: {errors}")
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._thread = None
        self._loop = None


def _wake(arrived: asyncio.Future[None]) -> None:
    if not arrived.done():
        arrived.set_result(None)
