"""What the engine tells the outside: the alerts a flip sends, and the view
of a monitor that the API, the status page and /metrics show (DESIGN §6)."""

from __future__ import annotations

from heartbeatd import states
from heartbeatd.config import Config, Monitor, ping_urls
from heartbeatd.model import (
    Alert,
    AlertEvent,
    Flip,
    MonitorState,
    MonitorView,
    Status,
    to_the_second,
)


def flip_alerts(
    config: Config,
    slug: str,
    flip: Flip,
    old: MonitorState,
    new: MonitorState,
    body: str | None,
) -> list[tuple[str, Alert]]:
    """One alert per channel of the monitor for a flip that has an event."""
    monitor = config.monitors[slug]
    assert flip.event is not None
    downtime = None
    if flip.event is AlertEvent.UP and old.down_at is not None:
        downtime = max(0.0, (flip.at - old.down_at).total_seconds())
    alert = Alert(
        event=flip.event,
        monitor=slug,
        name=monitor.name,
        status=new.status,
        reason=flip.reason,
        at=flip.at,
        last_ping=new.last_ping,
        expected_at=new.expected_at if flip.event is AlertEvent.UP else old.expected_at,
        down_at=new.down_at if new.status is Status.DOWN else old.down_at,
        url=f"{config.server.base_url}/monitors/{slug}",
        body=new.body_preview if body is None else body,
        downtime=downtime,
        exit_status=new.last_exit_status,
    )
    return [(channel, alert) for channel in monitor.channels]


def monitor_view(config: Config, slug: str, state: MonitorState) -> MonitorView:
    """The monitor as the API, the status page and /metrics show it (DESIGN §6)."""
    monitor = config.monitors[slug]
    return MonitorView(
        slug=slug,
        name=monitor.name,
        description=monitor.description,
        status=state.status,
        reason=state.reason,
        schedule=monitor.schedule.describe(),
        grace=monitor.grace,
        started_at=to_the_second(state.started_at),
        last_ping=to_the_second(state.last_ping),
        last_success=to_the_second(state.last_success),
        last_exit_status=state.last_exit_status,
        expected_at=to_the_second(state.expected_at),
        down_at=to_the_second(states.down_at(state, monitor)),
        n_pings=state.n_pings,
        last_duration=state.last_duration,
        channels=tuple(monitor.channels),
        uuid=monitor.uuid,
        ping_url=_ping_url(config, monitor),
        tags=monitor.tags,
        source=monitor.source,
    )


def _ping_url(config: Config, monitor: Monitor) -> str | None:
    if monitor.uuid is None and config.server.ping_key is not None:
        # The slug URL holds the key, and the read API may be open to
        # anyone the key is meant to keep out.
        return None
    return ping_urls(config, monitor)[0]


def daemon_alerts(config: Config, alert: Alert) -> list[tuple[str, Alert]]:
    """An alert about heartbeatd itself, once for each of [alerts] channels
    (by default every channel)."""
    channels = config.alerts.channels
    if channels is None:
        channels = tuple(config.channels)
    return [(channel, alert) for channel in channels]
