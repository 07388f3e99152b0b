"""The only module that reads the time or sleeps.

Everything else takes a `Clock` (services) or a `now` argument (pure code), so
tests advance a `FakeClock` instead of sleeping for a deadline.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone


class Clock:
    """Wall time for deadlines, monotonic time for measuring, and sleeping."""

    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep((when - self.now()).total_seconds())


class FakeClock(Clock):
    """A clock that moves only when told to.

    `sleep()` returns once `advance()` has moved the clock past the wake-up
    time, so services driven by a FakeClock run without real waiting.
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
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut

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


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """A UTC datetime; shorthand for tests and examples."""
    return datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
