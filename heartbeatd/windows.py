"""Maintenance windows (`[maintenance.<name>]`): when each is open.

Pure: a window is a cron schedule of starts, in its timezone, and a
duration; `span_at` says whether one is open at a given time. Which
monitors a window selects is settled when the config is read, which hands
each monitor the windows that apply to it (policy.py holds their alerts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from heartbeatd.schedule import Schedule


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    # A cron schedule: when each window starts, in its timezone.
    schedule: Schedule
    # Seconds each window stays open.
    duration: int
    # What it selects, as written: slugs, tags, or every monitor ("*").
    monitors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def selects_all(self) -> bool:
        return "*" in self.monitors

    def span_at(self, at: datetime) -> tuple[datetime, datetime] | None:
        """(start, end) of the window open at `at` (end excluded), if any."""
        length = timedelta(seconds=self.duration)
        start = self.schedule.next_after(at - length)
        if start > at:
            return None
        # Windows longer than their period overlap: the latest start counts.
        while True:
            following = self.schedule.next_after(start)
            if following > at:
                return start, start + length
            start = following

    def next_start(self, after: datetime) -> datetime:
        return self.schedule.next_after(after)
