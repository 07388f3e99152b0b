"""When the next ping is due: a fixed period, or cron or systemd OnCalendar
expressions (one or several) in a time zone.

UTC goes in and UTC comes out; local time exists only inside `next_after`, so
the rest of heartbeatd never meets an ambiguous or missing wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from oncalendar import OnCalendarError, TzIterator

from heartbeatd.durations import format_duration

UTC = timezone.utc

# Field names in crontab order, for the "wrong number of fields" message.
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")

# Any fixed instant will do: validation only asks whether the expression ever fires.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
# OnCalendar expressions may name a year ("2031-*-* 02:00"), so one that fires
# in 2000 may stop firing long before anyone looks again. A heartbeat needs a
# schedule that repeats: ask whether it still fires this late (the oncalendar
# package, like systemd, stops at 2200).
_ONCALENDAR_PROBE = datetime(2150, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """A cron expression that never fires, found only when asked for a tick."""


# slots: no __dict__ per instance; the engine and states hold many of these.
@dataclass(frozen=True, slots=True)
class Schedule:
    """Exactly one of `period` (seconds), `cron` or `oncalendar` is set.

    `cron` is one expression or a tuple of several; `oncalendar` is a tuple of
    systemd calendar expressions. With several, a ping is due whenever any of
    them fires.
    """

    period: int | None = None
    cron: str | tuple[str, ...] | None = None
    # IANA name; only calendar schedules use it (a period is the same in every zone).
    timezone: str = "UTC"
    oncalendar: tuple[str, ...] | None = None
    # Seconds: a success this long before a scheduled time counts as that
    # time's run (calendar schedules only; see expected_after).
    early: int = 0

    def __post_init__(self) -> None:
        given = [x for x in (self.period, self.cron, self.oncalendar) if x is not None]
        if len(given) != 1:
            raise ValueError("a Schedule needs exactly one of period, cron or oncalendar")
        if self.early and self.period is not None:
            raise ValueError("early needs a cron or OnCalendar schedule")

    @property
    def crons(self) -> tuple[str, ...]:
        if self.cron is None:
            return ()
        return (self.cron,) if isinstance(self.cron, str) else self.cron

    def next_after(self, after: datetime) -> datetime:
        """The first expected time strictly after `after` (tz-aware; UTC out)."""
        if after.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        after = after.astimezone(UTC)
        if self.period is not None:
            return after + timedelta(seconds=self.period)
        zone = ZoneInfo(self.timezone)
        local = after.astimezone(zone)
        if self.oncalendar is not None:
            return min(_next_oncalendar(expr, after, local) for expr in self.oncalendar)
        return min(_next_cron(expr, after, local) for expr in self.crons)

    def expected_after(self, success: datetime) -> datetime:
        """When the run after a success at `success` is due.

        The first scheduled time later than `success + early`: a job that
        starts a little before its time (clock skew, a random sleep) has done
        that time's run, and the monitor must not expect the same time again.
        """
        if not self.early:
            return self.next_after(success)
        return self.next_after(success + timedelta(seconds=self.early))

    def describe(self) -> str:
        """ "every 1h30m", "cron 0 2 * * * (Europe/Riga)" or "OnCalendar daily (UTC)"."""
        if self.period is not None:
            return f"every {format_duration(self.period)}"
        early = f", early {format_duration(self.early)}" if self.early else ""
        if self.oncalendar is not None:
            return f"OnCalendar {'; '.join(self.oncalendar)} ({self.timezone}{early})"
        return f"cron {'; '.join(self.crons)} ({self.timezone}{early})"


def _next_cron(expr: str, after: datetime, local: datetime) -> datetime:
    # cronsim walks local wall-clock time; for a job at a fixed hour it
    # moves a tick that falls in a spring-forward gap to the end of the
    # gap, and runs a tick in an autumn fold once (the first time), as
    # Debian cron does. A local time inside the fold can map back before
    # `after`, so skip ticks until one is really later.
    for tick in CronSim(expr, local):
        result = tick.astimezone(UTC)
        if result > after:
            return result
    raise ScheduleError(f"cron expression {expr!r} never fires")


def _next_oncalendar(expr: str, after: datetime, local: datetime) -> datetime:
    # The oncalendar package mimics systemd: a time in a spring-forward gap
    # is skipped, one in an autumn fold fires once, the first time
    # (tests/test_oncalendar.py holds both to systemd-analyze). An
    # expression may name its own zone ("... Europe/Riga"), which wins over
    # the monitor's, as it does in a .timer unit.
    for tick in TzIterator(expr, local):
        result = tick.astimezone(UTC)
        if result > after:
            return result
    raise ScheduleError(f"OnCalendar expression {expr!r} never fires")


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


@lru_cache(maxsize=1024)
def oncalendar_problem(expr: str) -> str | None:
    """None for a usable systemd OnCalendar expression, else a message."""
    if not expr.strip() or "\n" in expr:
        return f'expected one OnCalendar expression like "Mon..Fri *-*-* 09:00", got "{expr}"'
    try:
        next(TzIterator(expr, _ONCALENDAR_PROBE))
    except OnCalendarError as exc:
        # oncalendar says "Bad hour", as cronsim does: name the field.
        reason = str(exc)
        return f'{reason[:1].lower()}{reason[1:]} in OnCalendar expression "{expr}"'
    except StopIteration:
        return f'OnCalendar expression "{expr}" stops firing; a monitor needs one that repeats'
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
