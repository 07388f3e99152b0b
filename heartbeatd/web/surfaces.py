"""What people and scrapers read: the status page, /metrics, badges, /healthz.

The page, the metrics text and the badges are rendered by pure functions in
pages.py and metrics.py; the handlers here only gather their inputs.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from heartbeatd import pages, pingurl, timeline
from heartbeatd.config import Config, Monitor
from heartbeatd.engine import Engine
from heartbeatd.model import Status
from heartbeatd.runs import duration_stats
from heartbeatd.store import StoreError
from heartbeatd.views import MonitorView
from heartbeatd.web.keys import CLOCK, ENGINE, HEALTH, STRAYS

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
PAGE_RUNS = 60
UPTIME_DAYS = (timedelta(days=30), timedelta(days=90))
# The most flips read for one monitor's strip on the overview, and for the
# monitor page's strip and uptime: a monitor that flaps all day (up to
# [storage] flip_history of them) must not make a page read and walk them
# all on the event loop. Past these, the oldest flip read tells what it was
# before, as after flip_history pruning.
STRIP_FLIPS = 100
HISTORY_FLIPS = 2000
# The pages need no script, frame or outside resource; say so to the browser.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
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
    try:
        query = pages.IndexQuery.parse(request.query)
    except ValueError as exc:
        return web.Response(status=400, text=f"400: {exc}\n")
    status = Status(query.status) if query.status else None
    # From the roster's index: a page costs the same at 10 or 100,000 monitors.
    found = engine.roster.page(
        status=status, tag=query.tag, q=query.q, offset=query.offset, limit=pages.PAGE_SIZE
    )
    now = request.app[CLOCK].now()
    views = [engine.view(slug) for slug in found.slugs]
    histories = await _histories(engine, views, now)
    # Two halves of about the same work, with pings let in between.
    await request.app[CLOCK].sleep(0)
    counts = engine.roster.counts(query.tag)
    listing = pages.Listing(
        rows=[(view, histories.get(view.slug, ())) for view in views],
        counts={s.value: n for s, n in counts.items()},
        total=found.total,
        query=query,
        tags=engine.roster.tags(),
    )
    return _html(pages.render_index(listing, now, request.app[STRAYS].recent()))


async def _histories(
    engine: Engine, views: list[MonitorView], now: datetime
) -> dict[str, list[timeline.Cell]]:
    """The history strip of each monitor on a page, from one query for all of them."""
    lengths = {}
    for view in views:
        monitor = engine.monitor(view.slug)
        if monitor is not None:
            lengths[view.slug] = timeline.cell_length(monitor.schedule, now)
    try:
        flips = await engine.store.flips_since(
            {slug: now - length * timeline.CELLS for slug, length in lengths.items()},
            limit=STRIP_FLIPS,
        )
    except StoreError as exc:
        # The rows are still worth having; their strips are left out.
        log.error("status page without history error=%s", exc)
        return {}
    return {
        slug: timeline.strip(_spans(engine, slug, flips[slug], now), now, length)
        for slug, length in lengths.items()
        if engine.monitor(slug) is not None and slug in engine.states
    }


def _spans(
    engine: Engine, slug: str, flips: list[dict[str, Any]], now: datetime
) -> list[timeline.Span]:
    state, monitor = engine.state(slug), engine.config.monitors[slug]
    return timeline.spans(
        flips,
        status=state.status.value,
        first_seen=state.first_seen,
        expected_at=state.expected_at,
        grace=monitor.grace,
        now=now,
    )


async def page_monitor(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    slug = request.match_info["slug"]
    monitor = engine.monitor(slug)
    if monitor is None:
        return web.Response(status=404, text="404: no such monitor\n")
    # Taken before the reads: a reload during them may remove the monitor.
    view, state = engine.view(slug), engine.state(slug)
    config = engine.config
    now = request.app[CLOCK].now()
    length = timeline.cell_length(monitor.schedule, now)
    since = now - max(UPTIME_DAYS[-1], length * timeline.CELLS)
    try:
        pings = await engine.store.pings(slug, limit=PAGE_PINGS)
        flips = await engine.store.flips(slug, limit=PAGE_FLIPS)
        runs = await engine.store.runs(slug, limit=PAGE_RUNS)
        durations = await engine.store.run_durations(slug)
        history = (await engine.store.flips_since({slug: since}, limit=HISTORY_FLIPS))[slug]
    except StoreError as exc:
        log.error("status page not rendered monitor=%s error=%s", slug, exc)
        return web.Response(status=503, text="503: storage unavailable\n")
    spans = timeline.spans(
        history,
        status=state.status.value,
        first_seen=state.first_seen,
        expected_at=state.expected_at,
        grace=monitor.grace,
        now=now,
    )
    detail = pages.Detail(
        cells=timeline.strip(spans, now, length),
        runs=runs,
        run_stats=duration_stats(durations),
        max_runtime=monitor.max_runtime,
        uptime_30d=timeline.uptime(spans, now, UPTIME_DAYS[0].days),
        uptime_90d=timeline.uptime(spans, now, UPTIME_DAYS[1].days),
        ping_urls=_ping_urls(config, monitor),
    )
    return _html(pages.render_monitor(view, pings, flips, now, detail))


def _ping_urls(config: Config, monitor: Monitor) -> list[tuple[str, str]]:
    """The monitor's ping URLs; the slug form shows PING_KEY for [server]
    ping_key, a secret the page's readers need not share."""
    base = config.server.base_url
    urls = []
    if monitor.uuid:
        urls.append(
            ("by uuid", pingurl.build(base, pingurl.PingTarget(pingurl.By.UUID, monitor.uuid)))
        )
    key = "PING_KEY" if config.server.ping_key is not None else None
    target = pingurl.PingTarget(pingurl.By.SLUG, monitor.slug, ping_key=key)
    what = "by slug (PING_KEY is [server] ping_key)" if key else "by slug"
    urls.append((what, pingurl.build(base, target)))
    return urls


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
