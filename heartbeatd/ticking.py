"""The ticker: deadlines applied as they pass, a slice at a time, with pings
answered between slices, and a wall clock that was stepped told apart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from heartbeatd.clock import Clock
from heartbeatd.engine import Engine
from heartbeatd.slices import Slices

# A wall clock that moves this much more (or less) than the monotonic clock
# between two ticks was stepped (NTP, a suspended VM, a hand-set date).
CLOCK_JUMP = 30.0
# The ticker wakes when the wheel's next slot comes due, and at least this often:
# the heartbeat that clock-jump detection, health and the watchdog rely on, and
# the bound on how late it notices a deadline a ping moved earlier meanwhile.
TICK_EVERY = 1.0
# Deadlines applied between two chances for the loop to run something else.
TICK_PIECE = 50


async def tick_in_slices(
    engine: Engine, clock: Clock, now: datetime, ticked: Callable[[], None]
) -> None:
    """Apply the deadlines that have passed, a slice at a time: after a
    restart or an outage thousands may pass in the same second, and the pings
    that come in meanwhile are answered between two slices. `ticked` is
    called after each piece."""
    due = engine.pop_due(now)
    slices = Slices(clock)
    for start in range(0, len(due), TICK_PIECE):
        if start:
            await slices.turn()
            now = clock.now()
        engine.tick_due(due[start : start + TICK_PIECE], now)
        ticked()
    if not due:
        ticked()


async def tick_forever(
    engine: Engine,
    clock: Clock,
    *,
    jumped: Callable[[datetime, datetime, float], None],
    ticked: Callable[[], None],
) -> None:
    """Apply deadlines as they pass, until cancelled. A wall clock that moved
    CLOCK_JUMP seconds more (or less) than the monotonic one between two
    ticks is told to `jumped(wall before, wall now, drift)` first."""
    wall, mono = clock.now(), clock.monotonic()
    while True:
        now, now_mono = clock.now(), clock.monotonic()
        drift = (now - wall).total_seconds() - (now_mono - mono)
        if abs(drift) > CLOCK_JUMP:
            jumped(wall, now, drift)
        wall, mono = now, now_mono
        await tick_in_slices(engine, clock, now, ticked)
        # Sleep until the wheel's next slot comes due, or for the heartbeat.
        # A slot the tick left due (the state machine kept a passed
        # deadline) waits for the heartbeat rather than spinning. Waking a
        # hair early (the loop's clock vs the wall clock) only costs an
        # empty tick and a short second sleep, never a missed slot.
        due = engine.wheel.next_due()
        delay = TICK_EVERY
        if due is not None and due > now.timestamp():
            delay = min(due - now.timestamp(), TICK_EVERY)
        await clock.sleep(delay)
