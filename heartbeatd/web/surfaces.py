"""What people and scrapers read: the status page, /metrics, badges, /healthz.

The page, the metrics text and the badges are rendered by pure functions in
pages.py and metrics.py; the handlers here only gather their inputs.
"""

from __future__ import annotations

import hmac
import logging
import platform

from aiohttp import web

from heartbeatd import __version__, metrics, pages
from heartbeatd.engine import Engine
from heartbeatd.store import StoreError
from heartbeatd.web.keys import CLOCK, ENGINE, HEALTH, OUTBOX, RELOADS

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


def _badge_target(engine: Engine, tail: str) -> tuple[str, str, str] | None:
    """("monitor" | "tag", name, "svg" | "json") for the path after /badge/, or None for a 404.

    /badge/<slug>.svg and /badge/tag/<tag>.svg, each behind /<badge_key> when
    one is set. A slug badge has one part less than a tag badge, so a
    monitor named "tag" keeps its badge.
    """
    key = engine.config.server.badge_key
    parts = tail.split("/")
    if key is not None:
        # Compared in constant time.
        if len(parts) < 2 or not hmac.compare_digest(parts[0].encode(), key.reveal().encode()):
            return None
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "tag":
        kind, name = "tag", parts[1]
    elif len(parts) == 1:
        kind, name = "monitor", parts[0]
    else:
        return None
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in ("svg", "json"):
        return None
    if kind == "monitor" and engine.monitor(stem) is None:
        return None
    if kind == "tag" and stem not in engine.config.tagged:
        return None
    return kind, stem, ext


async def handle_badge(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    target = _badge_target(engine, request.match_info["tail"])
    if target is None:
        return web.Response(status=404, text="not found")
    kind, name, ext = target
    if kind == "tag":
        slugs = engine.config.tagged[name]
        label, status = name, pages.tag_status(engine.state(s).status.value for s in slugs)
    else:
        label, status = engine.config.monitors[name].name, engine.state(name).status.value
    # Embedded in READMEs and dashboards: let caches ask again every time.
    headers = {"Cache-Control": "no-cache, max-age=0", "Access-Control-Allow-Origin": "*"}
    if ext == "json":
        return web.json_response(pages.badge_json(label, status), headers=headers)
    return web.Response(
        text=pages.render_badge_svg(label, status),
        content_type="image/svg+xml",
        headers=headers,
    )
