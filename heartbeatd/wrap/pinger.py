"""The pings of a run: bounded retries within --ping-timeout, on the Clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from heartbeatd import __version__, pingurl
from heartbeatd.channels.base import describe_failure
from heartbeatd.clock import Clock
from heartbeatd.model import PingKind
from heartbeatd.wrap.options import ExecOptions

# Seconds before the first retry of a ping; doubles after each attempt (1, 2, 4, …).
FIRST_BACKOFF = 1.0


class Pinger:
    """Sends the pings of one run (one rid) with bounded retries."""

    def __init__(self, opts: ExecOptions, clock: Clock, warn: Callable[[str], None]) -> None:
        self._opts = opts
        self._clock = clock
        self._warn = warn
        self.rid = str(uuid.uuid4())
        parts = urlsplit(opts.url)
        self._host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self._shown_url = _hide_ping_key(opts.url)

    def new_run(self) -> None:
        """The next run (--every) is told apart from the last by its own rid."""
        self.rid = str(uuid.uuid4())

    async def send(
        self, kind: PingKind, exit_status: int | None = None, body: bytes | None = None
    ) -> Mapping[str, str] | None:
        """Send one ping; its response headers, or None (and a warning) if it failed."""
        url = pingurl.extend(self._opts.url, kind, exit_status, rid=self.rid)
        deadline = self._clock.monotonic() + self._opts.ping_timeout
        reason = f"timed out after {self._opts.ping_timeout:g}s"
        for attempt in range(self._opts.retries + 1):
            if attempt:
                backoff = FIRST_BACKOFF * 2 ** (attempt - 1)
                if self._clock.monotonic() + backoff >= deadline:
                    break
                await self._clock.sleep(backoff)
            left = min(self._opts.timeout, deadline - self._clock.monotonic())
            if left <= 0:
                break
            try:
                # Timed on the clock, not by aiohttp (which reads the loop's
                # time): the budget and the per-request limit are one clock.
                status, phrase, headers = await self._clock.wait_for(self._attempt(url, body), left)
            except asyncio.TimeoutError:
                reason = f"timed out after {min(self._opts.timeout, self._opts.ping_timeout):g}s"
                continue
            except aiohttp.ClientError as exc:
                reason = describe_failure(exc)
                continue
            if 200 <= status < 300:
                return headers
            if status == 404:
                # Reached, but it knows no such monitor: a wrong URL or slug.
                self._warn(f"unknown monitor {self._shown_url}")
                return None
            reason = f"HTTP {status} {phrase}".rstrip()
            if status < 500:
                # A 400 will not change by asking again.
                break
        self._warn(f"could not reach {self._host}: {reason}")
        return None

    async def _attempt(self, url: str, body: bytes | None) -> tuple[int, str, Mapping[str, str]]:
        # The clock bounds each attempt (see send); no second timer here.
        timeout = aiohttp.ClientTimeout(total=None)
        headers = {"User-Agent": f"heartbeatd-exec/{__version__}", **dict(self._opts.headers)}
        if body is not None:
            headers["Content-Type"] = "text/plain"
        # A fresh session per attempt: a job may run for hours, and a kept-alive
        # connection from the start ping would be stale by the time it ends.
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            method = "GET" if body is None else "POST"
            async with session.request(method, url, data=body) as resp:
                await resp.read()
                return resp.status, resp.reason or "", dict(resp.headers)


def _hide_ping_key(url: str) -> str:
    """The monitor's URL for a message: /ping/<key>/<slug> without the key."""
    parts = urlsplit(url)
    before, ping, rest = parts.path.partition("/ping/")
    segments = rest.split("/")
    if not ping or len(segments) < 2:
        return url
    path = before + ping + "/".join(["<ping_key>"] * (len(segments) - 1) + segments[-1:])
    return urlunsplit(parts._replace(path=path))


def body_limit(headers: Mapping[str, str] | None, default: int) -> int:
    raw = headers.get("Ping-Body-Limit") if headers is not None else None
    try:
        limit = int(raw) if raw is not None else -1
    except ValueError:
        return default
    return limit if limit >= 0 else default
