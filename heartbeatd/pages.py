"""The status page: server-rendered HTML, and the status badges.

Every function here is pure: it takes monitor views (Engine.view), ping and
flip rows as the store publishes them, and `now`, and returns text.
Templates autoescape, so a monitor name or a job's output cannot inject markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from heartbeatd import humanize, roster
from heartbeatd.charts import chart_top, runs_svg, strip_svg
from heartbeatd.timeline import Cell
from heartbeatd.times import isoformat, parse_isoformat
from heartbeatd.views import MonitorView

# Worst first: what needs attention is at the top of the page.
STATUS_ORDER = tuple(status.value for status in roster.STATUS_ORDER)
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
    # The templates ship with the package: no stat() of each on every page.
    auto_reload=False,
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


def percent(share: float | None) -> str:
    """99.95 %: two decimals, never "100 %" for a share short of 1 (nor 0 % above 0)."""
    if share is None:
        return "\u2013"
    if 0.9999 < share < 1:
        return "99.99 %"
    if 0 < share < 0.0001:
        return "0.01 %"
    return f"{share * 100:.2f} %".replace(".00 %", " %")


_env.globals.update(
    ago=ago,
    span=humanize.span,
    run_time=run_time,
    size=size,
    why=why,
    reason=humanize.reason,
    iso=isoformat,
    parse=parse_isoformat,
    percent=percent,
    # 100,000 monitors, not 100000.
    number="{:,}".format,
)


# Compiled now, as the daemon starts, not by the first request for a page:
# compiling a template holds the event loop for tens of milliseconds. The
# ones the pages extend and import stay in the environment's cache.
_env.get_template("base.html")
_env.get_template("macros.html")
_INDEX = _env.get_template("index.html")
_MONITOR = _env.get_template("monitor.html")


# -- pages ------------------------------------------------------------------------

PAGE_SIZE = 100


@dataclass(frozen=True)
class IndexQuery:
    """What the overview shows: its filters and page, as in its URL
    (`/?status=down&tag=db&q=backup&page=2`)."""

    status: str | None = None
    tag: str | None = None
    q: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> IndexQuery:
        """From a URL's query; ValueError says what is wrong with it."""
        status = args.get("status") or None
        if status is not None and status not in STATUS_ORDER:
            raise ValueError(f"status must be one of {', '.join(STATUS_ORDER)}")
        text = args.get("page", "1") or "1"
        if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) < 1:
            raise ValueError("page must be a number from 1 on")
        q = " ".join(args.get("q", "").split())[:200]
        return cls(status, args.get("tag") or None, q, int(text))

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE

    def link(self, **changes: Any) -> str:
        """The relative URL of this view with `changes`; a new filter starts at page 1."""
        if changes.keys() - {"page"}:
            changes.setdefault("page", 1)
        view = replace(self, **changes)
        args = [("status", view.status), ("tag", view.tag), ("q", view.q)]
        pairs = [(key, value) for key, value in args if value]
        if view.page != 1:
            pairs.append(("page", str(view.page)))
        return "?" + urlencode(pairs) if pairs else "./"


@dataclass(frozen=True)
class Listing:
    """One page of the overview, gathered by the web layer."""

    # In page order, each with the cells of its history strip.
    rows: Sequence[tuple[MonitorView, Sequence[Cell]]]
    # Monitors by status (within the tag filter, if any), worst first.
    counts: Mapping[str, int]
    # How many monitors match the filters, on every page.
    total: int
    query: IndexQuery = IndexQuery()
    tags: Sequence[str] = ()

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def sort_monitors(monitors: Sequence[MonitorView]) -> list[MonitorView]:
    """Down first, then late, new, up, paused; by name within a status."""

    def key(m: MonitorView) -> tuple[int, str, str]:
        status = m.status.value
        rank = STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)
        return rank, m.name.casefold(), m.slug

    return sorted(monitors, key=key)


def count_by_status(monitors: Sequence[MonitorView]) -> dict[str, int]:
    """{"down": 2, "up": 5}: how many have each status, worst first."""
    counts = {s: 0 for s in STATUS_ORDER}
    for m in monitors:
        counts[m.status.value] = counts.get(m.status.value, 0) + 1
    return counts


def render_index(listing: Listing, now: datetime, strays: Sequence[Any] = ()) -> str:
    """The overview at `/`: the counts, the filters, and one page of monitors;
    then the last pings to no known monitor (strays.StrayPing), if any."""
    return _INDEX.render(
        rows=[monitor_row(m, strip_svg(cells) if cells else "", now) for m, cells in listing.rows],
        listing=listing,
        strays=strays,
        query=listing.query,
        counts=[(s, n) for s, n in listing.counts.items() if n],
        all_counts=listing.counts,
        now=now,
        refresh=REFRESH_SECONDS,
        root="",
    )


def when(value: datetime | None, now: datetime, missing: str = "never") -> str:
    """A time as "3 min ago" with the ISO time in a tooltip, or `missing` (trusted text)."""
    if not value:
        return f'<span class="muted">{missing}</span>'
    stamp = isoformat(value)
    return f'<time datetime="{stamp}" title="{stamp}">{ago(value, now)}</time>'


def _fact(label: str, value: str, cls: str = "") -> str:
    dd = f'<dd class="{cls}">' if cls else "<dd>"
    return f'<div class="fact"><dt>{label}</dt>{dd}{value}</dd></div>'


def monitor_row(m: MonitorView, strip: str, now: datetime) -> Markup:
    """One monitor on the overview: status, name, slug and schedule, its
    history strip (SVG markup), and when it pinged and is expected.

    Built as a string, not in the template: a page has 100 of them, and a
    template loop with macro calls per row cost most of the page's time.
    Every text from the config or a ping goes through escape()."""
    status = m.status.value
    what = [f'<span class="name">{escape(m.name)}</span>']
    if m.started_at:
        what.append(
            f' <span class="running" title="started {isoformat(m.started_at)}">'
            f"running {escape(humanize.span((now - m.started_at).total_seconds()))}</span>"
        )
    muted = [f'<span class="slug">{escape(m.slug)}</span>']
    if m.source == "api":
        muted.append(' · <span class="source">api</span>')
    muted.append(f" · {escape(m.schedule)}")
    if status == "down" and m.reason:
        muted.append(f' · <span class="why">{escape(why(m))}</span>')
    if m.held_by:
        muted.append(f' · <span class="held">alert held by {escape(m.held_by)}</span>')
    elif m.snoozed_until:
        muted.append(' · <span class="held">snoozed</span>')
    if m.acked_at:
        by = f" by {escape(m.acked_by)}" if m.acked_by else ""
        muted.append(f' · <span class="held">acknowledged{by}</span>')
    if m.maintenance:
        muted.append(f' · <span class="held banner">maintenance: {escape(m.maintenance)}</span>')
    facts = [_fact("Last ping", when(m.last_ping, now))]
    if status == "down":
        facts.append(_fact("Down since", when(m.down_at, now)))
    elif status == "paused":
        facts.append(_fact("Next expected", "paused", "muted"))
    else:
        label = "Was expected" if status == "late" else "Next expected"
        facts.append(_fact(label, when(m.expected_at, now, "\u2013")))
    if status in ("late", "new"):
        facts.append(_fact("Goes down", when(m.down_at, now, "\u2013"), "why"))
    else:
        facts.append(_fact("Last run", run_time(m.last_duration)))
    return Markup(
        f'  <li class="card s-{status}">\n'
        f'    <a class="row" href="monitors/{quote(m.slug, safe="/")}">\n'
        f'      <span class="pill s-{status}">{status}</span>\n'
        f'      <div class="what">\n        {"".join(what)}\n'
        f'        <div class="muted">{"".join(muted)}</div>\n'
        f'        <div class="history">{strip}</div>\n'
        f'      </div>\n      <dl class="facts">\n        {"".join(facts)}\n      </dl>\n'
        "    </a>\n  </li>"
    )


@dataclass(frozen=True)
class Detail:
    """What the monitor page shows beyond its facts, pings and flips."""

    # Its history strip, oldest cell first.
    cells: Sequence[Cell] = ()
    # The last measured runs (pings with a duration), newest first.
    runs: Sequence[Mapping[str, Any]] = ()
    # Seconds; drawn as a line over the runs.
    max_runtime: float | None = None
    # Shares of 1 (None: never watched in that time), from the flips.
    uptime_30d: float | None = None
    uptime_90d: float | None = None
    # (what, URL): by uuid, by slug.
    ping_urls: Sequence[tuple[str, str]] = ()
    # Median and p95 of the stored runs (runs.duration_stats).
    run_stats: Mapping[str, Any] | None = None


def render_monitor(
    monitor: MonitorView,
    pings: Sequence[Mapping[str, Any]],
    flips: Sequence[Mapping[str, Any]],
    now: datetime,
    detail: Detail = Detail(),
) -> str:
    """One monitor at `/monitors/<slug>`: its facts, pictures, flips and ping log (newest first)."""
    return _MONITOR.render(
        m=monitor,
        pings=pings,
        flips=flip_rows(flips, monitor.status.value, now),
        counts=[(monitor.status.value, 1)],
        detail=detail,
        strip=strip_svg(detail.cells) if detail.cells else None,
        chart=runs_svg(detail.runs, detail.max_runtime) if detail.runs else None,
        chart_top=chart_top(detail.runs, detail.max_runtime) if detail.runs else None,
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
        # A gap in heartbeatd's watch (into unknown and back) is no change
        # of the monitor's: a downtime across it counts from the real flip.
        if row["old"] == row["new"] or at is None or row.get("reason") == "daemon_gap":
            continue
        if row["old"] == "down":
            went_down = next(
                (
                    f
                    for f in rows[i + 1 :]
                    if f["new"] == "down" and f["old"] not in ("down", "unknown")
                ),
                None,
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
