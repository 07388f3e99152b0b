"""Who may use the Healthchecks API: its keys ([api] keys_file), given as
`X-Api-Key` or as `api_key` in a JSON body, and its error answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from heartbeatd.apikeys import ApiKey, find_key
from heartbeatd.web.keys import ENGINE

log = logging.getLogger(__package__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.HTTPException:
    exc = web.HTTPException(text=json.dumps({"error": message}), content_type="application/json")
    exc.set_status(status)
    return exc


# -- authentication -----------------------------------------------------------


async def read_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        data = await request.json(loads=json.loads)
    except (ValueError, UnicodeDecodeError):
        raise error(400, "could not parse request body") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(400, "json validation error: value is not an object")
    return data


async def _key(request: web.Request, body: dict[str, Any]) -> ApiKey:
    keys = request.app[ENGINE].config.api.keys
    given = request.headers.get("X-Api-Key") or body.get("api_key")
    if not keys:
        raise error(401, "the Healthchecks API is off: set [api] keys_file")
    if not given or not isinstance(given, str):
        raise error(401, "missing api key")
    key = find_key(keys, given)
    if key is None:
        log.warning("wrong api key remote=%s", request.remote)
        raise error(401, "wrong api key")
    return key


def read_api(handler: Callable[[web.Request, ApiKey], Awaitable[web.StreamResponse]]) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        key = await _key(request, {})
        return await handler(request, key)

    return guarded


def write_api(
    handler: Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]],
) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        key = await _key(request, body)
        if not key.read_write:
            raise error(401, "wrong api key: this is a read-only key")
        return await handler(request, body)

    return guarded
