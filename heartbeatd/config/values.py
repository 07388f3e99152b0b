"""What a loaded config is: frozen values, built by `load_config` and never
changed after; a reload builds a new `Config` and swaps it in whole."""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from heartbeatd import pingurl
from heartbeatd.addresses import DEFAULT_LISTEN
from heartbeatd.apikeys import ApiKey
from heartbeatd.channels.email import SmtpOptions
from heartbeatd.keywords import PingFilter
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.schedule import Schedule
from heartbeatd.windows import Window

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The events a channel's `events` may name.
CHANNEL_EVENTS = (
    AlertEvent.DOWN,
    AlertEvent.UP,
    AlertEvent.REMINDER,
    AlertEvent.ESCALATION,
    AlertEvent.OVERLAP,
    AlertEvent.ANOMALY,
    AlertEvent.LATE,
    AlertEvent.HELD,
)
# What a channel hears unless its `events` says otherwise; late and held are
# opt-in. Overlap and anomaly are raised only for monitors that asked for
# them (max_concurrent, runtime_anomaly), so every channel hears them.
DEFAULT_EVENTS = frozenset(CHANNEL_EVENTS[:6])

# As Healthchecks: an hour after the expected time before a monitor goes down.
DEFAULT_GRACE = 3600
MAX_BODY_LIMIT = 10 * 1024 * 1024
# [server] reload_max_removed: the share of monitors one reload may remove
# without `heartbeatd reload --force`.
DEFAULT_RELOAD_MAX_REMOVED = 50


@dataclass(frozen=True, slots=True)
class ServerConfig:
    base_url: str
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    ping_key: Secret | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    api_token: Secret | None = None
    badge_key: Secret | None = None
    # Percent of the running monitors a reload may remove without --force.
    reload_max_removed: int = DEFAULT_RELOAD_MAX_REMOVED
    # A ping to an unknown slug with ?create=1 creates the monitor (source "api").
    auto_provision: bool = False


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: Path
    ping_history: int = 100
    max_body: int = 10240
    # PRAGMA synchronous: "full" makes a 200 answer mean the ping survives power loss.
    synchronous: str = "full"
    # Flips kept per monitor, and seconds a finished (sent, failed, moved)
    # outbox row is kept; pending alerts and their flips are always kept.
    flip_history: int = 1000
    outbox_retention: int = 30 * 86400


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    # Seconds after which the outbox stops retrying an alert.
    give_up_after: int = 86400
    # Seconds one delivery attempt may take.
    send_timeout: int = 30
    # Seconds heartbeatd may be not running (or its clock jump) before it
    # sends a daemon_gap alert about it.
    gap_notice: int = 300
    # Seconds without any ping, while monitors were expected, before a
    # silence alert; None: off.
    silence: int | None = None
    # Where daemon_gap and silence alerts go; None: every channel.
    channels: tuple[str, ...] | None = None

    # Seconds a dependent's down alert waits for its parents to catch up.
    dependency_wait: int = 60


@dataclass(frozen=True, slots=True)
class SelfPingConfig:
    """[self]: the Healthchecks-style check heartbeatd pings while it is healthy."""

    # None: no outbound self-ping.
    ping_url: Secret | None = None
    every: int = 60
    # An alert pending longer than this makes heartbeatd unhealthy.
    stuck_after: int = 600


@dataclass(frozen=True, slots=True)
class WebConfig:
    # User name -> "scrypt$..." password hash, for basic auth on the status page.
    users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsConfig:
    # False: /metrics has only the aggregate families, not 100,000 series.
    per_monitor: bool = True


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str
    # The channel module's own frozen Options.
    options: Any
    # The events it hears ([channels.<name>] events).
    events: frozenset[AlertEvent] = DEFAULT_EVENTS
    # Seconds alerts to it wait to go out together as one message (0: alone).
    group_wait: int = 0


# slots: a config may hold 100,000 of these, and a __dict__ each doubles that.
@dataclass(frozen=True, slots=True)
class Monitor:
    slug: str
    name: str
    schedule: Schedule
    grace: int
    max_runtime: int
    channels: tuple[str, ...]
    uuid: str | None = None
    repeat: int | None = None
    repeat_limit: int | None = None
    description: str = ""
    # Rules on runs (seconds; a count; a factor) and on what a ping means.
    min_runtime: int | None = None
    max_concurrent: int | None = None
    runtime_anomaly: float | None = None
    ping_filter: PingFilter | None = None
    tags: tuple[str, ...] = ()
    # "file": declared in the config file; "api": created through the
    # Healthchecks-compatible API or by auto-provisioning, stored in SQLite.
    source: str = "file"
    # Consecutive failed runs before the down alert, and successes before the
    # up alert (policy.py).
    alert_after: int = 1
    recover_after: int = 1
    # The [maintenance.<name>] windows that select this monitor.
    windows: tuple[Window, ...] = ()
    # Slugs of the monitors this one depends on (policy.py holds its alerts
    # while one of them is down).
    depends_on: tuple[str, ...] = ()
    # (channel, seconds after the first down alert) of each
    # {channel = "x", after = "30m"} in `channels`, soonest first.
    escalations: tuple[tuple[str, int], ...] = ()


# The fields that name a monitor or say where its alerts go, and nothing else:
# two monitors alike but for these run the same rules (see `rules_key`).
_NAMING_FIELDS = frozenset(("slug", "name", "description", "uuid", "tags", "channels", "source"))
_rules_of = operator.attrgetter(
    *(f.name for f in fields(Monitor) if f.name not in _NAMING_FIELDS and f.name != "schedule")
)


def rules_key(monitor: Monitor) -> tuple[Any, ...]:
    """Equal for monitors with equal rules but for their schedules, which the
    caller tells apart (start-up keys it by the monitors' shared first state,
    itself one per schedule). Every field not known to only name a monitor
    counts, so a field added later is part of it unless listed above."""
    return _rules_of(monitor)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    # Keys of the Healthchecks-compatible API; none: that API is off.
    keys: tuple[ApiKey, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerConfig
    storage: StorageConfig
    alerts: AlertsConfig
    web: WebConfig
    smtp: SmtpOptions | None
    channels: Mapping[str, Channel]
    monitors: Mapping[str, Monitor]
    # Key paths of secrets written into the file itself, for check_warnings().
    inline_secrets: tuple[str, ...] = ()
    # Key paths of options that are valid but change nothing, for check_warnings().
    ignored_options: tuple[str, ...] = ()
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # tag -> the slugs carrying it, in file order, so a tag's badge or
    # filter reads its monitors without walking all of them.
    tagged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    api: ApiConfig = field(default_factory=ApiConfig)
    # The [defaults] table as written: monitors created at run time are read
    # against it as if they were in the file.
    defaults_data: Mapping[str, Any] = field(default_factory=dict)
    selfping: SelfPingConfig = SelfPingConfig()
    # [maintenance.<name>] windows, by name.
    maintenance: Mapping[str, Window] = field(default_factory=dict)
    # parent slug -> the slugs that depend on it, so a parent's recovery
    # reaches its dependents without walking every monitor.
    dependents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def index_tags(monitors: Mapping[str, Monitor]) -> dict[str, tuple[str, ...]]:
    """tag -> the slugs of the monitors carrying it, in file order."""
    index: dict[str, list[str]] = {}
    for slug, monitor in monitors.items():
        for tag in monitor.tags:
            index.setdefault(tag, []).append(slug)
    return {tag: tuple(slugs) for tag, slugs in index.items()}


def index_dependents(monitors: Mapping[str, Monitor]) -> dict[str, tuple[str, ...]]:
    """parent slug -> the slugs of the monitors depending on it, in file order."""
    index: dict[str, list[str]] = {}
    for slug, monitor in monitors.items():
        for parent in monitor.depends_on:
            index.setdefault(parent, []).append(slug)
    return {parent: tuple(slugs) for parent, slugs in index.items()}


def ping_urls(config: Config, monitor: Monitor) -> list[str]:
    """The URLs a job may ping for `monitor`: by uuid (if any), then by slug."""
    key = config.server.ping_key
    targets = [pingurl.PingTarget(pingurl.By.UUID, monitor.uuid)] if monitor.uuid else []
    slug_key = None if key is None else key.reveal()
    targets.append(pingurl.PingTarget(pingurl.By.SLUG, monitor.slug, ping_key=slug_key))
    return [pingurl.build(config.server.base_url, target) for target in targets]
