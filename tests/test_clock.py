"""Waiting with a timeout on the Clock: the FakeClock times out when it is
advanced past the timeout, and never in real time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from heartbeatd.clock import Clock, FakeClock


async def started(coro) -> asyncio.Task:
    """A task that has run up to its first wait, so its timeout is set."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    return task


async def test_wait_for_gives_the_result_of_what_ends_in_time(clock: FakeClock) -> None:
    answer = asyncio.get_running_loop().create_future()
    task = await started(clock.wait_for(answer, 10))
    answer.set_result(42)
    assert await task == 42


async def test_wait_for_passes_on_an_error(clock: FakeClock) -> None:
    async def fails() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await clock.wait_for(fails(), 10)


async def test_wait_for_times_out_when_the_clock_passes_the_timeout(clock: FakeClock) -> None:
    never = asyncio.Event()
    inner = asyncio.ensure_future(never.wait())
    task = await started(clock.wait_for(inner, 10))

    clock.advance(9.9)
    await asyncio.sleep(0)
    assert not task.done()

    clock.advance(0.1)
    with pytest.raises(asyncio.TimeoutError):
        await task
    # As asyncio.wait_for does: what timed out is cancelled.
    assert inner.cancelled()


async def test_a_cancelled_wait_for_cancels_what_it_waits_for(clock: FakeClock) -> None:
    inner = asyncio.ensure_future(asyncio.Event().wait())
    task = await started(clock.wait_for(inner, 10))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner.cancelled()


async def test_a_wall_clock_jump_does_not_time_out(clock: FakeClock) -> None:
    task = await started(clock.wait_for(asyncio.Event().wait(), 10))
    clock.jump(clock.now() + timedelta(hours=1))
    await asyncio.sleep(0)
    assert not task.done()
    task.cancel()


async def test_wait_returns_when_all_are_done_before_the_timeout(clock: FakeClock) -> None:
    loop = asyncio.get_running_loop()
    a, b = loop.create_future(), loop.create_future()
    task = await started(clock.wait([a, b], 10))
    a.set_result(1)
    await asyncio.sleep(0)
    assert not task.done()
    b.set_result(2)
    assert await task == ({a, b}, set())


async def test_wait_returns_the_pending_ones_at_the_timeout_without_cancelling_them(
    clock: FakeClock,
) -> None:
    loop = asyncio.get_running_loop()
    a, b = loop.create_future(), loop.create_future()
    task = await started(clock.wait([a, b], 10))
    a.set_result(1)
    clock.advance(10)
    assert await task == ({a}, {b})
    assert not b.done()


async def test_wait_first_completed_returns_at_the_first(clock: FakeClock) -> None:
    loop = asyncio.get_running_loop()
    a, b = loop.create_future(), loop.create_future()
    task = await started(clock.wait([a, b], 10, return_when=asyncio.FIRST_COMPLETED))
    b.set_result(2)
    assert await task == ({b}, {a})


async def test_wait_needs_something_to_wait_for(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        await clock.wait([], 10)


async def test_the_real_clock_times_out_too() -> None:
    inner = asyncio.ensure_future(asyncio.Event().wait())
    with pytest.raises(asyncio.TimeoutError):
        await Clock().wait_for(inner, 0)
    assert inner.cancelled()
    pending = asyncio.ensure_future(asyncio.Event().wait())
    assert await Clock().wait([pending], 0) == (set(), {pending})
    pending.cancel()
