"""Where an alert goes when its channel is gone.

An alert follows its monitor: when a reload removes its channel, it goes to
the monitor's current channels instead (`Store.move_alerts`), unless a newer
alert of the monitor went out there already (then it is `superseded`: sent
after that one, it would contradict it). This module says where a monitor's
alerts go and logs what moved; the worker asks the store to move them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from heartbeatd.model import DAEMON
from heartbeatd.store import Move, OutboxItem

# The package's name, as before it was split: journal filters name it.
log = logging.getLogger("heartbeatd.outbox")


def group_waits(channels: Mapping[str, Any]) -> dict[str, int]:
    """[channels.x] group_wait of the channels that group their alerts."""
    return {
        name: wait
        for name, channel in channels.items()
        if (wait := getattr(channel, "group_wait", 0))
    }


def channels_of(
    channels: Mapping[str, Any], monitors: Mapping[str, Any], slug: str
) -> Sequence[str] | None:
    """The channels an alert of `slug` goes to now; None: no such monitor."""
    if slug == DAEMON:
        # An alert about heartbeatd itself has no monitor to follow:
        # rather than wait on a channel that is gone, it goes to every
        # current channel that does not have it yet.
        return tuple(channels)
    monitor = monitors.get(slug)
    return None if monitor is None else monitor.channels


def nowhere(item: OutboxItem, monitors: Mapping[str, Any]) -> str:
    """Why an alert whose channel is gone has nowhere to go."""
    where = "has no channels" if item.monitor in monitors else "is no longer configured"
    return f"channel {item.channel} is no longer configured and monitor {item.monitor} {where}"


def log_moves(moves: list[Move]) -> None:
    for move in moves:
        if move.is_stuck:
            # Logged again, at error, when it is claimed and cannot be sent.
            log.warning(
                "alert kept on a removed channel: its monitor is gone or has no channels"
                " monitor=%s channel=%s event=%s",
                move.monitor,
                move.channel,
                move.event,
            )
            continue
        if not move.to and not move.already:
            # Nothing was sent: every channel had a newer alert already.
            log.warning(
                "alert superseded, a newer alert of its monitor went out already"
                " monitor=%s event=%s channel=%s newer_on=%s",
                move.monitor,
                move.event,
                move.channel,
                ",".join(move.superseded),
            )
            continue
        log.warning(
            "alert moved monitor=%s event=%s from=%s to=%s already=%s superseded=%s",
            move.monitor,
            move.event,
            move.channel,
            ",".join(move.to) or "-",
            ",".join(move.already) or "-",
            ",".join(move.superseded) or "-",
        )
