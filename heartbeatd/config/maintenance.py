"""Readers of [maintenance.<name>] tables: maintenance windows, and the
monitors each selects (by slug, by tag, or "*" for all)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from heartbeatd.config.values import Monitor
from heartbeatd.names import name_problem
from heartbeatd.schedule import CRON_FIELDS, Schedule, cron_problem, timezone_problem
from heartbeatd.tables import Table
from heartbeatd.windows import Window

_KEYS = ("schedule", "duration", "timezone", "monitors", "tags")


def read_maintenance(
    table: Table, monitors: dict[str, Monitor], default_zone: str
) -> tuple[dict[str, Window], dict[str, Monitor]]:
    """The windows, and the monitors with the windows that select them
    (only the monitors a window selects are new objects)."""
    windows: dict[str, Window] = {}
    for name, sub in table.tables():
        table.check(name, name, name_problem)
        window = _read_window(name, sub, monitors, default_zone)
        sub.done(known=_KEYS)
        if window is not None:
            windows[name] = window
    table.done()
    if not windows:
        return windows, monitors
    selected: dict[str, list[Window]] = {}
    for window in windows.values():
        for slug in _selected(window, monitors):
            selected.setdefault(slug, []).append(window)
    out = dict(monitors)
    for slug, found in selected.items():
        out[slug] = dataclasses.replace(monitors[slug], windows=tuple(found))
    return windows, out


def _read_window(
    name: str, table: Table, monitors: Mapping[str, Monitor], default_zone: str
) -> Window | None:
    zone = table.check("timezone", table.text("timezone", default_zone), timezone_problem)
    cron = table.check("schedule", table.text("schedule"), _cron_problem)
    duration = table.duration("duration")
    if duration is not None and duration < 1:
        table.error("duration", "must be at least 1s")
        duration = None
    slugs = table.text_list("monitors", [])
    tags = table.text_list("tags", [])
    if not slugs and not tags:
        table.error("", 'needs monitors (slugs, or ["*"] for all) or tags')
    for slug in slugs:
        if slug != "*" and slug not in monitors:
            table.error("monitors", f'no monitor named "{slug}" in [monitors]')
    if cron is None or zone is None or duration is None:
        return None
    schedule = Schedule(cron=" ".join(cron.split()), timezone=zone)
    return Window(name, schedule, duration, tuple(slugs), tuple(tags))


def _cron_problem(expr: str) -> str | None:
    if len(expr.split()) != len(CRON_FIELDS):
        return f"expected a cron expression of {len(CRON_FIELDS)} fields, got {expr!r}"
    return cron_problem(expr)


def _selected(window: Window, monitors: Mapping[str, Monitor]) -> list[str]:
    if window.selects_all:
        return list(monitors)
    chosen = [slug for slug in window.monitors if slug in monitors]
    if window.tags:
        wanted = set(window.tags)
        chosen += [
            slug
            for slug, monitor in monitors.items()
            if wanted.intersection(monitor.tags) and slug not in chosen
        ]
    return chosen
