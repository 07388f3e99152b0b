"""Readers of [monitors.<slug>] tables, and of the [defaults] they inherit.

Each table is first tried on the fast path (plain.py, straight from the
dict) and read here by the full Table reader (`_read_monitor`) only when the
fast path declines: anything unusual, and every error, which this reader
words. Both build the same `Monitor` from any table the fast path accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from heartbeatd.config.plain import (
    MONITOR_KEYS,
    Defaults,
    Shared,
    cron_problem,
    read_plain_monitor,
)
from heartbeatd.config.runrules import read_run_rules
from heartbeatd.config.values import DEFAULT_GRACE, Monitor
from heartbeatd.durations import DurationError, parse_duration
from heartbeatd.names import canonical_uuid, name_problem, tag_problem, uuid_problem
from heartbeatd.problems import Problems
from heartbeatd.schedule import Schedule, oncalendar_problem, timezone_problem
from heartbeatd.tables import Table


def read_defaults(table: Table, declared: tuple[str, ...]) -> Defaults:
    grace = table.duration("grace", DEFAULT_GRACE)
    zone = table.check("timezone", table.text("timezone", "UTC"), timezone_problem)
    names = _channel_list(table, "channels", declared)
    defaults = Defaults(
        grace=grace,
        timezone=zone or "UTC",
        channels=declared if names is None else names,
        max_runtime=table.duration("max_runtime", None),
        repeat=table.duration("repeat", None),
        repeat_limit=table.integer("repeat_limit", None, at_least=1),
        tags=_tag_list(table) or (),
    )
    table.done()
    return defaults


def _channel_list(table: Table, key: str, declared: tuple[str, ...]) -> tuple[str, ...] | None:
    names = table.text_list(key, None)
    if names is None:
        return None
    for name in names:
        if name not in declared:
            known = ", ".join(declared) or "none"
            table.error(key, f'no channel named "{name}" in [channels] (known: {known})')
    return tuple(names)


def _tag_list(table: Table) -> tuple[str, ...] | None:
    tags = table.text_list("tags", None)
    if tags is None:
        return None
    for tag in tags:
        table.check("tags", tag, tag_problem)
    # Order kept as written, duplicates dropped: the API shows them as given.
    return tuple(dict.fromkeys(tags))


def read_monitors(
    table: Table,
    defaults: Defaults,
    declared: tuple[str, ...],
    reuse: Mapping[str, Monitor],
) -> dict[str, Monitor]:
    monitors: dict[str, Monitor] = {}
    owners: dict[str, str] = {}  # uuid -> the slug that claimed it first
    shared = Shared(defaults, declared)
    for slug, data in table.entries():
        monitor = read_plain_monitor(slug, data, shared) if isinstance(data, dict) else None
        if monitor is None:
            # Anything unusual, and every error, takes the long way that words it.
            monitor = _read_monitor_entry(table, slug, shared)
            if monitor is None:
                continue
        if monitor.uuid is not None:
            if monitor.uuid in owners:
                other = owners[monitor.uuid]
                where = table.table(slug)
                where.error("uuid", f'"{monitor.uuid}" is already the uuid of monitors.{other}')
            owners.setdefault(monitor.uuid, slug)
        before = reuse.get(slug)
        if before is not None and before == monitor:
            # The old key too: a new key string would pin the arena it was
            # parsed into, full of garbage otherwise.
            monitors[before.slug] = before
        else:
            monitors[slug] = monitor
    table.done()
    return monitors


def _read_monitor_entry(table: Table, slug: str, shared: Shared) -> Monitor | None:
    sub = table.table(slug)
    table.check(slug, slug, name_problem)
    if not isinstance(table.data[slug], dict):
        return None
    monitor = _read_monitor(slug, sub, shared)
    sub.done(known=MONITOR_KEYS)
    return monitor


def _read_monitor(slug: str, table: Table, shared: Shared) -> Monitor | None:
    defaults = shared.defaults
    name = table.text("name", slug)
    description = table.text("description", "")
    schedule = _read_schedule(table, shared)
    grace = table.duration("grace", defaults.grace)
    max_runtime = table.duration("max_runtime", defaults.max_runtime) or grace
    names, escalations = _read_channels(table, shared.declared)
    uuid_text = table.check("uuid", table.text("uuid", None), uuid_problem)
    repeat = _read_repeat(table, defaults)
    repeat_limit = table.integer("repeat_limit", defaults.repeat_limit, at_least=1)
    tags = _tag_list(table)
    if table.has("repeat_limit") and repeat is None:
        table.error("repeat_limit", 'needs repeat, the reminder interval (e.g. repeat = "1h")')
    rules = read_run_rules(table)
    alert_after = table.integer("alert_after", 1, at_least=1)
    recover_after = table.integer("recover_after", 1, at_least=1)
    # Checked against the other monitors (and for cycles) in dependencies.py.
    depends_on = tuple(table.text_list("depends_on", []))
    if schedule is None or name is None or grace is None or description is None:
        return None
    return Monitor(
        slug=slug,
        name=name,
        description=description,
        schedule=schedule,
        grace=grace,
        max_runtime=max_runtime,
        channels=defaults.channels if names is None else shared.channels(names),
        uuid=None if uuid_text is None else canonical_uuid(uuid_text),
        repeat=repeat,
        repeat_limit=repeat_limit if repeat is not None else None,
        tags=defaults.tags if tags is None else shared.tags(tags),
        **rules,
        alert_after=alert_after,
        recover_after=recover_after,
        depends_on=depends_on,
        escalations=escalations,
    )


def _read_channels(
    table: Table, declared: tuple[str, ...]
) -> tuple[tuple[str, ...] | None, tuple[tuple[str, int], ...]]:
    """`channels` of a monitor: plain names hear every alert; an entry
    {channel = "pager", after = "30m"} hears the down alert only as an
    escalation, if the incident is still unacknowledged that long after it."""
    value = table.raw("channels", None)
    if not isinstance(value, list) or all(isinstance(v, str) for v in value):
        return _channel_list(table, "channels", declared), ()
    names: list[str] = []
    escalations: list[tuple[str, int]] = []
    known = ", ".join(declared) or "none"
    for i, entry in enumerate(value):
        if isinstance(entry, str):
            names.append(entry)
            continue
        where = f"entry {i + 1}"
        if not isinstance(entry, dict) or set(entry) != {"channel", "after"}:
            table.error(
                "channels",
                f'{where}: expected a channel name or {{channel = "pager", after = "30m"}}',
            )
            continue
        name, after = entry["channel"], entry["after"]
        if not isinstance(name, str) or name not in declared:
            table.error(
                "channels", f'{where}: no channel named "{name}" in [channels] (known: {known})'
            )
            continue
        try:
            seconds = parse_duration(after)
        except DurationError as exc:
            table.error("channels", f"{where}: after: {exc}")
            continue
        escalations.append((name, seconds))
    for name in names:
        if name not in declared:
            table.error("channels", f'no channel named "{name}" in [channels] (known: {known})')
    escalations.sort(key=lambda e: e[1])
    return tuple(names), tuple(escalations)


def _read_schedule(table: Table, shared: Shared) -> Schedule | None:
    zone = table.check(
        "timezone", table.text("timezone", shared.defaults.timezone), timezone_problem
    )
    kinds = [key for key in _SCHEDULE_KEYS if table.has(key)]
    early = table.duration("early", 0)
    if len(kinds) > 1:
        given = " and ".join(kinds)
        table.error(kinds[-1], f"give only one of period, schedule and oncalendar (got {given})")
        for key in kinds:
            table.raw(key)
        return None
    if not kinds:
        table.error(
            "",
            'needs period (like "1d"), schedule (a cron expression like "0 2 * * *")'
            ' or oncalendar (a systemd calendar expression like "Mon..Fri 09:00")',
        )
        return None
    if kinds == ["period"]:
        period = table.duration("period")
        if early:
            table.error("early", "needs schedule or oncalendar: a period has no scheduled times")
            return None
        return None if period is None else shared.schedule(period, None, zone or "UTC")
    if kinds == ["schedule"]:
        crons = _expressions(table, "schedule", cron_problem)
        if crons is None or zone is None or early is None:
            return None
        cron = crons[0] if len(crons) == 1 else crons
        return shared.schedule(None, cron, zone, early=early)
    calendars = _expressions(table, "oncalendar", oncalendar_problem)
    if calendars is None or zone is None or early is None:
        return None
    return shared.schedule(None, None, zone, oncalendar=calendars, early=early)


_SCHEDULE_KEYS = ("period", "schedule", "oncalendar")


def _expressions(
    table: Table, key: str, problem: Callable[[str], str | None]
) -> tuple[str, ...] | None:
    """One expression or a list of them, each checked; spaces normalised."""
    texts = table.text_list(key, allow_text=True)
    if texts is None:
        return None
    if not texts:
        table.error(key, "expected at least one expression, got an empty list")
        return None
    found: list[str] = []
    bad = False
    for index, text in enumerate(texts):
        message = problem(text)
        if message is not None:
            # A list names the bad item; a single expression names the key.
            where = table.key(key)
            if not isinstance(table.data[key], str):
                where = f"{where}[{index}]"
            table.problems.add(where, message)
            bad = True
        found.append(" ".join(text.split()))
    return None if bad else tuple(found)


def _read_repeat(table: Table, defaults: Defaults) -> int | None:
    # `repeat = false` turns off reminders inherited from [defaults].
    if table.data.get("repeat") is False:
        table.raw("repeat")
        return None
    return table.duration("repeat", defaults.repeat)


def read_api_monitor(
    slug: str,
    data: Mapping[str, Any],
    defaults_data: Mapping[str, Any],
    declared: tuple[str, ...],
    where: str,
) -> tuple[Monitor | None, list[str]]:
    """A monitor created at run time (source "api"), read as if it were the
    table [monitors.<slug>] of a file whose [defaults] is `defaults_data`:
    (the monitor, []) or (None, every problem, each prefixed with `where`)."""
    problems = Problems(filename=where)
    defaults = read_defaults(Table(dict(defaults_data), "defaults", problems), declared)
    table = Table({slug: dict(data)}, "monitors", problems)
    found = read_monitors(table, defaults, declared, {})
    if problems.lines:
        return None, problems.lines
    return replace(found[slug], source="api"), []
