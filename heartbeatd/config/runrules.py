"""Readers of a monitor's run rules and ping filters: min_runtime,
max_concurrent, runtime_anomaly, and the keyword and method rules
(README "Schedules and runs"). Only the full reader in monitors.py reads
them: tables that set any of them leave the fast path.
"""

from __future__ import annotations

from typing import Any

from heartbeatd.keywords import PingFilter
from heartbeatd.problems import show
from heartbeatd.tables import Table

# Keys of OnCalendar schedules, early pings, run rules and ping filters.
RUN_KEYS = (
    "oncalendar",
    "early",
    "min_runtime",
    "max_concurrent",
    "runtime_anomaly",
    "failure_keywords",
    "success_keywords",
    "start_keywords",
    "keywords_default",
    "methods",
)


def read_run_rules(table: Table) -> dict[str, Any]:
    """min_runtime, max_concurrent, runtime_anomaly and the ping filter."""
    min_runtime = table.duration("min_runtime", None)
    max_concurrent = table.integer("max_concurrent", None, at_least=1, at_most=1000)
    return {
        "min_runtime": min_runtime,
        "max_concurrent": max_concurrent,
        "runtime_anomaly": _read_factor(table, "runtime_anomaly"),
        "ping_filter": _read_ping_filter(table),
    }


def _read_factor(table: Table, key: str) -> float | None:
    value = table.raw(key, None)
    if value is None:
        return None
    # bool is an int; NaN is no factor (and fails every comparison).
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value < 1000:
        return float(value)
    table.error(
        key,
        "expected a factor greater than 1 like 3 (a run 3 times longer or shorter"
        f" than usual), got {show(value)}",
    )
    return None


def _keywords(table: Table, key: str) -> tuple[str, ...]:
    words = tuple(table.text_list(key, [], allow_text=True))
    if "" in words:
        # An empty keyword is in every body: it would match everything.
        table.error(key, 'expected keywords that are not empty, got ""')
    return words


def _read_ping_filter(table: Table) -> PingFilter | None:
    failure, success, start = (
        _keywords(table, key) for key in ("failure_keywords", "success_keywords", "start_keywords")
    )
    default = table.choice("keywords_default", ("ignore", "fail"), "ignore")
    methods = table.choice("methods", ("any", "post"), "any")
    found = PingFilter(
        failure, success, start, default_fail=default == "fail", post_only=methods == "post"
    )
    return None if found == PingFilter() else found
