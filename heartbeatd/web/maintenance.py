"""`GET /api/v1/maintenance`: the [maintenance.<name>] windows, whether each
is open now, and the monitors each selects."""

from __future__ import annotations

from aiohttp import web

from heartbeatd.times import isoformat
from heartbeatd.web.keys import CLOCK, ENGINE


async def api_maintenance(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    now = request.app[CLOCK].now()
    selected: dict[str, list[str]] = {name: [] for name in engine.config.maintenance}
    for slug, monitor in engine.config.monitors.items():
        for window in monitor.windows:
            selected[window.name].append(slug)
    answer = []
    for name, window in engine.config.maintenance.items():
        span = window.span_at(now)
        answer.append(
            {
                "name": name,
                "schedule": window.schedule.cron,
                "timezone": window.schedule.timezone,
                "duration": window.duration,
                "monitors": list(window.monitors),
                "tags": list(window.tags),
                "open": span is not None,
                "started_at": isoformat(span[0]) if span else None,
                "ends_at": isoformat(span[1]) if span else None,
                "next_start": isoformat(window.next_start(now)),
                "selected": selected[name],
            }
        )
    return web.json_response({"maintenance": answer})
