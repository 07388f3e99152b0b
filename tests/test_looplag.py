"""The event loop's stall meter, on a FakeClock: a stall is time that passes
while the meter's wake-up is due."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from heartbeatd.looplag import LoopLag


@pytest.fixture
async def meter(clock):
    lag = LoopLag(clock, interval=0.02, warn_above=0.1)
    task = asyncio.ensure_future(lag.run())
    await clock.sleep(0)  # the meter is asleep now
    yield lag
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def settle(clock) -> None:
    for _ in range(3):
        await clock.sleep(0)


async def test_it_reads_no_lag_when_woken_on_time(clock, meter):
    clock.advance(0.02)
    await settle(clock)
    assert (meter.last, meter.worst, meter.stalls) == (0.0, 0.0, 0)


async def test_it_measures_and_logs_a_stall(clock, meter, caplog):
    caplog.set_level(logging.WARNING, logger="heartbeatd.looplag")
    clock.advance(0.52)  # due after 0.02 s, run after 0.52 s
    await settle(clock)
    assert meter.last == pytest.approx(0.5)
    assert meter.worst == pytest.approx(0.5)
    assert meter.stalls == 1
    assert [r.getMessage() for r in caplog.records] == ["event loop stalled seconds=0.500"]


async def test_a_short_lag_is_measured_but_not_logged(clock, meter, caplog):
    caplog.set_level(logging.WARNING, logger="heartbeatd.looplag")
    clock.advance(0.07)
    await settle(clock)
    assert meter.last == pytest.approx(0.05)
    assert meter.stalls == 0
    assert caplog.records == []


async def test_the_worst_lag_can_start_again(clock, meter):
    clock.advance(0.32)
    await settle(clock)
    assert meter.reset_worst() == pytest.approx(0.3)
    assert meter.worst == 0.0
