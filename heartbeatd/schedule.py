"""When the next ping is due: a fixed period, or a cron expression in a time zone.

UTC goes in and UTC comes out; local time exists only inside `next_after`, so
the rest of heartbeatd never meets an ambiguous or missing wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from heartbeatd.durations import format_duration

UTC = timezone.utc

# Field names in crontab order, for the "wrong number of fields" message.
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")

# Any fixed instant will do: validation only asks whether the expression ever fires.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """A cron expression that never fires, found only when asked for a tick."""


# slots: no __dict__ per instance; the engine and states hold many of these.
@dataclass(frozen=True, slots=True)
class Schedule:
    """Exactly one of `period` (seconds) or `cron` is set."""

    period: int | None = None
    cron: str | None = None
    # IANA name; only cron schedules use it (a period is the same in every zone).
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if (self.period is None) == (self.cron is None):
            raise ValueError("a Schedule needs exactly one of period or cron")

    def next_after(self, after: datetime) -> datetime:
        """The first expected time strictly after `after` (tz-aware; UTC out)."""
        if after.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        after = after.astimezone(UTC)
        if self.period is not None:
            return after + timedelta(seconds=self.period)
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        # cronsim walks local wall-clock time; for a job at a fixed hour it
        # moves a tick that falls in a spring-forward gap to the end of the
        # gap, and runs a tick in an autumn fold once (the first time), as
        # Debian cron does. A local time inside the fold can map back before
        # `after`, so skip ticks until one is really later.
        for tick in CronSim(self.cron, after.astimezone(zone)):
            result = tick.astimezone(UTC)
            if result > after:
                return result
        raise ScheduleError(f"cron expression {self.cron!r} never fires")

    def describe(self) -> str:
        """ "every 1h30m" or "cron 0 2 * * * (Europe/Riga)"."""
        if self.period is not None:
            return f"every {format_duration(self.period)}"
        return f"cron {self.cron} ({self.timezone})"


# Many monitors share an expression ("0 2 * * *"); probing cronsim for each
# one is most of the cost of loading a big cron-based config.
@lru_cache(maxsize=1024)
def cron_problem(expr: str) -> str | None:
    """None for a usable cron expression, else a message naming the bad field."""
    fields = expr.split()
    # cronsim also takes a 6-field form with seconds; crontab and Healthchecks
    # clients use 5, and a seconds field makes no sense for a heartbeat.
    if len(fields) != len(CRON_FIELDS):
        names = " ".join(CRON_FIELDS)
        return f'expected a cron expression of 5 fields ({names}), got {len(fields)} in "{expr}"'
    try:
        next(CronSim(expr, _PROBE))
    except CronSimError as exc:
        # cronsim says "Bad day-of-week": name the field, show the expression.
        reason = str(exc)
        return f'{reason[:1].lower()}{reason[1:]} in cron expression "{expr}"'
    except StopIteration:
        return f'cron expression "{expr}" never fires'
    return None


def timezone_problem(name: str) -> str | None:
    """None for a known IANA time zone name, else a message."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        # KeyError is ZoneInfoNotFoundError; ValueError and OSError come from
        # names that are not zone keys at all ("../x", "Europe", "").
        return f'unknown time zone "{name}"; expected an IANA name like "Europe/Riga" or "UTC"'
    return None
