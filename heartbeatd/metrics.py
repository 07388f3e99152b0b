"""Prometheus metrics: text exposition format 0.0.4, rendered from a snapshot.

`render_pieces` is pure: the web layer collects a `Snapshot` (monitors,
counters, outbox, reload and loop figures) and this module only formats it,
so the output is tested without a daemon. A time that is not known (a monitor
never pinged) has no sample rather than a made-up 0, so `time() - metric`
never alerts on it.

At 100,000 monitors the per-monitor families are about a million lines. They
come in pieces of at most CHUNK monitors' lines (and the status counts in
pieces of COUNT_CHUNK monitors), so the caller can let pings run between two
pieces: no piece holds the event loop for more than a few milliseconds.

The per-monitor families take most of a scrape's CPU, so they are written
for it: each monitor's labels are made once a page (not once a line), the
families read the states themselves rather than an object made per monitor,
and a state set's five lines are one str.join. Three to four times less CPU
than a row object and a label string per line (bench/metrics_render.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from heartbeatd.model import PingKind, Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Monitors per piece of a per-monitor family: 1-2 ms of formatting on a quiet core.
CHUNK = 100
# Monitors per piece of the count by status (a cheap pass).
COUNT_CHUNK = 1000


class ReloadStats(Protocol):
    """What the daemon counts about config reloads (reloading.Reloads)."""

    ok: int
    failed: int
    last_at: datetime | None
    last_ok: bool


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


@dataclass(frozen=True)
class LoopFigures:
    """The stall meter's figures (looplag.LoopLag), in seconds."""

    last: float
    worst: float
    stalls: int


@dataclass(frozen=True)
class Snapshot:
    # Each configured monitor: a table read a slice at a time, or rows.
    monitors: MonitorTable | Sequence[MonitorRow]
    pings_by_kind: Mapping[str, int]
    alerts_sent: Mapping[str, int]
    alerts_failed: Mapping[str, int]
    version: str
    python: str
    # None when the outbox could not be read: the gauge is left out.
    outbox_pending: int | None = None
    reloads_ok: int = 0
    reloads_failed: int = 0
    last_reload_at: datetime | None = None
    last_reload_ok: bool = True
    channels: Sequence[str] = field(default_factory=tuple)
    # (event, monitor) -> notices raised: overlaps and runtime anomalies.
    notices: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # [metrics] per_monitor: False leaves out every per-monitor family.
    per_monitor: bool = True
    loop: LoopFigures | None = None
    # Pings to a uuid or slug no monitor has, since the daemon started.
    unknown_pings: int = 0


Sample = tuple[Mapping[str, str], float]


def render_metrics(snap: Snapshot) -> str:
    """The whole /metrics page in one string (small installs, tests)."""
    return "".join(render_pieces(snap))


def render_pieces(snap: Snapshot) -> Iterator[str]:
    """The /metrics page in pieces; some may be empty (a pause in a long pass)."""
    table = as_table(snap.monitors)
    per_monitor = snap.per_monitor
    counts: Counter[Status] = Counter()
    # The first pass reads each monitor's labels and facts once for the
    # whole page (lists of references, freed with the page): every family
    # after it only formats.
    labels: list[str] = []
    slugs: list[str] = []
    facts: list[MonitorFacts] = []
    step = CHUNK if per_monitor else COUNT_CHUNK
    for start in range(0, len(table), step):
        stop = start + step
        chunk = table.facts(start, stop)
        counts.update([f.status for f in chunk])
        if per_monitor:
            facts += chunk
            names = table.slugs_and_names(start, stop)
            slugs += [slug for slug, _ in names]
            # Slugs are [a-z0-9_-]: nothing in them to escape. The closing
            # brace is left for each family to write (the status family
            # adds a label first).
            labels += [
                f'{{monitor="{slug}",name="{escape_label_value(name)}"' for slug, name in names
            ]
        yield ""
    out: list[str] = []
    _family(
        out,
        "heartbeatd_monitors",
        "gauge",
        "Configured monitors, by status.",
        [({"status": s.value}, counts[s]) for s in Status],
    )
    yield "".join(out)
    if per_monitor:
        yield from _monitor_families(table, labels, slugs, facts)
    yield _aggregate_families(snap)


def _aggregate_families(snap: Snapshot) -> str:
    out: list[str] = []
    kinds = {kind.value: 0 for kind in PingKind} | dict(snap.pings_by_kind)
    _family(
        out,
        "heartbeatd_pings_total",
        "counter",
        "Pings received since the daemon started, by kind.",
        [({"kind": kind}, n) for kind, n in sorted(kinds.items())],
    )
    _family(
        out,
        "heartbeatd_unknown_pings_total",
        "counter",
        "Pings to a uuid or slug that no monitor has, since the daemon started.",
        [({}, snap.unknown_pings)],
    )
    # Every configured channel gets a series from the start, so rate() works
    # from the first alert on.
    for name, counts, text in (
        ("heartbeatd_alerts_sent_total", snap.alerts_sent, "Alerts delivered"),
        ("heartbeatd_alerts_failed_total", snap.alerts_failed, "Alerts given up on"),
    ):
        per_channel = dict.fromkeys(snap.channels, 0) | dict(counts)
        _family(
            out,
            name,
            "counter",
            f"{text} since the daemon started, by channel.",
            [({"channel": c}, n) for c, n in sorted(per_channel.items())],
        )
    if snap.outbox_pending is not None:
        _family(
            out,
            "heartbeatd_outbox_pending",
            "gauge",
            "Alerts waiting in the outbox for a (first or next) delivery attempt.",
            [({}, snap.outbox_pending)],
        )
    if snap.loop is not None:
        _loop_families(out, snap.loop)
    _reload_families(out, snap)
    _notice_families(out, snap)
    _family(
        out,
        "heartbeatd_build_info",
        "gauge",
        "Always 1; the labels tell the heartbeatd and Python versions.",
        [({"version": snap.version, "python": snap.python}, 1)],
    )
    return "".join(out)


def _loop_families(out: list[str], loop: LoopFigures) -> None:
    _family(
        out,
        "heartbeatd_loop_lag_seconds",
        "gauge",
        "How late the event loop last ran a task that was due (pings wait as long).",
        [({}, loop.last)],
    )
    _family(
        out,
        "heartbeatd_loop_lag_max_seconds",
        "gauge",
        "The longest event loop stall since the daemon started.",
        [({}, loop.worst)],
    )
    _family(
        out,
        "heartbeatd_loop_stalls_total",
        "counter",
        "Event loop stalls long enough to be logged, since the daemon started.",
        [({}, loop.stalls)],
    )


# The per-monitor families. Each formats one slice of CHUNK monitors per
# piece, from the page's labels and facts; a sample that is not known (None)
# has no line. Times are whole Unix seconds, as the API publishes them. The
# loops are written out, family by family: a function called per line would
# cost as much as the line.


STATUS_HELP = "1 for the monitor's current status, 0 for the others."


def _monitor_families(
    table: MonitorTable, labels: list[str], slugs: list[str], facts: list[MonitorFacts]
) -> Iterator[str]:
    n = len(labels)
    up = Status.UP

    name = "heartbeatd_monitor_up"
    yield _header(name, "gauge", "1 if the monitor is up, else 0 (new, late, down or paused).")
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
    yield _header(
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
    yield _header(name, "gauge", "When the last ping of any kind came in (Unix time).")
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
    yield _header(
        name, "gauge", "How long the last measured run took (from its start ping to its finish)."
    )
    for start in range(0, n, CHUNK):
        stop = start + CHUNK
        yield "".join(
            [
                f"{name}{label}}} {_number(f.last_duration)}\n"
                for label, f in zip(labels[start:stop], facts[start:stop], strict=True)
                if f.last_duration is not None
            ]
        )
    name = "heartbeatd_monitor_expected_timestamp_seconds"
    yield _header(name, "gauge", "When the next success is due (Unix time).")
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
    yield _header(
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
    yield _header(
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
    yield _header(name, "gauge", "1 for each tag of a monitor.")
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
    yield _header(name, "gauge", STATUS_HELP)
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


def _reload_families(out: list[str], snap: Snapshot) -> None:
    _family(
        out,
        "heartbeatd_config_reloads_total",
        "counter",
        "Config reloads (SIGHUP) since the daemon started, by result.",
        [({"result": "success"}, snap.reloads_ok), ({"result": "failure"}, snap.reloads_failed)],
    )
    if snap.last_reload_at is not None:
        _family(
            out,
            "heartbeatd_config_last_reload_timestamp_seconds",
            "gauge",
            "When the config was last reloaded (Unix time).",
            [({}, snap.last_reload_at.timestamp())],
        )
    _family(
        out,
        "heartbeatd_config_last_reload_success",
        "gauge",
        "1 if the last reload succeeded (or none was tried), 0 if the file was rejected.",
        [({}, int(snap.last_reload_ok))],
    )


# Notice events and the counter each is told in.
NOTICE_FAMILIES = (
    ("overlap", "heartbeatd_overlaps_total", "Runs started while another was still open"),
    ("anomaly", "heartbeatd_runtime_anomalies_total", "Runs far longer or shorter than usual"),
)


def _notice_families(out: list[str], snap: Snapshot) -> None:
    # A series per monitor that has had one: with 100,000 monitors, a zero
    # for each would be most of the page.
    for event, name, text in NOTICE_FAMILIES:
        counts = sorted((slug, n) for (kind, slug), n in snap.notices.items() if kind == event)
        samples = [({"monitor": slug}, n) for slug, n in counts]
        _family(out, name, "counter", f"{text}, since the daemon started, by monitor.", samples)


def _header(name: str, kind: str, text: str) -> str:
    return f"# HELP {name} {_escape_help(text)}\n# TYPE {name} {kind}\n"


def _family(out: list[str], name: str, kind: str, text: str, samples: Iterable[Sample]) -> None:
    out.append(_header(name, kind, text))
    for labels, value in samples:
        out.append(f"{name}{_labels(labels)} {_number(value)}\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in labels.items())
    return "{" + pairs + "}"


def escape_label_value(value: str) -> str:
    """A label value as format 0.0.4 writes it: backslash, quote and newline escaped."""
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if type(value) is int:
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
