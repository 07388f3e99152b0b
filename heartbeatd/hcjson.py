"""heartbeatd's monitors, pings, flips and channels in the JSON shapes of
the Healthchecks management API (v1, v2, v3). Pure functions: the handlers
in web/hcapi.py read, these shape.

Where heartbeatd has no such thing (subjects and keywords of email pings,
`methods`, `manual_resume`), the field carries Healthchecks' value for
"not set", so clients that read it keep working.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from datetime import datetime, timezone
from typing import Any

from heartbeatd.config import Monitor
from heartbeatd.model import Status
from heartbeatd.views import MonitorView

# Healthchecks' names of our statuses; "started" is added in v1 (below).
_STATUS = {
    Status.NEW: "new",
    Status.UP: "up",
    Status.LATE: "grace",
    Status.DOWN: "down",
    Status.PAUSED: "paused",
}
# Namespaces of the ids we derive for monitors without a uuid and for channels.
_CHECK_IDS = uuidlib.UUID("5b0f1c84-6c2a-4d1e-9d62-3f5f0a3e6b11")
_CHANNEL_IDS = uuidlib.UUID("0c9d3f2a-9a7e-4b53-8f0e-2d6c1b4a7e55")


def check_code(monitor: Monitor) -> str:
    """The uuid the API addresses a monitor by: its own, or one derived from its
    slug (stable across restarts) for a file monitor that declares none."""
    return monitor.uuid or str(uuidlib.uuid5(_CHECK_IDS, monitor.slug))


def unique_key(code: str) -> str:
    """Healthchecks' read-only id: SHA-1 of the first half of the uuid's hex."""
    return hashlib.sha1(uuidlib.UUID(code).hex[:16].encode()).hexdigest()


def channel_id(name: str) -> str:
    return str(uuidlib.uuid5(_CHANNEL_IDS, name))


def hc_time(when: datetime | None) -> str | None:
    """Healthchecks' form of a time: ISO 8601, UTC, to the second, "+00:00"."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def hc_status(view: MonitorView, version: int) -> str:
    # v1 shows a run in progress as a status of its own; v2 and later as `started`.
    if version == 1 and view.started_at is not None and view.status is not Status.DOWN:
        return "started"
    return _STATUS[view.status]


def _next_ping(view: MonitorView) -> datetime | None:
    expected = view.expected_at if view.status in (Status.UP, Status.LATE) else None
    if view.started_at is not None and view.status is not Status.DOWN:
        return view.started_at if expected is None else min(expected, view.started_at)
    return expected


def check_to_dict(
    view: MonitorView,
    monitor: Monitor,
    *,
    api_url: str,
    badge_url: str,
    version: int,
    readonly: bool,
) -> dict[str, Any]:
    """A check object; `api_url` is this API's root ("https://hb/api/v3/")."""
    code = check_code(monitor)
    result: dict[str, Any] = {
        "name": view.name,
        "slug": view.slug,
        # Healthchecks keeps tags as one space-separated string.
        "tags": " ".join(monitor.tags),
        "desc": view.description,
        "grace": view.grace,
        "n_pings": view.n_pings,
        "status": hc_status(view, version),
        "started": view.started_at is not None,
        "last_ping": hc_time(view.last_ping),
        "next_ping": hc_time(_next_ping(view)),
        "manual_resume": False,
        "methods": "",
        "subject": "",
        "subject_fail": "",
        "start_kw": "",
        "success_kw": "",
        "failure_kw": "",
        "filter_subject": False,
        "filter_body": False,
        "badge_url": badge_url,
        # heartbeatd's own: where the monitor is declared ("file" or "api").
        "source": monitor.source,
    }
    if view.last_duration is not None:
        result["last_duration"] = int(view.last_duration)
    if readonly:
        result["unique_key"] = unique_key(code)
    else:
        result["uuid"] = code
        result["ping_url"] = view.ping_url
        result["update_url"] = f"{api_url}checks/{code}"
        result["pause_url"] = f"{api_url}checks/{code}/pause"
        result["resume_url"] = f"{api_url}checks/{code}/resume"
        result["channels"] = ",".join(sorted(channel_id(name) for name in monitor.channels))
    schedule = monitor.schedule
    if schedule.period is not None:
        result["timeout"] = schedule.period
    else:
        # Healthchecks keeps several OnCalendar expressions one a line; a
        # list of cron expressions is shown the same way.
        result["schedule"] = "\n".join(schedule.oncalendar or schedule.crons)
        result["tz"] = schedule.timezone
    _add_ping_filter(result, monitor)
    return result


def _add_ping_filter(result: dict[str, Any], monitor: Monitor) -> None:
    """The keyword and method rules, in Healthchecks' fields."""
    rules = monitor.ping_filter
    if rules is None:
        return
    if rules.post_only:
        result["methods"] = "POST"
    if rules.has_keywords:
        result["filter_body"] = True
        result["start_kw"] = ",".join(rules.start)
        result["success_kw"] = ",".join(rules.success)
        result["failure_kw"] = ",".join(rules.failure)


def ping_to_dict(row: dict[str, Any], *, body_url: str) -> dict[str, Any]:
    """A row of Store.pings as Healthchecks lists a ping; `n` is the ping's id."""
    kind = row["kind"]
    # Healthchecks' name of an ignored ping.
    kind = "ign" if kind == "ignored" else kind
    result: dict[str, Any] = {
        "type": kind,
        "date": hc_time(_parse(row["at"])),
        "n": row["id"],
        "scheme": "http",
        "remote_addr": row["remote_addr"] or "",
        "method": row["method"] or "",
        "ua": row["user_agent"] or "",
        "rid": row["rid"],
    }
    if row["exit_status"] is not None:
        result["exitstatus"] = row["exit_status"]
    if row["duration"] is not None:
        result["duration"] = row["duration"]
    if row["body"]:
        result["body_url"] = body_url
    return result


def flip_to_dict(at: datetime, new_status: str) -> dict[str, Any]:
    return {"timestamp": hc_time(at), "up": 1 if new_status == Status.UP.value else 0}


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
