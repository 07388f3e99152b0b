"""The application: its state and its routes, and which of them need a login."""

from __future__ import annotations

import asyncio

from aiohttp import web

from heartbeatd import metrics
from heartbeatd.clock import Clock
from heartbeatd.engine import Engine
from heartbeatd.looplag import LoopLag
from heartbeatd.outbox import Outbox
from heartbeatd.provision import Provisioner
from heartbeatd.strays import StrayPings
from heartbeatd.web import ack, api, hcapi, maintenance, ping, snooze, surfaces
from heartbeatd.web.guards import MAX_CONCURRENT_LOGINS, guard_page, guard_read, guard_write
from heartbeatd.web.hccodes import CheckCodeIndex
from heartbeatd.web.keys import (
    BODY_TIMEOUT_KEY,
    CHECK_CODES,
    CLOCK,
    ENGINE,
    HEALTH,
    LOGINS,
    LOOP_LAG,
    OUTBOX,
    PROVISIONER,
    RELOADS,
    STRAYS,
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
    loop_lag: LoopLag | None = None,
    provisioner: Provisioner | None = None,
    strays: StrayPings | None = None,
) -> web.Application:
    """The application; tests build it directly with a FakeClock.

    `outbox` and `reloads` feed /metrics (alert and reload counters);
    `body_timeout` bounds the wait for a ping's body (seconds of `clock`);
    `provisioner` holds the monitors created at run time (none yet if not
    given), `strays` the pings to unknown monitors."""
    app = web.Application()
    app[ENGINE] = engine
    app[CLOCK] = clock
    app[HEALTH] = health
    app[LOGINS] = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)
    app[BODY_TIMEOUT_KEY] = body_timeout
    app[PROVISIONER] = provisioner or Provisioner(engine)
    app[STRAYS] = strays or StrayPings()
    app[CHECK_CODES] = CheckCodeIndex()
    if outbox is not None:
        app[OUTBOX] = outbox
    if reloads is not None:
        app[RELOADS] = reloads
    if loop_lag is not None:
        app[LOOP_LAG] = loop_lag
    for method in ("GET", "POST", "HEAD"):
        app.router.add_route(method, "/ping/{tail:.*}", ping.handle_ping)
    app.router.add_get("/healthz", surfaces.handle_healthz)
    app.router.add_get("/api/v1/monitors", guard_read(api.api_monitors))
    app.router.add_get("/api/v1/monitors/{slug}", guard_read(api.api_monitor))
    app.router.add_get("/api/v1/monitors/{slug}/pings", guard_read(api.api_pings))
    app.router.add_get("/api/v1/monitors/{slug}/flips", guard_read(api.api_flips))
    app.router.add_post("/api/v1/monitors/{slug}/pause", guard_write(api.api_pause))
    app.router.add_post("/api/v1/monitors/{slug}/resume", guard_write(api.api_resume))
    app.router.add_get("/api/v1/unknown-pings", guard_read(api.api_unknown_pings))
    app.router.add_post("/api/v1/monitors/{slug}/snooze", guard_write(snooze.api_snooze))
    app.router.add_post("/api/v1/monitors/{slug}/unsnooze", guard_write(snooze.api_unsnooze))
    app.router.add_post("/api/v1/monitors/{slug}/ack", guard_write(ack.api_ack))
    # No login: the incident's token in the link is the guard (web/ack.py).
    app.router.add_get("/ack/{token}", ack.page_ack)
    app.router.add_post("/ack/{token}", ack.post_ack)
    app.router.add_get("/api/v1/maintenance", guard_read(maintenance.api_maintenance))
    # The Healthchecks management API (/api/v1|v2|v3/checks/ ...), keyed by [api].
    hcapi.add_routes(app.router)
    # After every API route: the rest of /api answers JSON errors too.
    app.router.add_route("*", "/api/{tail:.*}", api.api_unknown)
    app.router.add_get("/", guard_page(surfaces.page_index))
    app.router.add_get("/monitors/{slug}", guard_page(surfaces.page_monitor))
    app.router.add_get("/metrics", guard_page(surfaces.handle_metrics))
    app.router.add_get("/badge/{tail:.+}", surfaces.handle_badge)
    return app
