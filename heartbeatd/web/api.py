"""The JSON API under /api/v1 (DESIGN §6): monitors, their pings and flips,
pause and resume. Reads and writes are guarded in app.py."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from heartbeatd.engine import Engine
from heartbeatd.model import Status
from heartbeatd.store import StoreError
from heartbeatd.web.keys import CLOCK, ENGINE, STRAYS

# One logger for the package: its lines keep the name "heartbeatd.web".
log = logging.getLogger(__package__)


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


MAX_LIMIT = 1000
# Monitors a list answers when not told: all of them on a small install.
DEFAULT_PAGE = 100
VIEWS_AT_ONCE = 100


async def api_monitors(request: web.Request) -> web.Response:
    """A page of monitors by slug, filtered; `next_cursor` asks for the next one."""
    engine = request.app[ENGINE]
    args = request.query
    found = engine.roster.after(
        _cursor(args.get("cursor")),
        status=_status(args.get("status")),
        tag=args.get("tag") or None,
        q=args.get("q", ""),
        limit=_page_limit(args.get("limit")),
    )
    monitors = []
    for start in range(0, len(found.slugs), VIEWS_AT_ONCE):
        if start:
            # Let pings in between: 1,000 monitor objects are tens of milliseconds.
            await request.app[CLOCK].sleep(0)
        for slug in found.slugs[start : start + VIEWS_AT_ONCE]:
            # A reload meanwhile may have removed it.
            if engine.monitor(slug) is not None and slug in engine.states:
                monitors.append(engine.view(slug).to_json())
    more = _cursor_after(found.slugs[-1]) if found.more else None
    return web.json_response({"monitors": monitors, "total": found.total, "next_cursor": more})


def _bad_request(error: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": error}), content_type="application/json")


def _status(text: str | None) -> Status | None:
    if not text:
        return None
    try:
        return Status(text)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise _bad_request(f"status must be one of {known}") from None


def _page_limit(text: str | None) -> int:
    """1 to 1000, 100 when not given; anything else is an error, not cut to fit:
    a client asking for more than a page must learn to follow the cursor."""
    if text is None:
        return DEFAULT_PAGE
    # No int() of a 5,000-digit number: past four digits it is too big anyway.
    digits = text.lstrip("0") if text.isascii() and text.isdigit() else "x"
    if len(digits) > 4 or not digits.isdigit() or not 1 <= int(digits) <= MAX_LIMIT:
        raise _bad_request(f"limit must be a number from 1 to {MAX_LIMIT}")
    return int(digits)


# A cursor is the slug the page ended at, so the next page starts after it
# whatever changed meanwhile (see the README). Opaque to clients: its form
# may change.
CURSOR_PREFIX = "after:"


def _cursor_after(slug: str) -> str:
    text = (CURSOR_PREFIX + slug).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def _cursor(text: str | None) -> str | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith(CURSOR_PREFIX) or len(text) > 400:
        raise _bad_request("cursor is not one this API gave out")
    return raw.removeprefix(CURSOR_PREFIX)


async def api_unknown(request: web.Request) -> web.Response:
    """Any other path under /api: a JSON error, as every API answer is."""
    allowed: set[str] = set()
    here = request.match_info.route.resource
    for resource in request.app.router.resources():
        if resource is here or not resource.canonical.startswith("/api/"):
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        return web.json_response(
            {"error": f"method {request.method} not allowed here"},
            status=405,
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    return web.json_response({"error": "no such API path"}, status=404)


async def api_monitor(request: web.Request) -> web.Response:
    return web.json_response(request.app[ENGINE].view(_slug(request)).to_json())


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


async def api_unknown_pings(request: web.Request) -> web.Response:
    """Pings to no known monitor: how many since start, and the last few."""
    strays = request.app[STRAYS]
    return web.json_response(
        {"total": strays.total, "unknown_pings": [p.to_json() for p in strays.recent()]}
    )
