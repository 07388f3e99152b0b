"""How a send ended, recorded: delivered, retried with backoff, or failed.

Channels classify a failure (`DeliveryError(permanent=...)`); this module
decides what happens next and records it in the store, so an outage delays
an alert and never drops it. Only the current claim of a row records an
outcome; a stale one (a send that outlived its lease) is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp

from heartbeatd.channels.base import DeliveryError, describe_failure
from heartbeatd.clock import Clock
from heartbeatd.store import OutboxItem, Store
from heartbeatd.times import isoformat

# The package's name, as before it was split: journal filters name it.
log = logging.getLogger("heartbeatd.outbox")

FIRST_RETRY = 10.0
MAX_RETRY = 30 * 60.0
JITTER = 0.2


def backoff(attempts: int, rng: random.Random) -> float:
    """Seconds before retry number `attempts` (1-based): 10 s doubling, up to 30 min."""
    base = min(FIRST_RETRY * 2 ** min(max(attempts, 1) - 1, 32), MAX_RETRY)
    # Jitter spreads out the retries of many alerts that failed together.
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


@dataclass
class DeliveryStats:
    """Counters for metrics."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    attempts: int = 0


class Outcomes:
    """Records each send's outcome in the store, and counts it in `stats`."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        give_up_after: float,
        send_timeout: float,
        rng: random.Random,
    ) -> None:
        self._store = store
        self._clock = clock
        self._give_up_after = give_up_after
        self._send_timeout = send_timeout
        self._rng = rng
        self.stats = DeliveryStats()

    async def delivered(self, item: OutboxItem) -> None:
        marked = await self._store.mark_delivered(item, self._clock.now())
        if not _recorded(marked, item, "delivered", self.stats.sent):
            return
        log.info(
            "alert delivered monitor=%s channel=%s event=%s attempts=%d",
            item.monitor,
            item.channel,
            item.alert.event.value,
            item.attempts + 1,
        )

    async def failed(self, item: OutboxItem, exc: Exception) -> None:
        """The send raised `exc`: retry later, or fail the row for good."""
        if isinstance(exc, asyncio.TimeoutError):
            error = f"timed out after {self._send_timeout:g}s"
        else:
            error = describe_failure(exc)
        if isinstance(exc, DeliveryError) and exc.permanent:
            await self._fail(item, error, "alert failed")
            return
        if not isinstance(exc, (DeliveryError, asyncio.TimeoutError, OSError, aiohttp.ClientError)):
            # A bug in a channel: keep its traceback, and keep the alert.
            log.error(
                "alert send crashed monitor=%s channel=%s", item.monitor, item.channel, exc_info=exc
            )
        now = self._clock.now()
        deadline = item.created_at + timedelta(seconds=self._give_up_after)
        if now >= deadline:
            await self._fail(item, error, "alert given up")
            return
        attempts = item.attempts + 1
        # The last retry falls on the deadline, so "give up after 24h" is exact.
        retry_at = min(now + timedelta(seconds=backoff(attempts, self._rng)), deadline)
        marked = await self._store.mark_retry(item, error, retry_at)
        if not _recorded(marked, item, "retry", self.stats.retried):
            return
        log.warning(
            "alert delivery failed monitor=%s channel=%s event=%s attempts=%d retry_at=%s error=%s",
            item.monitor,
            item.channel,
            item.alert.event.value,
            attempts,
            isoformat(retry_at),
            error,
        )

    async def _fail(self, item: OutboxItem, error: str, message: str) -> None:
        marked = await self._store.mark_failed(item, error, self._clock.now())
        if not _recorded(marked, item, "failed", self.stats.failed):
            return
        log.error(
            "%s monitor=%s channel=%s event=%s attempts=%d error=%s",
            message,
            item.monitor,
            item.channel,
            item.alert.event.value,
            item.attempts + 1,
            error,
        )


def _recorded(marked: bool, item: OutboxItem, outcome: str, counter: dict[str, int]) -> bool:
    """Count an outcome the store recorded; say so if it was not (a stale claim)."""
    if marked:
        counter[item.channel] = counter.get(item.channel, 0) + 1
        return True
    log_stale(item, outcome)
    return False


def log_stale(item: OutboxItem, outcome: str) -> None:
    # Another claim of this row is current (this send outlived its lease, e.g.
    # over a wall-clock jump); the outcome is that claim's to record.
    log.warning(
        "alert outcome not recorded, its claim is stale monitor=%s channel=%s outbox_id=%d"
        " claim=%d outcome=%s",
        item.monitor,
        item.channel,
        item.id,
        item.claim,
        outcome,
    )
