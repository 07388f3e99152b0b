"""Readers of [monitors.<slug>] tables, and of the [defaults] they inherit.

A config may hold 100,000 monitors, so each is first tried on a fast path
(`_read_plain_monitor`, straight from the dict) and read again by the full
Table reader (`_read_monitor`) only when the fast path declines: anything
unusual, and every error, which the full reader words. Both build the same
`Monitor` from any table the fast path accepts.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from heartbeatd.config.runrules import RUN_KEYS, read_run_rules
from heartbeatd.config.values import DEFAULT_GRACE, Monitor
from heartbeatd.durations import DurationError, parse_duration, quote
from heartbeatd.names import canonical_uuid, name_problem, tag_problem, uuid_problem
from heartbeatd.problems import Problems
from heartbeatd.schedule import (
    CRON_FIELDS,
    Schedule,
    cron_problem,
    oncalendar_problem,
    timezone_problem,
)
from heartbeatd.tables import INT64, Table


@dataclass(frozen=True, slots=True)
class Defaults:
    """[defaults]: None means "not set there", so the built-in default applies."""

    grace: int
    timezone: str
    channels: tuple[str, ...]
    max_runtime: int | None
    repeat: int | None
    repeat_limit: int | None
    tags: tuple[str, ...] = ()


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


# Every key a [monitors.<slug>] table may have.
_MONITOR_KEYS = frozenset(
    (
        "name",
        "description",
        "period",
        "schedule",
        "timezone",
        "grace",
        "max_runtime",
        "channels",
        "uuid",
        "repeat",
        "repeat_limit",
        "tags",
        *RUN_KEYS,
        "alert_after",
        "recover_after",
        "depends_on",
    )
)
# Keys the fast path leaves to the full reader: rare, and read in one place.
_SLOW_KEYS = frozenset((*RUN_KEYS, "alert_after", "recover_after", "depends_on"))


class _Bad(enum.Enum):
    """A value `_plain_duration` could not read, unlike None, which [defaults] may hold."""

    BAD = enum.auto()


_BAD: Final = _Bad.BAD


class _Shared:
    """What monitors read alike: [defaults], the declared channels, and one
    copy of each equal Schedule and channel list, so 100,000 monitors with
    `period = "1h"` hold one Schedule between them."""

    def __init__(self, defaults: Defaults, declared: tuple[str, ...]) -> None:
        self.defaults = defaults
        self.declared = declared
        self.known_channels = frozenset(declared)
        self._schedules: dict[tuple[Any, ...], Schedule] = {}
        self._channel_lists: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._zones: dict[str, bool] = {defaults.timezone: True}
        self._tag_lists: dict[tuple[str, ...], tuple[str, ...]] = {defaults.tags: defaults.tags}

    def schedule(
        self,
        period: int | None,
        cron: str | tuple[str, ...] | None,
        zone: str,
        oncalendar: tuple[str, ...] | None = None,
        early: int = 0,
    ) -> Schedule:
        key = (period, cron, zone, oncalendar, early)
        found = self._schedules.get(key)
        if found is None:
            found = self._schedules[key] = Schedule(
                period=period, cron=cron, timezone=zone, oncalendar=oncalendar, early=early
            )
        return found

    def channels(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return self._channel_lists.setdefault(names, names)

    def tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        return self._tag_lists.setdefault(tags, tags)

    def is_zone(self, name: str) -> bool:
        known = self._zones.get(name)
        if known is None:
            known = self._zones[name] = timezone_problem(name) is None
        return known


def read_monitors(
    table: Table,
    defaults: Defaults,
    declared: tuple[str, ...],
    reuse: Mapping[str, Monitor],
) -> dict[str, Monitor]:
    monitors: dict[str, Monitor] = {}
    owners: dict[str, str] = {}  # uuid -> the slug that claimed it first
    shared = _Shared(defaults, declared)
    for slug, data in table.entries():
        monitor = _read_plain_monitor(slug, data, shared) if isinstance(data, dict) else None
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
        if before == monitor:
            # The old key too: a new key string would pin the arena it was
            # parsed into, full of garbage otherwise.
            monitors[before.slug] = before
        else:
            monitors[slug] = monitor
    table.done()
    return monitors


def _read_monitor_entry(table: Table, slug: str, shared: _Shared) -> Monitor | None:
    sub = table.table(slug)
    table.check(slug, slug, name_problem)
    if not isinstance(table.data[slug], dict):
        return None
    monitor = _read_monitor(slug, sub, shared)
    sub.done(known=_MONITOR_KEYS)
    return monitor


def _read_plain_monitor(slug: str, data: dict[str, Any], shared: _Shared) -> Monitor | None:
    """The common case, read straight from the dict without a Table.

    None unless every key is known and every value valid: then `_read_monitor`
    reads the entry again and reports what is wrong, so messages are worded
    in one place. Whatever this accepts, `_read_monitor` reads the same
    (tests/test_config_monitors.py holds it to that).
    """
    if (
        not data.keys() <= _MONITOR_KEYS
        or not _SLOW_KEYS.isdisjoint(data)
        or name_problem(slug) is not None
    ):
        return None
    defaults = shared.defaults
    name = data.get("name", slug)
    description = data.get("description", "")
    schedule = _plain_schedule(data, shared)
    grace = _plain_duration(data["grace"]) if "grace" in data else defaults.grace
    max_runtime: int | _Bad | None = defaults.max_runtime
    if "max_runtime" in data:
        max_runtime = _plain_duration(data["max_runtime"])
    repeat: int | _Bad | None = defaults.repeat
    if "repeat" in data:
        # `repeat = false` turns off reminders inherited from [defaults].
        repeat = None if data["repeat"] is False else _plain_duration(data["repeat"])
    repeat_limit = data.get("repeat_limit", defaults.repeat_limit)
    if (
        type(name) is not str
        or type(description) is not str
        or schedule is None
        or grace is _BAD
        or max_runtime is _BAD
        or repeat is _BAD
        or (
            "repeat_limit" in data
            and (type(repeat_limit) is not int or repeat_limit < 1 or repeat_limit not in INT64)
        )
        or ("repeat_limit" in data and repeat is None)
    ):
        return None
    channels = defaults.channels
    if "channels" in data:
        names = data["channels"]
        if type(names) is not list or not all(
            type(n) is str and n in shared.known_channels for n in names
        ):
            return None
        channels = shared.channels(tuple(names))
    uuid_text = data.get("uuid")
    if uuid_text is not None:
        if type(uuid_text) is not str or uuid_problem(uuid_text) is not None:
            return None
        uuid_text = canonical_uuid(uuid_text)
    tags = defaults.tags
    if "tags" in data:
        given = data["tags"]
        if type(given) is not list or not all(
            type(t) is str and tag_problem(t) is None for t in given
        ):
            return None
        tags = shared.tags(tuple(dict.fromkeys(given)))
    return Monitor(
        slug=slug,
        name=name,
        description=description,
        schedule=schedule,
        grace=grace,
        max_runtime=max_runtime or grace,
        channels=channels,
        uuid=uuid_text,
        repeat=repeat,
        repeat_limit=repeat_limit if repeat is not None else None,
        tags=tags,
    )


def _plain_duration(value: object) -> int | _Bad:
    # bool is an int, and a duration error is worded by Table.duration.
    if type(value) is not str and type(value) is not int:
        return _BAD
    try:
        return parse_duration(value)
    except DurationError:
        return _BAD


def _plain_schedule(data: dict[str, Any], shared: _Shared) -> Schedule | None:
    zone = data.get("timezone", shared.defaults.timezone)
    if type(zone) is not str or not shared.is_zone(zone):
        return None
    has_period, has_cron = "period" in data, "schedule" in data
    if has_period == has_cron:
        return None
    if has_period:
        period = _plain_duration(data["period"])
        return None if period is _BAD else shared.schedule(period, None, zone)
    cron = data["schedule"]
    if type(cron) is not str or _cron_problem(cron) is not None:
        return None
    return shared.schedule(None, " ".join(cron.split()), zone)


def _read_monitor(slug: str, table: Table, shared: _Shared) -> Monitor | None:
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


def _read_schedule(table: Table, shared: _Shared) -> Schedule | None:
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
        crons = _expressions(table, "schedule", _cron_problem)
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


# Far past any value a cron field takes, and far short of the 4,300 digits
# at which cronsim's int() would raise instead of reporting a bad field.
_LONG_CRON_NUMBER = re.compile(r"\d{20}")


def _cron_problem(expr: str) -> str | None:
    fields = expr.split()
    if len(fields) == len(CRON_FIELDS):
        for name, text in zip(CRON_FIELDS, fields, strict=True):
            if _LONG_CRON_NUMBER.search(text):
                return f"bad {name} in cron expression {quote(expr)}"
    problem = cron_problem(expr)
    # schedule.py echoes the expression whole; a long one is cut short here.
    return problem and problem.replace(f'"{expr}"', quote(expr))


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
