"""Runs of a job: the open ones per rid, and what their durations say.

A run opens with /start and closes with the finish that carries its rid (or
with any finish, when neither names one). Pure functions of a MonitorState
and a ping, so states.py stays a table of rules; the statistics serve both
the `runtime_anomaly` rule and the page and API (median and p95).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from heartbeatd.model import MonitorState, Ping

# A start and a finish further apart than this are not one run (Healthchecks
# uses the same bound), so no duration is recorded.
MAX_RUN_DURATION = timedelta(hours=72)
# Open runs remembered per monitor besides the newest: a job whose finishes
# never come must not grow its state without end.
MAX_OPEN_RUNS = 20


@dataclass(frozen=True, slots=True)
class Opened:
    """The runs after a /start, and how many were open before it."""

    started_at: datetime
    start_rid: str | None
    open_runs: tuple[tuple[str, datetime], ...]
    # Other runs still open when this one started (0: no overlap).
    others: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The runs after a finish, and the duration of the run it closed."""

    started_at: datetime | None
    start_rid: str | None
    open_runs: tuple[tuple[str, datetime], ...]
    duration: float | None


def open_run(state: MonitorState, ping: Ping) -> Opened:
    """`ping` (a /start) opens a run; the newest run is always the one at
    started_at, so max_runtime watches it as before."""
    fresh = [(rid, at) for rid, at in state.open_runs if ping.at - at <= MAX_RUN_DURATION]
    others = len(fresh)
    if ping.rid is not None:
        # The same run started again (a retried /start) is not a second run.
        fresh = [(rid, at) for rid, at in fresh if rid != ping.rid]
        others = len(fresh)
    main = state.started_at
    if main is not None and ping.at - main <= MAX_RUN_DURATION:
        same = ping.rid is not None and ping.rid == state.start_rid
        if not same:
            others += 1
            # A run without a rid cannot be told apart from the next one: the
            # next finish without a rid closes the newest.
            if state.start_rid is not None:
                fresh.append((state.start_rid, main))
    return Opened(ping.at, ping.rid, tuple(fresh[-MAX_OPEN_RUNS:]), others)


def close_run(state: MonitorState, ping: Ping) -> Closed:
    """The run a finishing ping closes, if any, with its duration."""
    if ping.rid is not None and ping.rid != state.start_rid:
        for index, (rid, at) in enumerate(state.open_runs):
            if rid == ping.rid:
                rest = state.open_runs[:index] + state.open_runs[index + 1 :]
                return Closed(state.started_at, state.start_rid, rest, _measure(at, ping.at))
        if state.start_rid is not None:
            # Another run's finish (or a stranger's): the open one stays open.
            return Closed(state.started_at, state.start_rid, state.open_runs, None)
    if state.started_at is None:
        return Closed(None, None, state.open_runs, None)
    duration = _measure(state.started_at, ping.at)
    if state.open_runs:
        # The newest run still open is watched by max_runtime next.
        rid, at = state.open_runs[-1]
        return Closed(at, rid, state.open_runs[:-1], duration)
    return Closed(None, None, (), duration)


def _measure(start: datetime, end: datetime) -> float | None:
    elapsed = end - start
    return elapsed.total_seconds() if timedelta(0) <= elapsed <= MAX_RUN_DURATION else None


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: a duration some run really took."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def is_anomaly(duration: float, typical: float, factor: float) -> bool:
    """Longer than `factor` times the typical run, or shorter than its 1/factor."""
    if typical <= 0:
        # Runs that take no measurable time give no scale to compare with.
        return False
    return duration > typical * factor or duration < typical / factor


def duration_stats(durations: Sequence[float]) -> dict[str, float | int | None]:
    """Median and p95 of measured runs, for the API and the monitor page."""
    if not durations:
        return {"runs": 0, "median": None, "p95": None}
    return {
        "runs": len(durations),
        "median": median(durations),
        "p95": percentile(durations, 0.95),
    }
