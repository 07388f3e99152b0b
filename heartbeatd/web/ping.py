"""The ping hot path: /ping/... (DESIGN §2), never behind a login.

The URL is read by pingurl.py; this module reads the body within a deadline,
finds the client's address, and answers 200 only once the ping is committed
to SQLite. A database that cannot be written answers 503, which
`curl --retry` retries.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
from typing import Any

from aiohttp import web

from heartbeatd import pingurl
from heartbeatd.clock import Clock
from heartbeatd.engine import Engine
from heartbeatd.model import Ping
from heartbeatd.names import name_problem
from heartbeatd.provision import ProvisionError
from heartbeatd.store import StoreError
from heartbeatd.strays import PATH_LIMIT, StrayPing
from heartbeatd.web import snooze
from heartbeatd.web.keys import BODY_TIMEOUT_KEY, CLOCK, ENGINE, PROVISIONER, STRAYS

# One logger for the package: its lines keep the name "heartbeatd.web".
log = logging.getLogger(__package__)

USER_AGENT_LIMIT = 200
CHUNK = 64 * 1024
# Seconds a ping's body may take to arrive once its headers are in. A client
# that stops half-way would otherwise hold its handler (and, for as long as it
# likes, its connection) open; it gets 408 and the ping does not count.
BODY_TIMEOUT = 10.0
# A substring test keeps the snooze verb off the path of every other ping.
SNOOZE_MARK = "/" + pingurl.SNOOZE + "/"


class PingError(Exception):
    """A ping answered with `status`; `close` when the connection cannot serve
    another request (its body stalled, or its framing or coding broke)."""

    def __init__(self, status: int, text: str, *, close: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.close = close


def _slug_for(engine: Engine, by: pingurl.By, monitor: str) -> str | None:
    """The slug of a monitor a ping URL names, if it is configured."""
    slug = engine.slug_for_uuid(monitor) if by is pingurl.By.UUID else monitor
    return slug if slug is not None and engine.monitor(slug) is not None else None


def _resolve(engine: Engine, request: web.Request) -> tuple[str, pingurl.PingTarget]:
    """(slug, target) of a ping request, or PingError(404 or 400)."""
    ping_key = engine.config.server.ping_key
    try:
        target = pingurl.parse(
            request.match_info["tail"],
            ping_key=None if ping_key is None else ping_key.reveal(),
            # Most pings have no query string: no query dict to parse then.
            rid=request.query.get("rid") if request.query_string else None,
            exists=lambda by, monitor: _slug_for(engine, by, monitor) is not None,
        )
    except pingurl.PingUrlError as exc:
        raise PingError(exc.status, exc.text) from None
    slug = _slug_for(engine, target.by, target.monitor)
    assert slug is not None, "parse asked whether it exists"
    return slug, target


def _remote_addr(request: web.Request, trusted: tuple[Any, ...]) -> str:
    peer = request.remote or ""
    forwarded = request.headers.get("X-Forwarded-For")
    if not forwarded or not trusted:
        return peer
    # Walk the chain from the right: the first address not ours is the client.
    chain = [peer, *reversed([a.strip() for a in forwarded.split(",") if a.strip()])]
    for hop, nxt in itertools.pairwise(chain):
        if not _is_trusted(hop, trusted):
            return hop
        peer = nxt
    return peer


def _is_trusted(addr: str, trusted: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


async def _read_body(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body; the rest is read and dropped."""
    if not request.body_exists:
        return b"", False
    kept = bytearray()
    truncated = False
    while True:
        try:
            chunk = await request.content.read(CHUNK)
        except web.RequestPayloadError:
            # E.g. "Content-Encoding: gzip" on bytes that are not gzip, or a
            # broken chunk: aiohttp's parser gives up on the connection.
            raise PingError(400, "request body cannot be decoded", close=True) from None
        except ConnectionError:
            # The client left half-way; nobody will read the answer.
            log.debug("ping body cut off: the client left remote=%s", request.remote)
            raise PingError(400, "request body incomplete", close=True) from None
        if not chunk:
            break
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            truncated = True
    return bytes(kept), truncated


async def _read_body_in_time(
    request: web.Request, limit: int, clock: Clock, timeout: float
) -> tuple[bytes, bool]:
    """_read_body, or PingError(408) when the body is not all in within `timeout`."""
    if not request.body_exists or request.content.is_eof():
        # No body, or all of it came with the headers (nearly every ping):
        # nothing to wait for, so no timer either.
        return await _read_body(request, limit)
    reading = asyncio.ensure_future(_read_body(request, limit))
    # The clock's sleep, so tests move time instead of waiting for it.
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait((reading, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        timed_out = not reading.done()
        if timed_out:
            reading.cancel()
            # Owned to the end: let the cancelled read unwind before answering.
            await asyncio.wait((reading,))
        if not reading.cancelled():
            # Collected even when this handler is itself cancelled (a runner
            # with handler_cancellation, whose client left): otherwise asyncio
            # logs the read's error as "never retrieved".
            reading.exception()
    if timed_out:
        raise PingError(408, "request body not received in time", close=True)
    return reading.result()


def _ping_headers(engine: Engine) -> dict[str, str]:
    return {
        "Ping-Body-Limit": str(engine.config.storage.max_body),
        "Access-Control-Allow-Origin": "*",
        "Cache-Control": "no-cache, no-store",
    }


async def _provision(request: web.Request) -> None:
    """Create the monitor a slug ping names, when it has ?create=1 and
    [server] auto_provision is on (Healthchecks' auto-provisioning, runitor's
    -create). It takes [defaults], and is expected daily, as in Healthchecks."""
    engine = request.app[ENGINE]
    ping_key = engine.config.server.ping_key
    try:
        target = pingurl.parse(
            request.match_info["tail"],
            ping_key=None if ping_key is None else ping_key.reveal(),
        )
    except pingurl.PingUrlError:
        return
    slug = target.monitor
    if target.by is not pingurl.By.SLUG or engine.monitor(slug) is not None:
        return
    if name_problem(slug) is not None:
        return
    provisioner = request.app[PROVISIONER]
    try:
        async with provisioner.lock:
            # Another ping may have made it while this one waited.
            if engine.monitor(slug) is not None:
                return
            await provisioner.save(slug, {"period": "1d"}, request.app[CLOCK].now())
    except ProvisionError as exc:
        log.error("auto-provisioning failed monitor=%s problem=%s", slug, exc)
    except StoreError as exc:
        log.error("auto-provisioned monitor not stored monitor=%s error=%s", slug, exc)
        raise PingError(503, "storage unavailable") from None
    else:
        log.info("auto-provisioned monitor=%s remote=%s", slug, request.remote)


def _stray(request: web.Request, engine: Engine) -> None:
    request.app[STRAYS].record(
        StrayPing(
            at=request.app[CLOCK].now(),
            method=request.method,
            path=request.path[:PATH_LIMIT],
            remote_addr=_remote_addr(request, engine.config.server.trusted_proxies),
            user_agent=request.headers.get("User-Agent", "")[:USER_AGENT_LIMIT],
        )
    )


async def handle_ping(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    headers = _ping_headers(engine)
    if SNOOZE_MARK in request.match_info["tail"]:
        snoozed = await snooze.ping_snooze(request, headers)
        if snoozed is not None:
            return snoozed
    try:
        if engine.config.server.auto_provision and request.query.get("create") == "1":
            await _provision(request)
        slug, target = _resolve(engine, request)
        # Nearly every ping's body (if any) came with its headers: reading it
        # does not wait, and nothing else runs meanwhile.
        waits = request.body_exists and not request.content.is_eof()
        body, truncated = await _read_body_in_time(
            request,
            engine.config.storage.max_body,
            request.app[CLOCK],
            request.app[BODY_TIMEOUT_KEY],
        )
        if waits:
            # Again: a reload during a slow body may have removed the monitor.
            slug, _ = _resolve(engine, request)
    except PingError as exc:
        if exc.status == 404:
            _stray(request, engine)
        response = web.Response(status=exc.status, text=exc.text, headers=headers)
        if exc.close:
            # A client that stalled or broke its body gets no keep-alive to do
            # it again on.
            response.force_close()
        return response
    ping = Ping(
        kind=target.kind,
        at=request.app[CLOCK].now(),
        exit_status=target.exit_status,
        rid=target.rid,
        method=request.method,
        remote_addr=_remote_addr(request, engine.config.server.trusted_proxies),
        user_agent=request.headers.get("User-Agent", "")[:USER_AGENT_LIMIT],
        body=body.decode("utf-8", errors="replace"),
        truncated=truncated,
    )
    try:
        await engine.handle_ping(slug, ping)
    except StoreError as exc:
        log.error("ping not stored monitor=%s error=%s", slug, exc)
        return web.Response(status=503, text="storage unavailable", headers=headers)
    return web.Response(text="OK", headers=headers)
