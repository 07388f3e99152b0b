"""The JSON API under /api/v1 (DESIGN §6): monitors, their pings and flips,
pause and resume. Reads and writes are guarded in app.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from heartbeatd import runs
from heartbeatd.engine import Engine
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


async def api_monitors(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    monitors = [engine.view(slug).to_json() for slug in engine.config.monitors]
    return web.json_response({"monitors": monitors})


async def api_monitor(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    slug = _slug(request)
    view = engine.view(slug).to_json()
    try:
        # Median and p95 of the stored runs; the rest answers from memory.
        view["runs"] = runs.duration_stats(await engine.store.run_durations(slug))
    except StoreError as exc:
        log.error("run durations not read monitor=%s error=%s", slug, exc)
        view["runs"] = None
    return web.json_response(view)


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


async def api_unknown_pings(request: web.Request) -> web.Response:
    """Pings to no known monitor: how many since start, and the last few."""
    strays = request.app[STRAYS]
    return web.json_response(
        {"total": strays.total, "unknown_pings": [p.to_json() for p in strays.recent()]}
    )
