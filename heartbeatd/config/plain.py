"""The fast path of the monitor readers, and what both readers share.

A config may hold 100,000 monitors, so each is first tried here
(`read_plain_monitor`, straight from the dict) and read again by the full
Table reader in monitors.py only when this declines: anything unusual, and
every error, which the full reader words. Both build the same `Monitor`
from any table this accepts (tests/test_config_monitors.py holds them to it).

A generated file repeats a few table shapes (`period = "1h"`, say) for
thousands of monitors: each shape is read once, and its other monitors only
take their slug (and name) from it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, fields
from typing import Any, Final

from heartbeatd.config.runrules import RUN_KEYS
from heartbeatd.config.values import Monitor
from heartbeatd.durations import DurationError, parse_duration, quote
from heartbeatd.names import canonical_uuid, name_problem, tag_problem, uuid_problem
from heartbeatd.schedule import CRON_FIELDS, Schedule, timezone_problem
from heartbeatd.schedule import cron_problem as schedule_cron_problem
from heartbeatd.tables import INT64


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


# Every key a [monitors.<slug>] table may have.
MONITOR_KEYS = frozenset(
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
SLOW_KEYS = frozenset((*RUN_KEYS, "alert_after", "recover_after", "depends_on"))


class _Bad(enum.Enum):
    """A value `plain_duration` could not read, unlike None, which [defaults] may hold."""

    BAD = enum.auto()


_BAD: Final = _Bad.BAD


class Shared:
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
        # Each table shape read so far: the fields of its monitor, or None
        # if the fast path declined it.
        self.shapes: dict[tuple[Any, ...], dict[str, Any] | None] = {}

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


def read_plain_monitor(slug: str, data: dict[str, Any], shared: Shared) -> Monitor | None:
    """The common case, read straight from the dict without a Table.

    None unless every key is known and every value valid: then the full
    reader reads the entry again and reports what is wrong, so messages are
    worded in one place.
    """
    if name_problem(slug) is not None:
        return None
    values = tuple(data.values())
    # The types too: 1 == 1.0 == True, but `grace = true` is an error.
    shape = (tuple(data), tuple(map(type, values)), values)
    try:
        seen = shape in shared.shapes
    except TypeError:
        # A list value (tags, channels): not hashable, read on its own.
        return _read_plain(slug, data, shared)
    if not seen:
        monitor = _read_plain(slug, data, shared)
        shared.shapes[shape] = None if monitor is None else _fields(monitor)
        return monitor
    known = shared.shapes[shape]
    if known is None:
        return None
    name = known["name"] if "name" in data else slug
    return Monitor(**{**known, "slug": slug, "name": name})


_FIELDS = tuple(f.name for f in fields(Monitor))


def _fields(monitor: Monitor) -> dict[str, Any]:
    return {name: getattr(monitor, name) for name in _FIELDS}


def _read_plain(slug: str, data: dict[str, Any], shared: Shared) -> Monitor | None:
    if not data.keys() <= MONITOR_KEYS or not SLOW_KEYS.isdisjoint(data):
        return None
    defaults = shared.defaults
    name = data.get("name", slug)
    description = data.get("description", "")
    schedule = _plain_schedule(data, shared)
    grace = plain_duration(data["grace"]) if "grace" in data else defaults.grace
    max_runtime: int | _Bad | None = defaults.max_runtime
    if "max_runtime" in data:
        max_runtime = plain_duration(data["max_runtime"])
    repeat: int | _Bad | None = defaults.repeat
    if "repeat" in data:
        # `repeat = false` turns off reminders inherited from [defaults].
        repeat = None if data["repeat"] is False else plain_duration(data["repeat"])
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


def plain_duration(value: object) -> int | _Bad:
    # bool is an int, and a duration error is worded by Table.duration.
    if type(value) is not str and type(value) is not int:
        return _BAD
    try:
        return parse_duration(value)
    except DurationError:
        return _BAD


def _plain_schedule(data: dict[str, Any], shared: Shared) -> Schedule | None:
    zone = data.get("timezone", shared.defaults.timezone)
    if type(zone) is not str or not shared.is_zone(zone):
        return None
    has_period, has_cron = "period" in data, "schedule" in data
    if has_period == has_cron:
        return None
    if has_period:
        period = plain_duration(data["period"])
        return None if period is _BAD else shared.schedule(period, None, zone)
    cron = data["schedule"]
    if type(cron) is not str or cron_problem(cron) is not None:
        return None
    return shared.schedule(None, " ".join(cron.split()), zone)


# Far past any value a cron field takes, and far short of the 4,300 digits
# at which cronsim's int() would raise instead of reporting a bad field.
_LONG_CRON_NUMBER = re.compile(r"\d{20}")


def cron_problem(expr: str) -> str | None:
    fields = expr.split()
    if len(fields) == len(CRON_FIELDS):
        for name, text in zip(CRON_FIELDS, fields, strict=True):
            if _LONG_CRON_NUMBER.search(text):
                return f"bad {name} in cron expression {quote(expr)}"
    problem = schedule_cron_problem(expr)
    # schedule.py echoes the expression whole; a long one is cut short here.
    return problem and problem.replace(f'"{expr}"', quote(expr))
