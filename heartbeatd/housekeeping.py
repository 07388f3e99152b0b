"""The daemon's record of being alive, and the retention it applies.

Every ALIVE_EVERY seconds it stores that it is alive, so that the next start
can tell how long it was down; every TRIM_EVERY it trims old history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from heartbeatd.clock import Clock
from heartbeatd.config import StorageConfig
from heartbeatd.durations import format_duration
from heartbeatd.store import Store, StoreError
from heartbeatd.times import isoformat, parse_isoformat

# The daemon's logger: these lines are the daemon's and read as such.
log = logging.getLogger("heartbeatd.daemon")

# How often the daemon records that it is alive, to tell later how long it was down.
ALIVE_EVERY = 30.0
TRIM_EVERY = 600.0


async def housekeeping(store: Store, clock: Clock, storage: Callable[[], StorageConfig]) -> None:
    """Runs until cancelled; `storage` gives the running config's [storage]."""
    since_trim = TRIM_EVERY - 30.0
    while True:
        try:
            await store.set_meta("last_alive", clock.now().isoformat())
            if since_trim >= TRIM_EVERY:
                since_trim = 0.0
                await trim(store, clock, storage())
        except StoreError as exc:
            log.error("housekeeping failed error=%s", exc)
        await clock.sleep(ALIVE_EVERY)
        since_trim += ALIVE_EVERY


async def trim(store: Store, clock: Clock, storage: StorageConfig) -> None:
    """Retention: old pings, flips and finished alerts, in short transactions
    on the writer's thread, so pings in between wait for one batch at most."""
    pings = await store.trim_pings(storage.ping_history)
    flips = await store.prune_flips(storage.flip_history)
    before = clock.now() - timedelta(seconds=storage.outbox_retention)
    alerts = await store.prune_outbox(before)
    if pings or flips or alerts:
        log.info("old history trimmed pings=%d flips=%d alerts=%d", pings, flips, alerts)


async def report_downtime(store: Store, clock: Clock) -> None:
    """Log how long heartbeatd was down, when it was down long enough to tell."""
    last = parse_isoformat(await store.get_meta("last_alive"))
    if last is None:
        return
    gap = clock.now() - last
    if gap > timedelta(seconds=2 * ALIVE_EVERY):
        log.warning(
            "heartbeatd itself was not running for about %s (last alive %s); "
            "deadlines that passed meanwhile get their grace period again",
            format_duration(gap.total_seconds()),
            isoformat(last),
        )
