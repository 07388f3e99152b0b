"""The application: its state and its routes, and which of them need a login."""

from __future__ import annotations

import asyncio

from aiohttp import web

from heartbeatd import metrics
from heartbeatd.clock import Clock
from heartbeatd.engine import Engine
from heartbeatd.outbox import Outbox
from heartbeatd.web import ack, api, maintenance, ping, snooze, surfaces
from heartbeatd.web.guards import MAX_CONCURRENT_LOGINS, guard_page, guard_read, guard_write
from heartbeatd.web.keys import (
    BODY_TIMEOUT_KEY,
    CLOCK,
    ENGINE,
    HEALTH,
    LOGINS,
    OUTBOX,
    RELOADS,
    Health,
)


def make_app(
    engine: Engine,
    clock: Clock,
    *,
    health: Health,
    outbox: Outbox | None = None,
    reloads: metrics.ReloadStats | None = None,
    body_timeout: float = ping.BODY_TIMEOUT,
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
        app.router.add_route(method, "/ping/{tail:.*}", ping.handle_ping)
    app.router.add_get("/healthz", surfaces.handle_healthz)
    app.router.add_get("/api/v1/monitors", guard_read(api.api_monitors))
    app.router.add_get("/api/v1/monitors/{slug}", guard_read(api.api_monitor))
    app.router.add_get("/api/v1/monitors/{slug}/pings", guard_read(api.api_pings))
    app.router.add_get("/api/v1/monitors/{slug}/flips", guard_read(api.api_flips))
    app.router.add_post("/api/v1/monitors/{slug}/pause", guard_write(api.api_pause))
    app.router.add_post("/api/v1/monitors/{slug}/resume", guard_write(api.api_resume))
    app.router.add_post("/api/v1/monitors/{slug}/snooze", guard_write(snooze.api_snooze))
    app.router.add_post("/api/v1/monitors/{slug}/unsnooze", guard_write(snooze.api_unsnooze))
    app.router.add_post("/api/v1/monitors/{slug}/ack", guard_write(ack.api_ack))
    # No login: the incident's token in the link is the guard (web/ack.py).
    app.router.add_get("/ack/{token}", ack.page_ack)
    app.router.add_post("/ack/{token}", ack.post_ack)
    app.router.add_get("/api/v1/maintenance", guard_read(maintenance.api_maintenance))
    app.router.add_get("/", guard_page(surfaces.page_index))
    app.router.add_get("/monitors/{slug}", guard_page(surfaces.page_monitor))
    app.router.add_get("/metrics", guard_page(surfaces.handle_metrics))
    app.router.add_get("/badge/{tail:.+}", surfaces.handle_badge)
    return app
