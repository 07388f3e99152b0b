"""What a create or update of the Healthchecks API asks for, read into the
keys of a [monitors.<slug>] table (provision.py reads those against
[defaults]), and the slug a new check gets."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from heartbeatd import hcjson
from heartbeatd.names import name_problem
from heartbeatd.web.hcauth import error
from heartbeatd.web.keys import ENGINE

# Healthchecks' bounds on timeout and grace, in seconds.
MIN_SECONDS, MAX_SECONDS = 60, 31536000
# Keys of a create or update body heartbeatd reads; others with a value other
# than Healthchecks' default are refused (below), not silently dropped.
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "manual_resume": False,
    "methods": "",
    "subject": "",
    "subject_fail": "",
    "start_kw": "",
    "success_kw": "",
    "failure_kw": "",
    "filter_subject": False,
    "filter_body": False,
}
# Characters of a slug made from a name, leaving room for "-<n>" (slugs: 64).
_SLUG_ROOM = 56


def find_matches(request: web.Request, body: dict[str, Any], unique: list[str]) -> list[str]:
    if not unique:
        return []
    engine = request.app[ENGINE]
    found = []
    for slug, monitor in engine.config.monitors.items():
        if "name" in unique and monitor.name != body.get("name", ""):
            continue
        if "tags" in unique and set(monitor.tags) != set(str(body.get("tags", "")).split()):
            continue
        if "timeout" in unique and monitor.schedule.period != body.get("timeout", 86400):
            continue
        if "grace" in unique and monitor.grace != body.get("grace", 3600):
            continue
        found.append(slug)
    return found[:1]


def new_slug(request: web.Request, body: dict[str, Any]) -> str:
    """The slug a new check gets: `slug` if given, else its name made a slug."""
    given = body.get("slug")
    if given is not None and (not isinstance(given, str) or name_problem(given)):
        raise error(400, "slug may use only a-z, 0-9, _ and -, and not look like a number")
    if given:
        if request.app[ENGINE].monitor(given) is not None:
            raise error(409, f"a monitor with slug {given} exists already")
        return str(given)
    name = str(body.get("name") or "")
    # Short enough for a "-<n>" suffix within the 64 characters of a slug.
    base = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:_SLUG_ROOM].strip("-")
    if not base:
        base = "check"
    elif name_problem(base):
        # "log", "2026", a uuid: a word in front makes any of them a slug.
        base = f"check-{base}"[:_SLUG_ROOM].strip("-")
    slug, n = base, 1
    engine = request.app[ENGINE]
    while engine.monitor(slug) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def read_fields(request: web.Request, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The monitor table's keys that a create or update body sets."""
    for key, default in _UNSUPPORTED_DEFAULTS.items():
        if key in body and body[key] != default:
            raise error(400, f"{key} is not supported by heartbeatd")
    fields: dict[str, Any] = {}
    if "tags" in body:
        # Empty: the monitor takes [defaults] tags, as every left-out key does.
        fields["tags"] = _text(body, "tags", 500).split() or None
    if "name" in body:
        # An empty name leaves the monitor named by its slug, as the file does.
        fields["name"] = _text(body, "name", 100) or None
    if "desc" in body:
        fields["description"] = _text(body, "desc", 10000) or None
    for key in ("timeout", "grace"):
        if key in body:
            value = body[key]
            if type(value) is not int:
                raise error(400, f"json validation error: {key} is not a number")
            if value < MIN_SECONDS:
                raise error(400, f"json validation error: {key} is too small")
            if value > MAX_SECONDS:
                raise error(400, f"json validation error: {key} is too large")
    if "grace" in body:
        fields["grace"] = body["grace"]
    if "schedule" in body:
        fields["schedule"] = _text(body, "schedule", 100)
        fields["timezone"] = _text(body, "tz", 36) if "tz" in body else "UTC"
    elif "timeout" in body:
        fields["period"] = body["timeout"]
    elif creating:
        # Healthchecks' default: a simple check, expected once a day.
        fields["period"] = 86400
    if "tz" in body and "schedule" not in body:
        fields["timezone"] = _text(body, "tz", 36)
    if "channels" in body:
        fields["channels"] = _channels(request, body["channels"])
    return fields


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise error(400, f"json validation error: {key} is not a string")
    if len(value) > limit:
        raise error(400, f"json validation error: {key} is too long")
    return value


def _channels(request: web.Request, value: Any) -> list[str]:
    """Healthchecks' channels field: "*" (all), "" (none), or names or ids."""
    if not isinstance(value, str):
        raise error(400, "json validation error: channels is not a string")
    declared = request.app[ENGINE].config.channels
    if value == "*":
        return sorted(declared)
    by_id = {hcjson.channel_id(name): name for name in declared}
    names = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        name = part if part in declared else by_id.get(part.lower())
        if name is None:
            raise error(400, f"invalid channel identifier: {part}")
        names.append(name)
    return names
