"""Prometheus metrics: text exposition format 0.0.4, rendered from a snapshot.

`render_metrics` is pure: the web layer collects a `Snapshot` (monitor views, counters,
outbox and reload figures) and this module only formats it, so the output is
tested without a daemon. A time that is not known (a monitor never pinged) has
no sample rather than a made-up 0, so `time() - metric` never alerts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from heartbeatd.model import MonitorView, PingKind, Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReloadStats(Protocol):
    """What the daemon counts about config reloads (reloading.Reloads)."""

    ok: int
    failed: int
    last_at: datetime | None
    last_ok: bool


@dataclass(frozen=True)
class Snapshot:
    # Engine.view of each configured monitor.
    monitors: Sequence[MonitorView]
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
    # Pings to a uuid or slug no monitor has, since the daemon started.
    unknown_pings: int = 0


Sample = tuple[Mapping[str, str], float]


def render_metrics(snap: Snapshot) -> str:
    """The whole /metrics page."""
    out: list[str] = []
    _monitor_families(out, snap.monitors)
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


def _monitor_families(out: list[str], monitors: Sequence[MonitorView]) -> None:
    def labels(m: MonitorView, **extra: str) -> dict[str, str]:
        return {"monitor": m.slug, "name": m.name, **extra}

    def times(field: Callable[[MonitorView], datetime | None]) -> list[Sample]:
        return [(labels(m), when.timestamp()) for m in monitors if (when := field(m)) is not None]

    _family(
        out,
        "heartbeatd_monitor_up",
        "gauge",
        "1 if the monitor is up, else 0 (new, late, down or paused).",
        [(labels(m), int(m.status is Status.UP)) for m in monitors],
    )
    _family(
        out,
        "heartbeatd_monitor_status",
        "gauge",
        "1 for the monitor's current status, 0 for the others.",
        [(labels(m, status=s.value), int(m.status is s)) for m in monitors for s in Status],
    )
    _family(
        out,
        "heartbeatd_monitor_running",
        "gauge",
        "1 while a run is in progress (a start ping without its finish), else 0.",
        [(labels(m), int(m.started_at is not None)) for m in monitors],
    )
    _family(
        out,
        "heartbeatd_monitor_last_ping_timestamp_seconds",
        "gauge",
        "When the last ping of any kind came in (Unix time).",
        times(lambda m: m.last_ping),
    )
    _family(
        out,
        "heartbeatd_monitor_last_duration_seconds",
        "gauge",
        "How long the last measured run took (from its start ping to its finish).",
        [(labels(m), m.last_duration) for m in monitors if m.last_duration is not None],
    )
    _family(
        out,
        "heartbeatd_monitor_expected_timestamp_seconds",
        "gauge",
        "When the next success is due (Unix time).",
        times(lambda m: m.expected_at),
    )
    _family(
        out,
        "heartbeatd_monitor_down_at_timestamp_seconds",
        "gauge",
        "When the monitor went down (while down), or will go down without a ping (Unix time).",
        times(lambda m: m.down_at),
    )
    _family(
        out,
        "heartbeatd_monitor_held",
        "gauge",
        "1 while the monitor's alerts are held (a threshold, a snooze, a maintenance window).",
        [(labels(m), int(m.is_held)) for m in monitors],
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


def _family(out: list[str], name: str, kind: str, text: str, samples: Iterable[Sample]) -> None:
    out.append(f"# HELP {name} {_escape_help(text)}\n")
    out.append(f"# TYPE {name} {kind}\n")
    for labels, value in samples:
        out.append(f"{name}{_labels(labels)} {_number(value)}\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in labels.items())
    return "{" + pairs + "}"


def escape_label_value(value: str) -> str:
    """A label value as format 0.0.4 writes it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
