"""What a monitor's status was over time, from its stored flips: the cells of
a history strip, and uptime over 30 or 90 days.

Pure: flips (as the store gives them, oldest first, with the one before the
window) and `now` in, values out.

`late` is a status but not a flip (nothing stores it), so it is known only
where it can be told: the grace before a missed deadline made a monitor
down (it was late then), and the current lateness. A success that came late
but within the grace leaves no trace. Pausing and resuming are not flips
either: a paused monitor shows paused from now only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from heartbeatd.schedule import Schedule
from heartbeatd.times import parse_stored

CELLS = 30
_BEGINNING = datetime.min.replace(tzinfo=timezone.utc)
# What a cell shows when several statuses shared it: the one that tells
# most, the worst first; a pause, and a time heartbeatd itself was not
# running ("unknown", recorded after a daemon gap), are worth telling over up.
RANK = {"down": 5, "late": 4, "paused": 3, "unknown": 2, "up": 1, "none": 0}
# Cron ticks looked at to tell a cron schedule's usual gap.
TICKS = 8


class Cell(NamedTuple):
    """One cell of a strip. A tuple: a page makes 3,000 of them."""

    start: datetime
    end: datetime
    # "up", "late", "down", "paused", "unknown" (heartbeatd was not running)
    # or "none" (no data: before the first ping, or before the oldest flip kept).
    status: str
    # The reason of the flip into that status, if one is known.
    reason: str | None = None


@dataclass(frozen=True)
class Span:
    """The monitor had `status` from `start` on (until the next span)."""

    start: datetime
    status: str
    reason: str | None = None


def cell_length(schedule: Schedule, now: datetime) -> timedelta:
    """One cell per expected run: the period, or a cron schedule's usual gap."""
    if schedule.period is not None:
        return timedelta(seconds=schedule.period)
    return _cron_gap(schedule, now.date())


@lru_cache(maxsize=1024)
def _cron_gap(schedule: Schedule, day: date) -> timedelta:
    # The mean gap of the ticks after this day's start: "0 9 * * 1-5" is
    # about a day and a half a cell, never a tick too many a week. Cached by
    # day: many monitors share a schedule, and cronsim is not free.
    ticks = [schedule.next_after(datetime.combine(day, time(), timezone.utc))]
    for _ in range(TICKS):
        ticks.append(schedule.next_after(ticks[-1]))
    return (ticks[-1] - ticks[0]) / TICKS


def spans(
    flips: Sequence[Mapping[str, Any]],
    *,
    status: str,
    first_seen: datetime | None,
    expected_at: datetime | None,
    grace: float,
    now: datetime,
) -> list[Span]:
    """The monitor's statuses over time, oldest first, from its flips and its
    current state. "new" reads "none": a monitor never pinged has no record."""
    out: list[Span] = []
    if flips:
        first = flips[0]
        out.append(Span(_BEGINNING, _shown(first["old"])))
    else:
        if first_seen is not None:
            out.append(Span(_BEGINNING, "none"))
        out.append(Span(first_seen or now, _shown(status)))
    for flip in flips:
        at = parse_stored(flip["at"])
        if flip["new"] == "down" and flip["reason"] == "missed" and out[-1].status == "up":
            # It was late for the grace before it went down.
            out.append(Span(at - timedelta(seconds=grace), "late", "missed"))
        out.append(Span(at, _shown(flip["new"]), flip["reason"]))
    if status == "late" and expected_at is not None and out[-1].status == "up":
        out.append(Span(expected_at, "late", "missed"))
    if status == "paused" and out[-1].status != "paused":
        # A pause is not a flip either: since when is not known, only that
        # it is paused now.
        out.append(Span(now, "paused"))
    # Flip times are the rules' times, so one may come before the previous;
    # a later flip wins from its time on.
    out.sort(key=lambda span: span.start)
    return out


def strip(history: list[Span], now: datetime, length: timedelta, cells: int = CELLS) -> list[Cell]:
    """`cells` cells of `length`, the last one the cell `now` is in, oldest
    first; each shows the worst status it saw.

    Cells start at whole multiples of `length` since the epoch: they stay in
    place while the page reloads itself, and monitors of the same period share
    their bounds (and the work of writing them out)."""
    step = length.total_seconds()
    first = (math.floor(now.timestamp() / step) - cells + 1) * step
    last = first + cells * step
    # What the strip shows depends only on the spans in force inside it (the
    # one in force at its start, from its start): monitors with the same of
    # those (most are up all along) share one strip.
    starts = [span.start.timestamp() for span in history]
    window = []
    for j, span in enumerate(history):
        if starts[j] >= last:
            break
        if j + 1 < len(starts) and starts[j + 1] <= first:
            continue
        window.append((max(starts[j], first), span.status, span.reason))
    return list(_marked(first, step, cells, tuple(window)))


@lru_cache(maxsize=4096)
def _marked(
    first: float, step: float, cells: int, window: tuple[tuple[float, str, str | None], ...]
) -> tuple[Cell, ...]:
    bounds = _bounds(first, step, cells)
    # Each span marks the cells it overlaps (a few divisions), instead of
    # each cell looking through the spans.
    best: list[tuple[str, str | None] | None] = [None] * cells
    rank = [-1] * cells
    ends = [start for start, _, _ in window[1:]] + [math.inf] * bool(window)
    for (start, status, reason), end in zip(window, ends, strict=True):
        # A span counts in a cell [lo, hi) if it starts before hi and is still
        # in force after lo; one that ends at or before a cell's lo does not.
        n = max(0, int((start - first) // step))
        r = RANK[status]
        while n < cells:
            lo, hi = bounds[n][2], bounds[n][3]
            if start >= hi:
                n += 1
                continue
            if end <= lo:
                break
            if r > rank[n]:
                best[n], rank[n] = (status, reason), r
            n += 1
    return tuple(
        Cell(lo_time, hi_time, "none") if mark is None else Cell(lo_time, hi_time, *mark)
        for (lo_time, hi_time, _, _), mark in zip(bounds, best, strict=True)
    )


@lru_cache(maxsize=256)
def _bounds(first: float, step: float, cells: int) -> list[tuple[datetime, datetime, float, float]]:
    # The same for every monitor of one period on a page.
    out = []
    for n in range(cells):
        lo, hi = first + n * step, first + (n + 1) * step
        out.append((_utc(lo), _utc(hi), lo, hi))
    return out


@lru_cache(maxsize=4096)
def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


def uptime(history: list[Span], now: datetime, days: int) -> float | None:
    """The share of the last `days` days it was not down, of the time it was
    watched (neither paused, nor without data, nor while heartbeatd was not
    running); None if it never was."""
    start = now - timedelta(days=days)
    watched = down = 0.0
    for span, after in zip(history, [*history[1:], None], strict=True):
        lo = max(span.start, start)
        hi = min(after.start if after is not None else now, now)
        if hi <= lo or span.status in ("paused", "none", "unknown"):
            continue
        seconds = (hi - lo).total_seconds()
        watched += seconds
        if span.status == "down":
            down += seconds
    return None if watched == 0 else 1 - down / watched


def _shown(status: str) -> str:
    return "none" if status == "new" else status
