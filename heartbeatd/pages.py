"""The status page: server-rendered HTML, and the status badges.

Every function here is pure: it takes monitor views (Engine.view), ping and
flip rows as the store publishes them, and `now`, and returns text.
Templates autoescape, so a monitor name or a job's output cannot inject markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from heartbeatd import humanize
from heartbeatd.model import MonitorView
from heartbeatd.times import isoformat, parse_isoformat

# Worst first: what needs attention is at the top of the page.
STATUS_ORDER = ("down", "late", "new", "up", "paused")
REFRESH_SECONDS = 30

# Colours of shields.io's named palette, so the SVG and the JSON badge agree.
BADGE_COLOURS = {
    "up": ("brightgreen", "#4c1"),
    "late": ("orange", "#fe7d37"),
    "down": ("red", "#e05d44"),
    "new": ("lightgrey", "#9f9f9f"),
    "paused": ("blue", "#007ec6"),
}

_env = Environment(
    loader=PackageLoader("heartbeatd", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# -- words for times (the wording itself is humanize's) ---------------------------


def run_time(seconds: float | None) -> str:
    """How long a run took: "0.4 s", "1 min 23 s"; an en dash before the first run."""
    return "\u2013" if seconds is None else humanize.duration(seconds)


def ago(when: datetime | None, now: datetime) -> str:
    """ "3 min ago" for a past time, "in 5 min" for a future one, "never" for None."""
    if when is None:
        return "never"
    return humanize.ago((now - when).total_seconds())


def why(monitor: MonitorView) -> str:
    """Why a monitor is down, in words: "no ping came in time"."""
    reason = monitor.reason.value if monitor.reason else ""
    return humanize.reason(reason, monitor.last_exit_status)


def size(text: str) -> str:
    """The UTF-8 size of a ping body: "812 B", "9.8 KiB"."""
    n = len(text.encode("utf-8", errors="replace"))
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB"


_env.globals.update(
    ago=ago,
    span=humanize.span,
    run_time=run_time,
    size=size,
    why=why,
    reason=humanize.reason,
    iso=isoformat,
    parse=parse_isoformat,
)


# -- pages ------------------------------------------------------------------------


def sort_monitors(monitors: Sequence[MonitorView]) -> list[MonitorView]:
    """Down first, then late, new, up, paused; by name within a status."""

    def key(m: MonitorView) -> tuple[int, str, str]:
        status = m.status.value
        rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
        return rank, m.name.lower(), m.slug

    return sorted(monitors, key=key)


def count_by_status(monitors: Sequence[MonitorView]) -> list[tuple[str, int]]:
    """[("down", 2), ("up", 5)]: the statuses present, worst first."""
    counts = {s: 0 for s in STATUS_ORDER}
    for m in monitors:
        counts[m.status.value] = counts.get(m.status.value, 0) + 1
    return [(s, n) for s, n in counts.items() if n]


def render_index(monitors: Sequence[MonitorView], now: datetime) -> str:
    """The overview at `/`: one row per monitor, worst first."""
    return _env.get_template("index.html").render(
        monitors=sort_monitors(monitors),
        counts=count_by_status(monitors),
        now=now,
        refresh=REFRESH_SECONDS,
        root="",
    )


def render_monitor(
    monitor: MonitorView,
    pings: Sequence[Mapping[str, Any]],
    flips: Sequence[Mapping[str, Any]],
    now: datetime,
) -> str:
    """One monitor at `/monitors/<slug>`: its facts, flips and ping log (newest first)."""
    return _env.get_template("monitor.html").render(
        m=monitor,
        pings=pings,
        flips=flip_rows(flips, monitor.status.value, now),
        counts=count_by_status([monitor]),
        now=now,
        refresh=REFRESH_SECONDS,
        root="../",
    )


def flip_rows(
    flips: Sequence[Mapping[str, Any]], status: str, now: datetime
) -> list[dict[str, Any]]:
    """The flips, newest first, each with `downtime` in seconds: on a flip out
    of down, since the flip into it; on the flip into a downtime that still
    lasts, so far (and `ongoing`). Reminders (down to down) are neither."""
    rows = [{**flip, "downtime": None, "ongoing": False} for flip in flips]
    still_down = status == "down"
    for i, row in enumerate(rows):
        at = parse_isoformat(row["at"])
        if row["old"] == row["new"] or at is None:
            continue
        if row["old"] == "down":
            went_down = next(
                (f for f in rows[i + 1 :] if f["new"] == "down" and f["old"] != "down"), None
            )
            if went_down is not None:
                start = parse_isoformat(went_down["at"])
                row["downtime"] = (at - start).total_seconds() if start else None
        elif row["new"] == "down" and still_down:
            row["downtime"] = (now - at).total_seconds()
            row["ongoing"] = True
        # Only the newest change can belong to the current downtime.
        still_down = False
    return rows


# -- badges -----------------------------------------------------------------------


def tag_status(statuses: Iterable[str]) -> str:
    """One status for a tag's badge: the worst of its monitors that are not
    paused (a new monitor counts as up, as Healthchecks counts it), or
    "paused" when every one of them is."""
    worst = None
    for status in statuses:
        if status == "paused":
            continue
        rank = _TAG_RANK.get(status, 0)
        if worst is None or rank > _TAG_RANK[worst]:
            worst = "up" if status == "new" else status
    return worst or "paused"


_TAG_RANK = {"up": 0, "new": 0, "late": 1, "down": 2}


def badge_json(label: str, status: str) -> dict[str, Any]:
    """The shields.io endpoint format (https://shields.io/badges/endpoint-badge)."""
    colour = BADGE_COLOURS.get(status, ("lightgrey", ""))[0]
    return {"schemaVersion": 1, "label": label, "message": status, "color": colour}


def _text_width(text: str) -> int:
    # Roughly Verdana 11px; textLength below stretches the glyphs to fit exactly.
    narrow, wide = set("fijlrt .,:;|!'-()[]"), set("mwMW@%")
    width = sum(4 if c in narrow else 10 if c in wide else 7 for c in text)
    return math.ceil(width)


def render_badge_svg(label: str, status: str) -> str:
    """A flat badge: grey label on the left, the status on its colour on the right."""
    colour = BADGE_COLOURS.get(status, ("lightgrey", "#9f9f9f"))[1]
    lw, mw = _text_width(label) + 10, _text_width(status) + 10
    total = lw + mw
    label_x, message_x = lw / 2, lw + mw / 2
    e = html.escape
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20"'
        f' role="img" aria-label="{e(label)}: {e(status)}">'
        f"<title>{e(label)}: {e(status)}</title>"
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle"'
        ' font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3"'
        f' textLength="{lw - 10}">{e(label)}</text>'
        f'<text x="{label_x}" y="14" textLength="{lw - 10}">{e(label)}</text>'
        f'<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3"'
        f' textLength="{mw - 10}">{e(status)}</text>'
        f'<text x="{message_x}" y="14" textLength="{mw - 10}">{e(status)}</text>'
        "</g></svg>"
    )
