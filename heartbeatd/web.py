"""HTTP surfaces: thin aiohttp handlers over the engine.

The ping grammar follows Healthchecks (DESIGN §2) so existing clients work.
A ping is answered 200 only after it is committed to SQLite; a database that
cannot be written answers 503, which `curl --retry` retries.

The status page, /metrics and badges are rendered by pure functions in
pages.py and metrics.py; the handlers here only gather their inputs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import ipaddress
import itertools
import json
import logging
import platform
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from heartbeatd import __version__, auth, metrics, pages, pingurl
from heartbeatd.clock import Clock
from heartbeatd.engine import Engine
from heartbeatd.model import Ping
from heartbeatd.outbox import Outbox
from heartbeatd.store import StoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENGINE = web.AppKey("engine", Engine)
CLOCK = web.AppKey("clock", Clock)
# Returns None when healthy, else what is wrong.
HEALTH = web.AppKey("health", Callable[[], Awaitable["str | None"]])
# Both optional: metrics leave out what they do not have.
OUTBOX = web.AppKey("outbox", Outbox)
RELOADS = web.AppKey("reloads", metrics.ReloadStats)
# scrypt takes ~0.1 s and 32 MiB; a burst of wrong logins must not take all
# the memory or every executor thread.
LOGINS = web.AppKey("logins", asyncio.Semaphore)
MAX_CONCURRENT_LOGINS = 2

USER_AGENT_LIMIT = 200
CHUNK = 64 * 1024
# Seconds a ping's body may take to arrive once its headers are in. A client
# that stops half-way would otherwise hold its handler (and, for as long as it
# likes, its connection) open; it gets 408 and the ping does not count.
BODY_TIMEOUT = 10.0
BODY_TIMEOUT_KEY = web.AppKey("body_timeout", float)


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
            rid=request.query.get("rid"),
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


async def handle_ping(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    headers = _ping_headers(engine)
    try:
        slug, target = _resolve(engine, request)
        body, truncated = await _read_body_in_time(
            request,
            engine.config.storage.max_body,
            request.app[CLOCK],
            request.app[BODY_TIMEOUT_KEY],
        )
        # Again: a reload during a slow body may have removed the monitor.
        slug, _ = _resolve(engine, request)
    except PingError as exc:
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


async def handle_healthz(request: web.Request) -> web.Response:
    problem = await request.app[HEALTH]()
    if problem is None:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "failing", "problem": problem}, status=503)


# -- API ---------------------------------------------------------------------------


def _token_ok(request: web.Request) -> bool:
    token = request.app[ENGINE].config.server.api_token
    if token is None:
        return False
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.reveal().encode())


def _unauthorized() -> web.Response:
    return web.json_response(
        {"error": "a valid bearer token is required"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="heartbeatd"'},
    )


# Guards wrap the handlers that need a login, route by route, rather than a
# middleware: pings (the hot path), /healthz and badges are never behind auth
# and pay nothing for it.


def guard_page(handler: Handler) -> Handler:
    """The status page and /metrics: a bearer token or a basic-auth login,
    when a token or [web] users are configured."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not await _login_ok(request):
            return web.Response(
                status=401,
                text="401: log in as a [web.users] user, or with the API token\n",
                headers={"WWW-Authenticate": 'Basic realm="heartbeatd"'},
            )
        return await handler(request)

    return guarded


def guard_read(handler: Handler) -> Handler:
    """API reads are protected like the status page (open when neither a
    token nor users are configured): users guarding the page guard this too."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not await _login_ok(request):
            return _unauthorized()
        return await handler(request)

    return guarded


def guard_write(handler: Handler) -> Handler:
    """API writes need the API token, and are off without one."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.app[ENGINE].config.server.api_token is None:
            return web.json_response(
                {"error": "the write API is off: set [server] api_token_file"}, status=403
            )
        if not _token_ok(request):
            return _unauthorized()
        return await handler(request)

    return guarded


async def _login_ok(request: web.Request) -> bool:
    config = request.app[ENGINE].config
    users, token = config.web.users, config.server.api_token
    if not users and token is None:
        # Nothing to log in with: open, as DESIGN §6 says.
        return True
    if _token_ok(request):
        return True
    login = _basic_login(request.headers.get(hdrs.AUTHORIZATION, ""))
    if login is None:
        return False
    user, password = login
    if users:
        async with request.app[LOGINS]:
            # In a thread: scrypt would stall every ping for ~0.1 s.
            ok = await asyncio.to_thread(auth.check_user, users, user, password)
        if not ok:
            log.warning("login failed user=%r remote=%s", user[:64], request.remote)
        return ok
    # Only a token: any user name, the token as the password (for tools that
    # speak basic auth only).
    assert token is not None
    return hmac.compare_digest(password.encode(), token.reveal().encode())


def _basic_login(header: str) -> tuple[str, str] | None:
    """(user, password) from "Basic base64(user:password)", or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


def _slug(request: web.Request) -> str:
    slug = request.match_info["slug"]
    if request.app[ENGINE].monitor(slug) is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": "no such monitor"}), content_type="application/json"
        )
    return slug


def _storage_unavailable() -> web.Response:
    # As a ping answers: 503, which clients and `curl --retry` try again.
    return web.json_response({"error": "storage unavailable"}, status=503)


async def api_monitors(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    monitors = [engine.view(slug).to_json() for slug in engine.config.monitors]
    return web.json_response({"monitors": monitors})


async def api_monitor(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE].view(_slug(request)).to_json())


MAX_LIMIT = 1000


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", "100")
    if not (text.isdigit() and text.isascii()):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "limit must be a number"}), content_type="application/json"
        )
    # Past four digits it is over the maximum anyway: no int() of 5,000 digits.
    return MAX_LIMIT if len(text) > 4 else max(1, min(MAX_LIMIT, int(text)))


async def api_pings(request: web.Request) -> web.Response:
    slug = _slug(request)
    try:
        pings = await request.app[ENGINE].store.pings(slug, limit=_limit(request))
    except StoreError as exc:
        log.error("pings not read monitor=%s error=%s", slug, exc)
        return _storage_unavailable()
    return web.json_response({"pings": pings})


async def api_flips(request: web.Request) -> web.Response:
    slug = _slug(request)
    try:
        flips = await request.app[ENGINE].store.flips(slug, limit=_limit(request))
    except StoreError as exc:
        log.error("flips not read monitor=%s error=%s", slug, exc)
        return _storage_unavailable()
    return web.json_response({"flips": flips})


async def api_pause(request: web.Request) -> web.Response:
    return await _change(request, "paused", lambda engine, slug: engine.pause(slug))


async def api_resume(request: web.Request) -> web.Response:
    now = request.app[CLOCK].now()
    return await _change(request, "resumed", lambda engine, slug: engine.resume(slug, now))


async def _change(
    request: web.Request, done: str, change: Callable[[Engine, str], Awaitable[None]]
) -> web.Response:
    """Apply a write to one monitor and answer the monitor as it is then."""
    engine = request.app[ENGINE]
    slug = _slug(request)
    try:
        await change(engine, slug)
    except StoreError:
        # The engine has logged it and rolled the change back in memory.
        return _storage_unavailable()
    log.info("%s monitor=%s", done, slug)
    # Waiting for the writer took a while: a reload may have removed it meanwhile.
    return web.json_response(engine.view(_slug(request)).to_json())


# -- status page, metrics, badges ---------------------------------------------------

PAGE_PINGS = 50
PAGE_FLIPS = 50
# The pages need no script, frame or outside resource; say so to the browser.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none';"
        " form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


async def page_index(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    monitors = [engine.view(slug) for slug in engine.config.monitors]
    return _html(pages.render_index(monitors, request.app[CLOCK].now()))


async def page_monitor(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    slug = request.match_info["slug"]
    if engine.monitor(slug) is None:
        return web.Response(status=404, text="404: no such monitor\n")
    # Taken before the reads: a reload during them may remove the monitor.
    view = engine.view(slug)
    try:
        pings = await engine.store.pings(slug, limit=PAGE_PINGS)
        flips = await engine.store.flips(slug, limit=PAGE_FLIPS)
    except StoreError as exc:
        log.error("status page not rendered monitor=%s error=%s", slug, exc)
        return web.Response(status=503, text="503: storage unavailable\n")
    return _html(pages.render_monitor(view, pings, flips, request.app[CLOCK].now()))


async def handle_metrics(request: web.Request) -> web.Response:
    snapshot = await _metrics_snapshot(request.app)
    return web.Response(
        body=metrics.render_metrics(snapshot).encode("utf-8"),
        headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"},
    )


async def _metrics_snapshot(app: web.Application) -> metrics.Snapshot:
    engine = app[ENGINE]
    outbox, reloads = app.get(OUTBOX), app.get(RELOADS)
    try:
        pending: int | None = (await engine.store.outbox_counts())["pending"]
    except StoreError as exc:
        # The other series are still worth having; this one is left out.
        log.error("metrics without outbox figures error=%s", exc)
        pending = None
    return metrics.Snapshot(
        monitors=[engine.view(slug) for slug in engine.config.monitors],
        pings_by_kind=dict(engine.pings_by_kind),
        alerts_sent=dict(outbox.stats.sent) if outbox else {},
        alerts_failed=dict(outbox.stats.failed) if outbox else {},
        channels=tuple(engine.config.channels),
        outbox_pending=pending,
        reloads_ok=reloads.ok if reloads else 0,
        reloads_failed=reloads.failed if reloads else 0,
        last_reload_at=reloads.last_at if reloads else None,
        last_reload_ok=reloads.last_ok if reloads else True,
        version=__version__,
        python=platform.python_version(),
    )


def _badge_target(engine: Engine, tail: str) -> tuple[str, str] | None:
    """(slug, "svg" | "json") for the path after /badge/, or None for a 404."""
    key = engine.config.server.badge_key
    parts = tail.split("/")
    if key is not None:
        # /badge/<badge_key>/<slug>.svg; compared in constant time.
        if len(parts) != 2 or not hmac.compare_digest(parts[0].encode(), key.reveal().encode()):
            return None
        name = parts[1]
    elif len(parts) == 1:
        name = parts[0]
    else:
        return None
    slug, dot, ext = name.rpartition(".")
    if not dot or ext not in ("svg", "json") or engine.monitor(slug) is None:
        return None
    return slug, ext


async def handle_badge(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    target = _badge_target(engine, request.match_info["tail"])
    if target is None:
        return web.Response(status=404, text="not found")
    slug, ext = target
    label, status = engine.config.monitors[slug].name, engine.state(slug).status.value
    # Embedded in READMEs and dashboards: let caches ask again every time.
    headers = {"Cache-Control": "no-cache, max-age=0", "Access-Control-Allow-Origin": "*"}
    if ext == "json":
        return web.json_response(pages.badge_json(label, status), headers=headers)
    return web.Response(
        text=pages.render_badge_svg(label, status),
        content_type="image/svg+xml",
        headers=headers,
    )


def make_app(
    engine: Engine,
    clock: Clock,
    *,
    health: Callable[[], Awaitable[str | None]],
    outbox: Outbox | None = None,
    reloads: metrics.ReloadStats | None = None,
    body_timeout: float = BODY_TIMEOUT,
) -> web.Application:
    """The application; tests build it directly with a FakeClock.

    `outbox` and `reloads` feed /metrics (alert and reload counters);
    `body_timeout` bounds the wait for a ping's body (seconds of `clock`)."""
    app = web.Application()
    app[ENGINE] = engine
    app[CLOCK] = clock
    app[HEALTH] = health
    app[LOGINS] = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)
    app[BODY_TIMEOUT_KEY] = body_timeout
    if outbox is not None:
        app[OUTBOX] = outbox
    if reloads is not None:
        app[RELOADS] = reloads
    for method in ("GET", "POST", "HEAD"):
        app.router.add_route(method, "/ping/{tail:.*}", handle_ping)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/api/v1/monitors", guard_read(api_monitors))
    app.router.add_get("/api/v1/monitors/{slug}", guard_read(api_monitor))
    app.router.add_get("/api/v1/monitors/{slug}/pings", guard_read(api_pings))
    app.router.add_get("/api/v1/monitors/{slug}/flips", guard_read(api_flips))
    app.router.add_post("/api/v1/monitors/{slug}/pause", guard_write(api_pause))
    app.router.add_post("/api/v1/monitors/{slug}/resume", guard_write(api_resume))
    app.router.add_get("/", guard_page(page_index))
    app.router.add_get("/monitors/{slug}", guard_page(page_monitor))
    app.router.add_get("/metrics", guard_page(handle_metrics))
    app.router.add_get("/badge/{tail:.+}", handle_badge)
    return app
