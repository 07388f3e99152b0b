"""The Healthchecks management API, v1 to v3, under /api/v1|v2|v3/ beside
heartbeatd's own /api/v1/monitors: checks, their pings and flips, pause and
resume, channels, badges and /api/v3/status/. Keys come from [api]
keys_file: `X-Api-Key`, or `api_key` in a JSON body; read-only keys see
checks by `unique_key` and without their uuid or URLs, as in Healthchecks.

Monitors created here are the API's (source "api", stored in SQLite, see
provision.py); the file's monitors can be read, paused and resumed, but
changing or deleting them answers 403: the file is theirs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from heartbeatd import hcjson
from heartbeatd.apikeys import ApiKey
from heartbeatd.model import Status
from heartbeatd.provision import ProvisionError
from heartbeatd.slices import Slices
from heartbeatd.store import StoreError
from heartbeatd.web.hcauth import error, read_api, write_api
from heartbeatd.web.hcfields import find_matches, new_slug, read_fields
from heartbeatd.web.keys import CHECK_CODES, CLOCK, ENGINE, HEALTH, PROVISIONER

log = logging.getLogger(__package__)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


# -- shaping --------------------------------------------------------------------


def _version(request: web.Request) -> int:
    return int(request.match_info["version"])


def _api_url(request: web.Request) -> str:
    base = request.app[ENGINE].config.server.base_url
    return f"{base}/api/v{_version(request)}/"


def _badge_url(request: web.Request, slug: str) -> str:
    config = request.app[ENGINE].config
    key = config.server.badge_key
    prefix = f"{key.reveal()}/" if key is not None else ""
    return f"{config.server.base_url}/badge/{prefix}{slug}.svg"


def _check(request: web.Request, slug: str, *, readonly: bool = False) -> dict[str, Any]:
    engine = request.app[ENGINE]
    return hcjson.check_to_dict(
        engine.view(slug),
        engine.config.monitors[slug],
        api_url=_api_url(request),
        badge_url=_badge_url(request, slug),
        version=_version(request),
        readonly=readonly,
    )


async def _find(request: web.Request, code: str, *, readonly: bool = False) -> str:
    """The slug of the check `code` names: a uuid, or a unique_key for reads."""
    engine = request.app[ENGINE]
    code = code.lower()
    if _UUID.fullmatch(code) is None and not (readonly and _SHA1.fullmatch(code)):
        raise error(404, "not found")
    slug = engine.slug_for_uuid(code)
    if slug is not None:
        return slug
    # A uuid derived from a slug, or a unique_key: from the running config's
    # index, made in a thread the first time one is asked for.
    codes = await request.app[CHECK_CODES].of(engine.config)
    slug = codes.by_uuid.get(code)
    if slug is None and readonly:
        slug = codes.by_unique_key.get(code)
    # A reload may have changed the config while the index was made: the
    # monitor must still be there, and still answer to this code.
    monitor = engine.monitor(slug) if slug is not None else None
    if monitor is None:
        raise error(404, "not found")
    own = hcjson.check_code(monitor)
    if code != own and not (readonly and code == hcjson.unique_key(own)):
        raise error(404, "not found")
    return monitor.slug


# -- reads ----------------------------------------------------------------------


async def list_checks(request: web.Request, key: ApiKey) -> web.StreamResponse:
    engine = request.app[ENGINE]
    tags = set(request.query.getall("tag", []))
    slug = request.query.get("slug")
    if slug is not None:
        slugs = [slug] if engine.monitor(slug) is not None else []
    elif tags:
        # The config's tag index: only the monitors of one tag are looked at.
        first = next(iter(tags))
        slugs = list(engine.config.tagged.get(first, ()))
    else:
        slugs = list(engine.config.monitors)
    # Healthchecks lists every check in one answer, and at 100,000 monitors
    # that is tens of megabytes: written a piece at a time, with the loop
    # free between pieces. Each piece shows its checks as they are then; a
    # monitor a reload removed meanwhile is left out.
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    slices = Slices(request.app[CLOCK])
    readonly = not key.read_write
    out = ['{"checks": [']
    separator = ""
    for start in range(0, len(slugs), CHECKS_PIECE):
        monitors = engine.config.monitors
        for s in slugs[start : start + CHECKS_PIECE]:
            monitor = monitors.get(s)
            if monitor is None or not tags <= set(monitor.tags):
                continue
            out.append(separator + json.dumps(_check(request, s, readonly=readonly)))
            separator = ", "
        await response.write("".join(out).encode("utf-8"))
        out = []
        await slices.turn()
    out.append("]}")
    await response.write("".join(out).encode("utf-8"))
    await response.write_eof()
    return response


# Checks per write of the streamed list: some 60 KB.
CHECKS_PIECE = 100


async def get_check(request: web.Request, key: ApiKey) -> web.Response:
    readonly = not key.read_write
    slug = await _find(request, request.match_info["code"], readonly=True)
    return web.json_response(_check(request, slug, readonly=readonly))


async def list_pings(request: web.Request, key: ApiKey) -> web.Response:
    if not key.read_write:
        raise error(401, "wrong api key: this is a read-only key")
    slug = await _find(request, request.match_info["code"])
    try:
        rows = await request.app[ENGINE].store.pings(slug, limit=1000)
    except StoreError as exc:
        log.error("pings not read monitor=%s error=%s", slug, exc)
        raise error(503, "storage unavailable") from None
    base = f"{_api_url(request)}checks/{request.match_info['code']}/pings/"
    pings = [hcjson.ping_to_dict(row, body_url=f"{base}{row['id']}/body") for row in rows]
    return web.json_response({"pings": pings})


async def ping_body(request: web.Request, key: ApiKey) -> web.Response:
    if not key.read_write:
        raise error(401, "wrong api key: this is a read-only key")
    slug = await _find(request, request.match_info["code"])
    number = request.match_info["n"]
    try:
        body = await request.app[ENGINE].store.ping_body(slug, int(number))
    except StoreError as exc:
        log.error("ping body not read monitor=%s error=%s", slug, exc)
        raise error(503, "storage unavailable") from None
    if not body:
        raise error(404, "not found")
    return web.Response(text=body)


def _timestamp(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not (text.isdigit() and text.isascii() and len(text) <= 12):
        raise error(400, f"{name} must be a non-negative integer")
    return datetime.fromtimestamp(int(text), timezone.utc)


async def list_flips(request: web.Request, key: ApiKey) -> web.Response:
    slug = await _find(request, request.match_info["code"], readonly=True)
    start, end = _timestamp(request, "start"), _timestamp(request, "end")
    seconds = request.query.get("seconds")
    if seconds is not None:
        if start is not None or end is not None:
            raise error(400, "seconds and start or end cannot be combined")
        if not (seconds.isdigit() and seconds.isascii() and len(seconds) <= 12):
            raise error(400, "seconds must be a non-negative integer")
        start = request.app[CLOCK].now() - timedelta(seconds=int(seconds))
    try:
        flips = await request.app[ENGINE].store.flips_between(slug, start, end)
    except StoreError as exc:
        log.error("flips not read monitor=%s error=%s", slug, exc)
        raise error(503, "storage unavailable") from None
    return web.json_response([hcjson.flip_to_dict(at, new) for at, new in flips])


async def list_channels(request: web.Request, key: ApiKey) -> web.Response:
    if not key.read_write:
        raise error(401, "wrong api key: this is a read-only key")
    channels = request.app[ENGINE].config.channels.values()
    return web.json_response(
        {
            "channels": [
                {"id": hcjson.channel_id(c.name), "name": c.name, "kind": c.type} for c in channels
            ]
        }
    )


async def list_badges(request: web.Request, key: ApiKey) -> web.Response:
    """A badge per tag, as Healthchecks lists them (heartbeatd has no "*"
    badge of every monitor; a monitor's own badge is its check's badge_url)."""
    badges = {}
    for tag in request.app[ENGINE].config.tagged:
        svg = _badge_url(request, f"tag/{tag}")
        json_url = svg[: -len(".svg")] + ".json"
        badges[tag] = {
            "svg": svg,
            "svg3": svg,
            "json": json_url,
            "json3": json_url,
            "shields": json_url,
            "shields3": json_url,
        }
    return web.json_response({"badges": badges})


async def status(request: web.Request) -> web.Response:
    problem = await request.app[HEALTH]()
    if problem is not None:
        return web.Response(status=503, text=problem)
    return web.Response(text="OK")


# -- writes ---------------------------------------------------------------------


async def pause(request: web.Request, body: dict[str, Any]) -> web.Response:
    engine = request.app[ENGINE]
    slug = await _find(request, request.match_info["code"])
    await _stored(engine.pause(slug), slug)
    log.info("paused monitor=%s via=hcapi", slug)
    return _answer(request, slug)


async def resume(request: web.Request, body: dict[str, Any]) -> web.Response:
    engine = request.app[ENGINE]
    slug = await _find(request, request.match_info["code"])
    if engine.state(slug).status is not Status.PAUSED:
        raise error(409, "check is not paused")
    await _stored(engine.resume(slug, request.app[CLOCK].now()), slug)
    log.info("resumed monitor=%s via=hcapi", slug)
    return _answer(request, slug)


def _answer(request: web.Request, slug: str) -> web.Response:
    # Waiting for the writer took a while: a reload or a delete may have
    # removed the monitor meanwhile.
    if request.app[ENGINE].monitor(slug) is None:
        raise error(404, "not found")
    return web.json_response(_check(request, slug))


async def _stored(future: Awaitable[None], slug: str) -> None:
    try:
        await future
    except StoreError:
        # The engine has logged it and rolled the change back in memory.
        raise error(503, "storage unavailable") from None


def _owned(request: web.Request, slug: str) -> None:
    monitor = request.app[ENGINE].config.monitors[slug]
    if monitor.source != "api":
        path = request.app[ENGINE].config.path
        raise error(
            403,
            f"monitors.{slug} is declared in {path}: change or remove it there,"
            " not through the API",
        )


async def create(request: web.Request, body: dict[str, Any]) -> web.Response:
    fields = read_fields(request, body, creating=True)
    unique = body.get("unique", [])
    if not isinstance(unique, list) or not all(
        u in ("name", "tags", "timeout", "grace") for u in unique
    ):
        raise error(400, "unique must be a list of: name, tags, timeout, grace")
    async with request.app[PROVISIONER].lock:
        return await _create(request, body, fields, unique)


async def _create(
    request: web.Request, body: dict[str, Any], fields: dict[str, Any], unique: list[str]
) -> web.Response:
    for slug in find_matches(request, body, unique):
        # An upsert that finds a monitor of the file would change the file's.
        _owned(request, slug)
        await _save(request, slug, fields, updating=True)
        return web.json_response(_check(request, slug))
    slug = new_slug(request, body)
    await _save(request, slug, fields, updating=False)
    return web.json_response(_check(request, slug), status=201)


async def update(request: web.Request, body: dict[str, Any]) -> web.Response:
    slug = await _find(request, request.match_info["code"])
    _owned(request, slug)
    fields = read_fields(request, body, creating=False)
    async with request.app[PROVISIONER].lock:
        if request.app[ENGINE].monitor(slug) is None:
            raise error(404, "not found")
        await _save(request, slug, fields, updating=True)
    return web.json_response(_check(request, slug))


async def delete(request: web.Request, body: dict[str, Any]) -> web.Response:
    slug = await _find(request, request.match_info["code"])
    _owned(request, slug)
    answer = _check(request, slug)
    provisioner = request.app[PROVISIONER]
    try:
        async with provisioner.lock:
            if slug not in provisioner.definitions:
                raise error(404, "not found")
            await provisioner.delete(slug, request.app[CLOCK].now())
    except StoreError as exc:
        log.error("api monitor not deleted monitor=%s error=%s", slug, exc)
        raise error(503, "storage unavailable") from None
    return web.json_response(answer)


async def _save(request: web.Request, slug: str, fields: dict[str, Any], *, updating: bool) -> None:
    provisioner = request.app[PROVISIONER]
    data: dict[str, Any] = {}
    before = provisioner.definitions.get(slug) if updating else None
    if before is not None:
        data = {k: v for k, v in before.data.items() if k != "uuid"}
        if "schedule" in fields or "period" in fields:
            for key in ("schedule", "period", "timezone"):
                data.pop(key, None)
    data.update(fields)
    data = {key: value for key, value in data.items() if value is not None}
    if "schedule" not in data:
        # A zone means nothing to a period (clients send "UTC" regardless).
        data.pop("timezone", None)
    try:
        await provisioner.save(slug, data, request.app[CLOCK].now())
    except ProvisionError as exc:
        raise error(400, "; ".join(exc.problems)) from None
    except StoreError as exc:
        log.error("api monitor not saved monitor=%s error=%s", slug, exc)
        raise error(503, "storage unavailable") from None


def add_routes(router: web.UrlDispatcher) -> None:
    """Every route of the Healthchecks API, for each of its versions."""
    root = "/api/v{version:[123]}/"
    check = root + "checks/{code}"
    router.add_get(root + "checks/", read_api(list_checks))
    router.add_post(root + "checks/", write_api(create))
    router.add_get(check, read_api(get_check))
    router.add_post(check, write_api(update))
    router.add_delete(check, write_api(delete))
    router.add_post(check + "/pause", write_api(pause))
    router.add_post(check + "/resume", write_api(resume))
    router.add_get(check + "/pings/", read_api(list_pings))
    router.add_get(check + "/pings/{n:[0-9]{1,18}}/body", read_api(ping_body))
    router.add_get(check + "/flips/", read_api(list_flips))
    router.add_get(root + "channels/", read_api(list_channels))
    router.add_get(root + "badges/", read_api(list_badges))
    router.add_get(root + "status/", status)
