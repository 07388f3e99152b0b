"""Snoozes: `POST /api/v1/monitors/<slug>/snooze` and `…/unsnooze` (write
API), and the ping verb `/ping/<address>/snooze/<duration>` a deploy script
curls to mute its own monitor. The hold itself is in policy.py."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from aiohttp import web

from heartbeatd import pingurl
from heartbeatd.durations import DurationError, parse_duration
from heartbeatd.engine import Engine
from heartbeatd.store import StoreError
from heartbeatd.times import isoformat
from heartbeatd.web.keys import CLOCK, ENGINE

log = logging.getLogger(__package__)

# A reason is a note for humans, not a document.
MAX_REASON = 500


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _monitor_slug(request: web.Request) -> str | None:
    slug = request.match_info["slug"]
    return slug if request.app[ENGINE].monitor(slug) is not None else None


async def api_snooze(request: web.Request) -> web.Response:
    """Body `{"for": "2h", "reason": "…"}`; answers the monitor."""
    slug = _monitor_slug(request)
    if slug is None:
        return _error(404, "no such monitor")
    try:
        data: Any = await request.json()
    except ValueError:
        return _error(400, 'body must be JSON like {"for": "2h", "reason": "deploy"}')
    if not isinstance(data, dict) or "for" not in data:
        return _error(400, 'body must be JSON like {"for": "2h", "reason": "deploy"}')
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return _error(400, f"reason must be a string of at most {MAX_REASON} characters")
    try:
        seconds = parse_duration(data["for"])
    except DurationError as exc:
        return _error(400, f"for: {exc}")
    return await _apply(request, slug, seconds, reason)


async def api_unsnooze(request: web.Request) -> web.Response:
    slug = _monitor_slug(request)
    if slug is None:
        return _error(404, "no such monitor")
    engine = request.app[ENGINE]
    try:
        await engine.unsnooze(slug, request.app[CLOCK].now())
    except StoreError:
        return _error(503, "storage unavailable")
    log.info("unsnoozed monitor=%s", slug)
    return _answer(engine, slug)


async def _apply(request: web.Request, slug: str, seconds: int, reason: str) -> web.Response:
    engine = request.app[ENGINE]
    until = request.app[CLOCK].now() + timedelta(seconds=seconds)
    try:
        await engine.snooze(slug, until, reason)
    except StoreError:
        return _error(503, "storage unavailable")
    log.info("snoozed monitor=%s until=%s", slug, isoformat(until))
    return _answer(engine, slug)


def _answer(engine: Engine, slug: str) -> web.Response:
    if engine.monitor(slug) is None:
        # A reload removed it while the write waited for the database.
        return _error(404, "no such monitor")
    return web.json_response(engine.view(slug).to_json())


async def ping_snooze(request: web.Request, headers: dict[str, str]) -> web.Response | None:
    """The ping verb, or None when the path is an ordinary ping."""
    engine = request.app[ENGINE]
    ping_key = engine.config.server.ping_key

    def exists(by: pingurl.By, monitor: str) -> bool:
        return _slug_of(engine, by, monitor) is not None

    try:
        found = pingurl.parse_snooze(
            request.match_info["tail"],
            ping_key=None if ping_key is None else ping_key.reveal(),
            exists=exists,
        )
    except pingurl.PingUrlError as exc:
        return web.Response(status=exc.status, text=exc.text, headers=headers)
    if found is None:
        return None
    target, text = found
    slug = _slug_of(engine, target.by, target.monitor)
    assert slug is not None, "parse_snooze asked whether it exists"
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        return web.Response(status=400, text=str(exc), headers=headers)
    answer = await _apply(request, slug, seconds, "")
    if answer.status != 200:
        return web.Response(status=answer.status, text="storage unavailable", headers=headers)
    return web.Response(text="OK", headers=headers)


def _slug_of(engine: Engine, by: pingurl.By, monitor: str) -> str | None:
    slug = engine.slug_for_uuid(monitor) if by is pingurl.By.UUID else monitor
    return slug if slug is not None and engine.monitor(slug) is not None else None
