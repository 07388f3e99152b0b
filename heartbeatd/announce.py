"""What the engine tells the outside: the alerts a flip sends, and the view
of a monitor that the API, the status page and /metrics show (DESIGN §6)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from heartbeatd import policy, states
from heartbeatd.alerts import Alert
from heartbeatd.config import Config, Monitor, ping_urls
from heartbeatd.model import AlertEvent, Flip, MonitorState, Reason, Status, to_the_second
from heartbeatd.views import MonitorView


def flip_alerts(
    config: Config,
    slug: str,
    flip: Flip,
    old: MonitorState,
    new: MonitorState,
    body: str | None,
) -> list[tuple[str, Alert]]:
    """One alert per channel of the monitor that hears the flip's event (a
    held flip's event is `held`)."""
    monitor = config.monitors[slug]
    event = flip.event or (AlertEvent.HELD if flip.held_by else None)
    assert event is not None
    # An escalation goes only to its own channels; they hear nothing else.
    targets = flip.channels if event is AlertEvent.ESCALATION else monitor.channels
    channels = [c for c in targets if _hears(config, c, event)]
    if not channels:
        return []
    downtime = None
    if flip.event is AlertEvent.UP and old.down_at is not None:
        downtime = max(0.0, (flip.at - old.down_at).total_seconds())
    alert = Alert(
        event=event,
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
        duration=flip.duration,
        min_runtime=flip.reference if flip.reason is Reason.RAN_TOO_SHORT else None,
        held_by=flip.held_by if event in (AlertEvent.DOWN, AlertEvent.HELD) else None,
        held_since=flip.held_since if event is AlertEvent.DOWN else None,
        ack_url=ack_url(config, new) if event in _ACKABLE else "",
    )
    return [(channel, alert) for channel in channels]


def notice_alerts(
    config: Config, slug: str, notices: Sequence[Flip], state: MonitorState
) -> list[tuple[str, Alert]]:
    """The alerts of notices that change no status (overlap, anomaly)."""
    if not notices:
        return []
    monitor = config.monitors[slug]
    found = []
    for notice in notices:
        assert notice.event is not None
        alert = Alert(
            event=notice.event,
            monitor=slug,
            name=monitor.name,
            status=state.status,
            reason=notice.reason,
            at=notice.at,
            last_ping=state.last_ping,
            expected_at=state.expected_at,
            url=f"{config.server.base_url}/monitors/{slug}",
            body=state.body_preview,
            duration=notice.duration,
            median=notice.reference,
        )
        found += [(channel, alert) for channel in _notice_channels(config, monitor, notice.event)]
    return found


def _notice_channels(config: Config, monitor: Monitor, event: AlertEvent) -> tuple[str, ...]:
    # The monitor's channels that take the event ([channels.<name>] events).
    return tuple(c for c in monitor.channels if _hears(config, c, event))


_ACKABLE = (AlertEvent.DOWN, AlertEvent.REMINDER, AlertEvent.ESCALATION)


def ack_url(config: Config, state: MonitorState) -> str:
    """The link that acknowledges the incident: a confirmation page whose
    form POSTs, guarded by the incident's token alone (no login), so it
    works from a phone."""
    if not state.ack_token or state.acked_at is not None:
        return ""
    return f"{config.server.base_url}/ack/{state.ack_token}"


def _hears(config: Config, channel: str, event: AlertEvent) -> bool:
    found = config.channels.get(channel)
    # A channel a reload removed: the outbox moves its alerts (as before).
    return found is None or event in found.events


def hears_late(config: Config, monitor: Monitor) -> bool:
    """Whether any channel of the monitor has opted in to `late`."""
    return any(_hears(config, c, AlertEvent.LATE) for c in monitor.channels)


def monitor_view(
    config: Config, slug: str, state: MonitorState, now: datetime | None = None
) -> MonitorView:
    """The monitor as the API, the status page and /metrics show it (DESIGN §6)."""
    monitor = config.monitors[slug]
    window = policy.open_window(monitor, now) if now is not None else None
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
        alert=state.alert,
        held_by=policy.held_by(state, monitor, now),
        snoozed_until=to_the_second(state.snoozed_until),
        snooze_reason=state.snooze_reason,
        maintenance=window[0] if window else None,
        maintenance_until=to_the_second(window[1]) if window else None,
        acked_at=to_the_second(state.acked_at),
        acked_by=state.acked_by,
        ack_note=state.ack_note,
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
