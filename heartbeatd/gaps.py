"""heartbeatd's own downtime as an alert: the daemon_gap event.

While heartbeatd is not running (or while its wall clock jumps forward) no
deadline can pass and no ping can be seen; start-up then gives every passed
deadline its grace again (states.on_startup), so the monitors do not tell of
the gap. This module does: one `daemon_gap` alert to [alerts] channels, and
in each monitor's history the gap as `unknown`.

The alert goes out through the outbox like any alert, and it is stored in the
same transaction as the `last_alive` that ends the gap: if heartbeatd dies
before that transaction, the next start finds the gap again (longer) and
sends it then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from heartbeatd import humanize, states
from heartbeatd.alerts import daemon_alert
from heartbeatd.announce import daemon_alerts
from heartbeatd.config import Config
from heartbeatd.model import AlertEvent, MonitorState, Status
from heartbeatd.store import Store, history
from heartbeatd.times import isoformat, parse_isoformat

log = logging.getLogger(__name__)

# Monitors named in the alert; the count says how many more there are.
LISTED = 20


async def notice_downtime(store: Store, config: Config, now: datetime) -> bool:
    """At start-up, before the engine recovers: queue a daemon_gap alert if
    heartbeatd was not running for longer than [alerts] gap_notice, and
    await it. True if there was one."""
    last = parse_isoformat(await store.get_meta("last_alive"))
    if last is None or (now - last).total_seconds() <= config.alerts.gap_notice:
        return False
    # Read again only after a gap: the engine loads them once more right after.
    stored = await store.load_states()
    await queue_gap(store, config, stored, last, now, jumped=False)
    return True


def notice_jump(
    store: Store,
    config: Config,
    current: Mapping[str, MonitorState],
    before: datetime,
    now: datetime,
    on_stored: Callable[[], None],
) -> bool:
    """After the wall clock jumped forward from `before` to `now`, before the
    engine forgives the deadlines it passed: as notice_downtime. Not awaited
    (the ticker calls it); `on_stored` runs once the alert is committed."""
    if (now - before).total_seconds() <= config.alerts.gap_notice:
        return False
    future = queue_gap(store, config, current, before, now, jumped=True)

    def done(fut: asyncio.Future[None]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            on_stored()

    future.add_done_callback(done)
    return True


def queue_gap(
    store: Store,
    config: Config,
    current: Mapping[str, MonitorState],
    since: datetime,
    until: datetime,
    *,
    jumped: bool,
) -> asyncio.Future[None]:
    """Queue the alert, the `unknown` spans and the new last_alive as one
    transaction; the future resolves once it is committed."""
    moved = held_back(config, current, until)
    alert = daemon_alert(
        AlertEvent.DAEMON_GAP,
        since=since,
        at=until,
        monitors=tuple(moved[:LISTED]),
        count=len(moved),
        url=config.server.base_url,
        text=describe(since, until, moved, jumped=jumped),
    )
    flips = []
    for slug in config.monitors:
        state = current.get(slug)
        # A paused monitor expected nothing; a new one has no history yet.
        if state is not None and state.status is not Status.PAUSED:
            flips += history.unknown_rows(slug, state.status.value, since, until)
    alerts = daemon_alerts(config, alert)
    future = store.queue_daemon_event(alerts, flips=flips, meta={"last_alive": until.isoformat()})
    cause = "clock_jump" if jumped else "not_running"

    def report(fut: asyncio.Future[None]) -> None:
        error = None if fut.cancelled() else fut.exception()
        if error is not None:
            log.error("daemon gap alert not stored cause=%s error=%s", cause, error)
            return
        log.warning(
            "daemon gap from=%s to=%s seconds=%d cause=%s moved=%d channels=%d",
            isoformat(since),
            isoformat(until),
            (until - since).total_seconds(),
            cause,
            len(moved),
            len(alerts),
        )

    future.add_done_callback(report)
    return future


def held_back(config: Config, current: Mapping[str, MonitorState], now: datetime) -> list[str]:
    """The monitors whose deadline (or reminder) passed unseen: start-up moves
    it to now + grace, or skips the reminders it missed."""
    moved = []
    for slug, monitor in config.monitors.items():
        state = current.get(slug)
        if state is not None and states.on_startup(state, monitor, now) != state:
            moved.append(slug)
    return sorted(moved)


def describe(since: datetime, until: datetime, moved: list[str], *, jumped: bool) -> str:
    """The alert's message in words."""
    length = humanize.duration((until - since).total_seconds())
    if jumped:
        what = f"heartbeatd's wall clock jumped forward by {length}"
    else:
        what = f"heartbeatd was not running for {length}"
    text = f"{what}, from {isoformat(since)} to {isoformat(until)}; pings sent meanwhile were lost"
    if not moved:
        return text + ". No deadline passed meanwhile."
    names = ", ".join(moved[:LISTED])
    if len(moved) > LISTED:
        names += f" and {len(moved) - LISTED} more"
    count = "1 monitor" if len(moved) == 1 else f"{len(moved)} monitors"
    return (
        f"{text}. The deadlines of {count} passed meanwhile and were moved to now plus"
        f" their grace, so their jobs get time to ping again: {names}."
    )
