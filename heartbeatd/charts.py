"""Pictures on the status pages, as inline SVG built on the server: no
script, no image request, and they scale with the text on a phone.

Colours come from the page's CSS classes (`h-up`, `h-down`, …), so the dark
scheme and the status colours stay in one place, base.html. Every shape has
a `<title>` (a tooltip on hover, read by screen readers) with what it shows
in words, so nothing is told by colour alone. Built as strings, not in the
template: a page carries 100 strips of 30 cells, and a template loop per
cell would cost more than the rest of the page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from html import escape
from typing import Any

from markupsafe import Markup

from heartbeatd import humanize
from heartbeatd.timeline import Cell
from heartbeatd.times import parse_isoformat

CELL_WIDTH, CELL_GAP, STRIP_HEIGHT = 7, 2, 16
STEP = CELL_WIDTH + CELL_GAP
CHART_WIDTH, CHART_HEIGHT = 600, 120
RUN_SLOTS = 30

WORDS = {
    "up": "up",
    "late": "late",
    "down": "down",
    "paused": "paused",
    "unknown": "unknown (heartbeatd was not running)",
    "none": "no data",
}


def strip_svg(cells: Sequence[Cell]) -> Markup:
    """One cell per period, oldest on the left; each cell's tooltip says when
    and what (and why it went down)."""
    return _strip_svg(tuple(cells))


# Monitors of one period that were up all along (most of them, on most
# pages) have the very same strip: it is written out once.
@lru_cache(maxsize=1024)
def _strip_svg(cells: tuple[Cell, ...]) -> Markup:
    width = len(cells) * STEP - CELL_GAP
    counts = Counter(cell.status for cell in cells)
    summary = ", ".join(f"{n} {WORDS[status]}" for status, n in counts.items())
    label = f"the last {len(cells)} periods: {summary}"
    rects = "".join(_rect(i, cell) for i, cell in enumerate(cells))
    return Markup(
        f'<svg class="strip" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width}'
        f' {STRIP_HEIGHT}" width="{width}" height="{STRIP_HEIGHT}" role="img"'
        f' aria-label="{escape(label)}">{rects}</svg>'
    )


# Monitors of one period share their cells' bounds, and most cells of a page
# are alike: each is written out once.
@lru_cache(maxsize=4096)
def _rect(i: int, cell: Cell) -> str:
    text = f"{_period(cell.start, cell.end)}: {WORDS[cell.status]}"
    if cell.reason and cell.status in ("down", "late"):
        text += f", {humanize.reason(cell.reason)}"
    return (
        f'<rect x="{i * STEP}" width="{CELL_WIDTH}" height="{STRIP_HEIGHT}" rx="1.5"'
        f' class="h-{cell.status}"><title>{escape(text)}</title></rect>'
    )


def runs_svg(runs: Sequence[Mapping[str, Any]], max_runtime: float | None) -> Markup:
    """A bar per run (newest on the right), its height how long it took; a
    dashed line at `max_runtime`, past which a run is down as ran too long.

    It stretches to the width of the page (a phone's or a desktop's) and
    keeps its height; its words are in the page around it, where they keep
    their size."""
    runs = list(reversed(runs))
    longest = max(float(run["duration"] or 0) for run in runs)
    top = chart_top(runs, max_runtime)
    # Room for RUN_SLOTS bars; fewer runs stay as narrow, on the right.
    slot = CHART_WIDTH / max(len(runs), RUN_SLOTS)
    left = CHART_WIDTH - slot * len(runs)
    parts = []
    for i, run in enumerate(runs):
        seconds = float(run["duration"] or 0)
        height = max(1.0, CHART_HEIGHT * seconds / top)
        failed = run["kind"] == "fail" or (run.get("exit_status") or 0) != 0
        words = f"took {humanize.duration(seconds)}"
        if run.get("exit_status") is not None:
            words += f", exit status {run['exit_status']}"
        elif failed:
            words += ", failed"
        at = parse_isoformat(run["at"])
        when = at.isoformat(" ", "seconds")[:19] + " UTC" if at else "?"
        parts.append(
            f'<rect x="{left + i * slot + slot * 0.125:.1f}" y="{CHART_HEIGHT - height:.1f}"'
            f' width="{slot * 0.75:.1f}" height="{height:.1f}"'
            f' class="{"r-fail" if failed else "r-ok"}">'
            f"<title>{escape(when)}: {escape(words)}</title></rect>"
        )
    if max_runtime:
        y = CHART_HEIGHT - CHART_HEIGHT * max_runtime / top
        parts.append(
            f'<line x1="0" x2="{CHART_WIDTH}" y1="{y:.1f}" y2="{y:.1f}" class="limit"'
            ' vector-effect="non-scaling-stroke">'
            f"<title>max_runtime {escape(humanize.duration(max_runtime))}</title></line>"
        )
    label = f"the last {len(runs)} runs: the longest took {humanize.duration(longest)}" + (
        f", max_runtime {humanize.duration(max_runtime)}" if max_runtime else ""
    )
    return Markup(
        f'<svg class="runs" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH}'
        f' {CHART_HEIGHT}" preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
        f'<line x1="0" x2="{CHART_WIDTH}" y1="{CHART_HEIGHT}" y2="{CHART_HEIGHT}" class="axis"'
        f' vector-effect="non-scaling-stroke"/>{"".join(parts)}</svg>'
    )


def chart_top(runs: Sequence[Mapping[str, Any]], max_runtime: float | None) -> float:
    """The length of time at the top of runs_svg's chart, for its label."""
    longest = max(float(run["duration"] or 0) for run in runs)
    return max(longest, max_runtime or 0) * 1.1 or 1.0


def _period(start: datetime, end: datetime) -> str:
    """A cell's time: "2026-01-14 11:00", an en dash, "12:00 UTC" (or the date too)."""
    # isoformat: several times faster than strftime.
    first = start.isoformat(" ", "minutes")[:16]
    last = end.isoformat(" ", "minutes")[11 if end.date() == start.date() else 0 : 16]
    return f"{first} \u2013 {last} UTC"
