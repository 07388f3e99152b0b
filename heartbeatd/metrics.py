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

The per-monitor families (monitorseries.py) take most of a scrape's CPU:
the first pass here reads each monitor's labels once a page, not once a
line. The text format itself is exposition.py's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from heartbeatd.exposition import escape_label_value, family
from heartbeatd.model import PingKind, Status
from heartbeatd.monitorseries import (
    CHUNK,
    MonitorFacts,
    MonitorRow,
    MonitorTable,
    as_table,
    monitor_families,
)

# Monitors per piece of the count by status (a cheap pass).
COUNT_CHUNK = 1000


class ReloadStats(Protocol):
    """What the daemon counts about config reloads (reloading.Reloads)."""

    ok: int
    failed: int
    last_at: datetime | None
    last_ok: bool


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
    family(
        out,
        "heartbeatd_monitors",
        "gauge",
        "Configured monitors, by status.",
        [({"status": s.value}, counts[s]) for s in Status],
    )
    yield "".join(out)
    if per_monitor:
        yield from monitor_families(table, labels, slugs, facts)
    yield _aggregate_families(snap)


def _aggregate_families(snap: Snapshot) -> str:
    out: list[str] = []
    kinds = {kind.value: 0 for kind in PingKind} | dict(snap.pings_by_kind)
    family(
        out,
        "heartbeatd_pings_total",
        "counter",
        "Pings received since the daemon started, by kind.",
        [({"kind": kind}, n) for kind, n in sorted(kinds.items())],
    )
    family(
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
        family(
            out,
            name,
            "counter",
            f"{text} since the daemon started, by channel.",
            [({"channel": c}, n) for c, n in sorted(per_channel.items())],
        )
    if snap.outbox_pending is not None:
        family(
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
    family(
        out,
        "heartbeatd_build_info",
        "gauge",
        "Always 1; the labels tell the heartbeatd and Python versions.",
        [({"version": snap.version, "python": snap.python}, 1)],
    )
    return "".join(out)


def _loop_families(out: list[str], loop: LoopFigures) -> None:
    family(
        out,
        "heartbeatd_loop_lag_seconds",
        "gauge",
        "How late the event loop last ran a task that was due (pings wait as long).",
        [({}, loop.last)],
    )
    family(
        out,
        "heartbeatd_loop_lag_max_seconds",
        "gauge",
        "The longest event loop stall since the daemon started.",
        [({}, loop.worst)],
    )
    family(
        out,
        "heartbeatd_loop_stalls_total",
        "counter",
        "Event loop stalls long enough to be logged, since the daemon started.",
        [({}, loop.stalls)],
    )


def _reload_families(out: list[str], snap: Snapshot) -> None:
    family(
        out,
        "heartbeatd_config_reloads_total",
        "counter",
        "Config reloads (SIGHUP) since the daemon started, by result.",
        [({"result": "success"}, snap.reloads_ok), ({"result": "failure"}, snap.reloads_failed)],
    )
    if snap.last_reload_at is not None:
        family(
            out,
            "heartbeatd_config_last_reload_timestamp_seconds",
            "gauge",
            "When the config was last reloaded (Unix time).",
            [({}, snap.last_reload_at.timestamp())],
        )
    family(
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
        family(out, name, "counter", f"{text}, since the daemon started, by monitor.", samples)
