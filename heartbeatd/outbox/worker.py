"""The delivery worker: sends what the outbox table holds.

What happens after a send (a retry with backoff, a failure for good) is
outcomes.py's to decide and record; where an alert whose channel is gone
goes, moves.py's.

The worker keeps up to CONCURRENCY sends in flight and claims more rows as
soon as any send ends, so a burst of alerts flows through without waiting for
the slowest send of a batch, and one hung endpoint holds up only its own line.

A row is claimed for longer than a send may take, and only the current claim
records an outcome, so one alert is never sent twice at once. An alert follows
its monitor: when a reload removes its channel, it goes to the monitor's
current channels instead (`Store.move_alerts`), unless a newer alert of the
monitor went out there already (then it is `superseded`: sent after that one,
it would contradict it).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp

from heartbeatd.channels import CHANNEL_TYPES
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.clock import Clock
from heartbeatd.outbox.moves import channels_of, group_waits, log_moves, nowhere
from heartbeatd.outbox.outcomes import Outcomes, log_stale
from heartbeatd.store import OutboxItem, Store, StoreError

# The package's name, as before it was split: journal filters name it.
log = logging.getLogger("heartbeatd.outbox")

T = TypeVar("T")

# How long to wait before trying the store again after it failed.
STORE_RETRY = 10.0
# The least time between passes when the store says a row is due but none
# could be claimed: a guard against a busy loop, not a polling interval.
MIN_IDLE = 1.0
# Sends in flight at once. Rows are claimed only when their send can start, so
# a claimed row never waits out its lease behind others; and 100 is aiohttp's
# connection limit per session, so a send never spends its timeout queued for
# a connection.
CONCURRENCY = 100
# A claim outlives the longest send ([alerts] send_timeout) by this much, which
# covers cutting the send off and recording its outcome: a row is not claimed
# again while its send may still be under way.
LEASE_MARGIN = 60.0


class Outbox:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        channels: Mapping[str, Any],
        monitors: Mapping[str, Any] | None = None,
        give_up_after: float = 86400,
        send_timeout: float = 30,
        rng: random.Random | None = None,
        session: aiohttp.ClientSession | None = None,
        concurrency: int = CONCURRENCY,
        drain_timeout: float = 10,
    ) -> None:
        self._store = store
        self._clock = clock
        self._channels = dict(channels)
        # slug -> monitor (with its `channels`): where a moved alert goes.
        self._monitors: Mapping[str, Any] = monitors if monitors is not None else {}
        self._send_timeout = send_timeout
        self.lease = send_timeout + LEASE_MARGIN
        # Rows whose send is under way here: never claimed again meanwhile,
        # whatever the wall clock does to their lease.
        self._in_flight: set[int] = set()
        self._session = session
        self._owns_session = session is None
        self._concurrency = concurrency
        self._drain_timeout = drain_timeout
        self._wake = asyncio.Event()
        self._outcomes = Outcomes(
            store,
            clock,
            give_up_after=give_up_after,
            send_timeout=send_timeout,
            rng=rng or random.Random(),
        )
        self.stats = self._outcomes.stats
        self._store.group_waits = group_waits(self._channels)

    def set_channels(
        self, channels: Mapping[str, Any], monitors: Mapping[str, Any] | None = None
    ) -> None:
        """Use these channels from the next attempt on (config reload).

        Pending alerts of a channel that is gone move to their monitor's
        current channels. The move is queued before this returns, ahead of any
        alert raised under the new config.
        """
        self._channels = dict(channels)
        self._store.group_waits = group_waits(self._channels)
        if monitors is not None:
            self._monitors = monitors
        moving = self._store.move_alerts(
            self._channels, self._channels_of, self._clock.now(), exclude=self._in_flight
        )
        self._when_done(moving, "cannot move the alerts of removed channels", log_moves)

    def clock_stepped(self, seconds: float) -> None:
        """The wall clock was stepped by `seconds` (the daemon's ticker saw it).

        Retry delays are real time. After a step back, pending due times and
        leases move back with the clock, or a retry 10 s away would wait a
        day. After a step forward, retries are early (harmless), but the
        creation times move forward, so give_up_after still counts real time.
        Either way the worker wakes and works out its wait again.
        """
        if seconds < 0:
            shifting = self._store.shift_due_times(seconds)
        else:
            shifting = self._store.shift_created_times(seconds)

        def report(rows: int) -> None:
            log.info("outbox follows a wall-clock step seconds=%d rows=%d", seconds, rows)

        self._when_done(shifting, "cannot shift outbox times for a clock step", report)

    def wake(self) -> None:
        """New rows were committed: look at the outbox now."""
        self._wake.set()

    async def close(self) -> None:
        """Close the HTTP session if this worker created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, sleeping until the next row is due."""
        sending: set[asyncio.Task[int]] = set()
        try:
            # Channels removed while heartbeatd was stopped.
            await self._move_stranded()
            while not stop.is_set():
                # Cleared before claiming, so a wake() meanwhile is not lost.
                self._wake.clear()
                delay = await self._start_due(sending)
                if stop.is_set():
                    break
                await self._idle(stop, delay, sending)
            await self._drain(sending)
        finally:
            # Cancelled from outside: a send cut here stays claimed and is
            # tried again after its lease.
            for task in sending:
                task.cancel()
            if sending:
                await asyncio.wait(sending)
                _reap(sending)
            await self.close()

    async def deliver_due(self) -> int:
        """Claim the rows due now and attempt them concurrently; return the attempts."""
        items = await self._claim(self._concurrency)
        results = await asyncio.gather(*(self._deliver(item) for item in items))
        return sum(results)

    async def _claim(self, limit: int) -> list[OutboxItem]:
        items = await self._store.claim_due(
            self._clock.now(), limit=limit, lease=self.lease, exclude=self._in_flight
        )
        # In flight from now on; _deliver takes each off when it is done.
        self._in_flight.update(item.id for item in items)
        return items

    def _context(self) -> SendContext:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return SendContext(session=self._session, timeout=self._send_timeout, clock=self._clock)

    async def _start_due(self, sending: set[asyncio.Task[int]]) -> float | None:
        """Start sends for due rows while there is room; seconds until the next is due."""
        try:
            room = self._concurrency - len(sending)
            if room > 0:
                for item in await self._claim(room):
                    sending.add(asyncio.ensure_future(self._deliver(item)))
            if sending:
                # Every send that ends wakes the loop to claim what it freed
                # (room, or the next alert of its line); the leases of rows in
                # flight are no reason to wake.
                return None
            delay = await self._seconds_to_next()
        except StoreError as exc:
            log.error("cannot read the outbox error=%s", exc)
            return STORE_RETRY
        if delay is not None and delay <= 0:
            # Due, yet nothing could be claimed: do not spin.
            delay = MIN_IDLE
        return delay

    # --- one row ------------------------------------------------------------

    async def _deliver(self, item: OutboxItem) -> int:
        """Attempt one row and record the outcome; return 1 if a send was tried."""
        ctx = self._context()
        channel = self._channels.get(item.channel)
        module = CHANNEL_TYPES.get(getattr(channel, "type", ""))
        attempted = 0
        try:
            if channel is None or module is None:
                await self._move(item)
                return 0
            attempted = 1
            self.stats.attempts += 1
            try:
                await self._clock.wait_for(
                    module.send(item.alert, channel.options, ctx), self._send_timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._outcomes.failed(item, exc)
            else:
                await self._outcomes.delivered(item)
        except StoreError as exc:
            # The row stays claimed; once its lease ends it is tried again
            # (at least once: never lost, rarely sent twice).
            log.error(
                "cannot record delivery monitor=%s channel=%s error=%s",
                item.monitor,
                item.channel,
                exc,
            )
        finally:
            self._in_flight.discard(item.id)
        return attempted

    async def _move(self, item: OutboxItem) -> None:
        """The row's channel is gone: send the alert to its monitor's channels."""
        moves = await self._store.move_alerts(
            self._channels, self._channels_of, self._clock.now(), item=item
        )
        if not moves:
            log_stale(item, "moved")
            return
        [move] = moves
        if not move.is_stuck:
            log_moves(moves)
            self._wake.set()
            return
        # Nowhere to send it: keep it, retried like an unreachable channel,
        # until a reload gives it a channel or give_up_after ends it.
        error = nowhere(item, self._monitors)
        log.error(
            "alert has no channel to go to monitor=%s channel=%s event=%s error=%s",
            item.monitor,
            item.channel,
            item.alert.event.value,
            error,
        )
        await self._outcomes.failed(item, DeliveryError(error))

    async def _move_stranded(self) -> None:
        try:
            moves = await self._store.move_alerts(
                self._channels, self._channels_of, self._clock.now(), exclude=self._in_flight
            )
        except StoreError as exc:
            # Each such row is moved when it is next claimed instead.
            log.error("cannot move the alerts of removed channels error=%s", exc)
            return
        log_moves(moves)

    def _channels_of(self, slug: str) -> Sequence[str] | None:
        return channels_of(self._channels, self._monitors, slug)

    def _when_done(
        self, future: asyncio.Future[T], failure: str, report: Callable[[T], None]
    ) -> None:
        """Report a queued store job once it is committed, and look at the outbox again."""

        def done(fut: asyncio.Future[T]) -> None:
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is not None:
                log.error("%s error=%s", failure, exc)
            else:
                report(fut.result())
            self._wake.set()

        future.add_done_callback(done)

    # --- the loop -------------------------------------------------------------

    async def _drain(self, sending: set[asyncio.Task[int]]) -> None:
        """Shutting down: give sends in flight a bounded time, then cut them."""
        if not sending:
            return
        await self._clock.wait(sending, self._drain_timeout)
        _reap(sending)
        if sending:
            # A send cut here stays claimed and is tried again after its lease.
            log.warning("alert deliveries cut by shutdown timeout=%gs", self._drain_timeout)
            for task in sending:
                task.cancel()
            await asyncio.wait(sending)
            _reap(sending)

    async def _seconds_to_next(self) -> float | None:
        due = await self._store.next_due()
        return None if due is None else (due - self._clock.now()).total_seconds()

    async def _idle(
        self, stop: asyncio.Event, seconds: float | None, sending: set[asyncio.Task[int]]
    ) -> None:
        """Wait for the first of: a wake-up, stop, `seconds`, or a send ending."""
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        if seconds is not None:
            waiters.append(asyncio.ensure_future(self._clock.sleep(seconds)))
        try:
            await asyncio.wait([*waiters, *sending], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.wait(waiters)
        _reap(sending)


def _reap(sending: set[asyncio.Task[int]]) -> None:
    """Drop the sends that have ended; log any that crashed outside its own handling."""
    for task in [task for task in sending if task.done()]:
        sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("alert delivery crashed", exc_info=task.exception())
