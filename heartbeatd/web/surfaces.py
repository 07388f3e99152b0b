"""What people and scrapers read: the status page, /metrics, badges, /healthz.

The page, the metrics text and the badges are rendered by pure functions in
pages.py and metrics.py; the handlers here only gather their inputs.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from heartbeatd import pages
from heartbeatd.engine import Engine
from heartbeatd.store import StoreError
from heartbeatd.web.keys import CLOCK, ENGINE, HEALTH

# Served from its own module (it streams); the routes name it here.
from heartbeatd.web.scrape import handle_metrics as handle_metrics

# One logger for the package: its lines keep the name "heartbeatd.web".
log = logging.getLogger(__package__)


async def handle_healthz(request: web.Request) -> web.Response:
    problem = await request.app[HEALTH]()
    if problem is None:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "failing", "problem": problem}, status=503)


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
