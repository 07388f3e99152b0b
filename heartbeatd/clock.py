"""The only module that reads the time, sleeps or waits with a timeout.

Everything else takes a `Clock` (services) or a `now` argument (pure code), so
tests advance a `FakeClock` instead of sleeping for a deadline or a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

T = TypeVar("T")

# What wait() returns: (done, pending).
Waited = tuple[set[asyncio.Future[T]], set[asyncio.Future[T]]]


class Clock:
    """Wall time for deadlines, monotonic time for measuring, sleeping and timeouts."""

    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        """The result of `aw`; after `timeout` seconds, `aw` is cancelled and
        asyncio.TimeoutError raised (as asyncio.wait_for)."""
        return await asyncio.wait_for(aw, timeout)

    async def wait(
        self,
        fs: Iterable[asyncio.Future[T]],
        timeout: float,
        return_when: str = asyncio.ALL_COMPLETED,
    ) -> Waited[T]:
        """(done, pending) once `return_when` holds or `timeout` seconds have
        passed; nothing is cancelled (as asyncio.wait)."""
        return await asyncio.wait(fs, timeout=timeout, return_when=return_when)


class FakeClock(Clock):
    """A clock that moves only when told to.

    `sleep()` returns, and `wait()` and `wait_for()` time out, once
    `advance()` has moved the clock past the wake-up time, so services driven
    by a FakeClock run without real waiting.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._now = start.astimezone(timezone.utc)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        """Move time forward by `seconds` plus any timedelta keywords."""
        step = timedelta(seconds=seconds, **kwargs)
        self._now += step
        self._mono += step.total_seconds()
        self._wake()
        return self._now

    def jump(self, to: datetime) -> None:
        """Set the wall clock without moving monotonic time (an NTP step)."""
        self._now = to.astimezone(timezone.utc)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._timer(seconds)

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        task = asyncio.ensure_future(aw)
        try:
            await self.wait({task}, timeout)
        except BaseException:
            # We were cancelled: so is what we waited for, as with asyncio.wait_for.
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise asyncio.TimeoutError

    async def wait(
        self,
        fs: Iterable[asyncio.Future[T]],
        timeout: float,
        return_when: str = asyncio.ALL_COMPLETED,
    ) -> Waited[T]:
        futures = set(fs)
        if not futures:
            raise ValueError("nothing to wait for")
        # Set before the first await, so an advance() right after a task has
        # started waiting counts against its timeout.
        timer = self._timer(timeout)
        waiting = asyncio.ensure_future(asyncio.wait(futures, return_when=return_when))
        try:
            either: set[asyncio.Future[Any]] = {waiting, timer}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        done = {f for f in futures if f.done()}
        return done, futures - done

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        """A future that `advance()` resolves once `seconds` have passed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            fut.set_result(None)
        else:
            self._sleepers.append((self._mono + seconds, fut))
        return fut

    def _wake(self) -> None:
        still = []
        for wake_at, fut in self._sleepers:
            if fut.done():
                continue
            if wake_at <= self._mono:
                fut.set_result(None)
            else:
                still.append((wake_at, fut))
        self._sleepers = still
