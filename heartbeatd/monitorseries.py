"""The per-monitor families of /metrics, and the table of monitors they read.

At 100,000 monitors these families are about a million lines and most of a
scrape's CPU, so they are written for it: each monitor's labels are made
once a page (metrics.render_pieces), the families read the states
themselves rather than an object made per monitor, and a state set's five
lines are one str.join. Each piece holds at most CHUNK monitors' lines, so
the caller can let pings run between two pieces.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from heartbeatd.exposition import header, number
from heartbeatd.model import Status

# Monitors per piece of a per-monitor family: 1-2 ms of formatting on a quiet core.
CHUNK = 100


class MonitorFacts(Protocol):
    """What the per-monitor families read of a monitor's state as it is
    (a MonitorState or a MonitorView has it)."""

    @property
    def status(self) -> Status: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def last_ping(self) -> datetime | None: ...
    @property
    def last_duration(self) -> float | None: ...
    @property
    def expected_at(self) -> datetime | None: ...


class MonitorRow(MonitorFacts, Protocol):
    """One monitor with all the per-monitor families show (a MonitorView has it)."""

    @property
    def slug(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def down_at(self) -> datetime | None: ...
    @property
    def is_held(self) -> bool: ...
    @property
    def tags(self) -> tuple[str, ...]: ...


class MonitorTable(ABC):
    """The monitors of one moment, read a slice at a time.

    The page reads each slice's facts, slugs and names once, in its first
    pass; the figures that take work to derive (down_at, held) are asked for
    once, by the one family that shows them.
    """

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def facts(self, start: int, stop: int) -> Sequence[MonitorFacts]: ...

    @abstractmethod
    def slugs_and_names(self, start: int, stop: int) -> Sequence[tuple[str, str]]: ...

    @abstractmethod
    def down_at(self, start: int, stop: int) -> Iterable[datetime | None]: ...

    @abstractmethod
    def held(self, start: int, stop: int) -> Iterable[bool]: ...

    @abstractmethod
    def tags(self, start: int, stop: int) -> Iterable[tuple[str, ...]]: ...


class RowTable(MonitorTable):
    """Monitors given as rows with every figure at hand (views, tests)."""

    def __init__(self, rows: Sequence[MonitorRow]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def facts(self, start: int, stop: int) -> Sequence[MonitorFacts]:
        return self.rows[start:stop]

    def slugs_and_names(self, start: int, stop: int) -> Sequence[tuple[str, str]]:
        return [(row.slug, row.name) for row in self.rows[start:stop]]

    def down_at(self, start: int, stop: int) -> Iterable[datetime | None]:
        return [row.down_at for row in self.rows[start:stop]]

    def held(self, start: int, stop: int) -> Iterable[bool]:
        return [row.is_held for row in self.rows[start:stop]]

    def tags(self, start: int, stop: int) -> Iterable[tuple[str, ...]]:
        return [row.tags for row in self.rows[start:stop]]


def as_table(monitors: MonitorTable | Sequence[MonitorRow]) -> MonitorTable:
    return monitors if isinstance(monitors, MonitorTable) else RowTable(monitors)


# The per-monitor families. Each formats one slice of CHUNK monitors per
# piece, from the page's labels and facts; a sample that is not known (None)
# has no line. Times are whole Unix seconds, as the API publishes them. The
# loops are written out, family by family: a function called per line would
# cost as much as the line.


STATUS_HELP = "1 for the monitor's current status, 0 for the others."


def monitor_families(
    table: MonitorTable, labels: list[str], slugs: list[str], facts: list[MonitorFacts]
) -> Iterator[str]:
    n = len(labels)
    up = Status.UP

    name = "heartbeatd_monitor_up"
    yield header(name, "gauge", "1 if the monitor is up, else 0 (new, late, down or paused).")
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {1 if f.status is up else 0}\n"
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
            ]
        )
    yield from _status_family(labels, facts)
    name = "heartbeatd_monitor_running"
    yield header(
        name, "gauge", "1 while a run is in progress (a start ping without its finish), else 0."
    )
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {0 if f.started_at is None else 1}\n"
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
            ]
        )
    name = "heartbeatd_monitor_last_ping_timestamp_seconds"
    yield header(name, "gauge", "When the last ping of any kind came in (Unix time).")
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {int(f.last_ping.timestamp())}\n"
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
                if f.last_ping is not None
            ]
        )
    name = "heartbeatd_monitor_last_duration_seconds"
    yield header(
        name, "gauge", "How long the last measured run took (from its start ping to its finish)."
    )
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {number(f.last_duration)}\n"
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
                if f.last_duration is not None
            ]
        )
    name = "heartbeatd_monitor_expected_timestamp_seconds"
    yield header(name, "gauge", "When the next success is due (Unix time).")
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {int(f.expected_at.timestamp())}\n"
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
                if f.expected_at is not None
            ]
        )
    name = "heartbeatd_monitor_down_at_timestamp_seconds"
    yield header(
        name,
        "gauge",
        "When the monitor went down (while down), or will go down without a ping (Unix time).",
    )
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {int(when.timestamp())}\n"
                for label, when in zip(labels[start:stop], table.down_at(start, stop), strict=True)
                if when is not None
            ]
        )
    name = "heartbeatd_monitor_held"
    yield header(
        name,
        "gauge",
        "1 while the monitor's alerts are held (a threshold, a snooze, a maintenance window).",
    )
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {1 if held else 0}\n"
                for label, held in zip(labels[start:stop], table.held(start, stop), strict=True)
            ]
        )
    yield from _tag_family(table, slugs)


def _tag_family(table: MonitorTable, slugs: list[str]) -> Iterator[str]:
    # An info-style family, one series per (monitor, tag): join on `monitor`
    # to select by tag, e.g. heartbeatd_monitor_up * on(monitor)
    # group_left heartbeatd_monitor_tag{tag="db"}.
    name = "heartbeatd_monitor_tag"
    yield header(name, "gauge", "1 for each tag of a monitor.")
    for start in range(0, len(slugs), CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f'{name}{{monitor="{slug}",tag="{tag}"}} 1\n'
                for slug, tags in zip(slugs[start:stop], table.tags(start, stop), strict=True)
                for tag in tags
            ]
        )


def _status_family(labels: list[str], facts: list[MonitorFacts]) -> Iterator[str]:
    name = "heartbeatd_monitor_status"
    yield header(name, "gauge", STATUS_HELP)
    # A state set: per monitor, a line for each status, 1 for its own. Its
    # five lines are the pieces of its own status joined by its labels: one
    # C call, with no format string to parse.
    pieces = {
        own: [name, *(f',status="{s.value}"}} {int(s is own)}\n{name}' for s in Status)]
        for own in Status
    }
    for own in pieces.values():
        own[-1] = own[-1].removesuffix(name)
    for start in range(0, len(labels), CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                label.join(pieces[f.status])
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
            ]
        )
