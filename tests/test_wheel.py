from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.wheel import SLOTS_PER_SECOND, TimerWheel

SLOT = 1 / SLOTS_PER_SECOND


def test_it_fires_a_deadline_at_the_first_tenth_of_a_second_at_or_after_it():
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 100.23)
    assert wheel.deadline("a") == 100.3
    assert wheel.next_due() == 100.3
    assert wheel.pop_due(100.29) == []
    assert wheel.pop_due(100.3) == ["a"]
    assert len(wheel) == 0


def test_a_deadline_on_a_slot_boundary_fires_at_it():
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 100.2)
    assert wheel.pop_due(100.19) == []
    assert wheel.pop_due(100.2) == ["a"]


def test_deadlines_in_the_same_tenth_share_a_slot():
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 100.01)
    wheel.schedule("b", 100.09)
    wheel.schedule("c", 100.11)
    assert wheel.next_due() == 100.1
    assert sorted(wheel.pop_due(100.1)) == ["a", "b"]
    assert wheel.next_due() == 100.2


def test_rescheduling_moves_the_single_deadline():
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 100)
    wheel.schedule("a", 200)
    assert wheel.pop_due(150) == []
    assert wheel.deadline("a") == 200
    assert wheel.pop_due(200) == ["a"]


def test_cancel_removes_it():
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 100)
    wheel.cancel("a")
    wheel.cancel("never-scheduled")
    assert wheel.pop_due(1000) == []
    assert wheel.next_due() is None


def test_next_due_skips_emptied_seconds():
    wheel: TimerWheel[str] = TimerWheel()
    wheel.schedule("a", 100)
    wheel.schedule("b", 300)
    wheel.cancel("a")
    assert wheel.next_due() == 300


def test_next_due_is_none_when_empty():
    wheel: TimerWheel[str] = TimerWheel()
    assert wheel.next_due() is None


def test_many_reschedules_keep_the_heap_bounded():
    wheel: TimerWheel[int] = TimerWheel()
    for i in range(100_000):
        wheel.schedule(1, 1000 + i * SLOT)
    assert len(wheel._slots) < 2_000


@given(
    st.lists(st.tuples(st.integers(0, 50), st.floats(0, 10_000)), max_size=200),
    st.floats(0, 10_000),
)
def test_pop_due_returns_exactly_the_keys_whose_last_deadline_passed(ops, now):
    wheel: TimerWheel[int] = TimerWheel()
    last: dict[int, float] = {}
    for key, when in ops:
        wheel.schedule(key, when)
        last[key] = when
    due = sorted(wheel.pop_due(now))
    # A deadline fires at the first slot boundary at or after it.
    assert due == sorted(k for k, w in last.items() if math.ceil(w * 10) / 10 <= now)
    # So never early, and at most one slot late (give or take float rounding).
    assert all(last[k] <= now for k in due)
    assert all(last[k] > now - SLOT - 1e-9 for k in last if k not in due)
    for k in last:
        if k not in due:
            deadline = wheel.deadline(k)
            assert deadline is not None
            assert last[k] <= deadline < last[k] + SLOT + 1e-9


@given(
    before=st.dictionaries(st.integers(0, 30), st.floats(0, 1000)),
    keys=st.sets(st.integers(0, 30)),
    when=st.floats(0, 1000),
)
def test_scheduling_many_keys_at_once_is_scheduling_each(
    before: dict[int, float], keys: set[int], when: float
):
    one: TimerWheel[int] = TimerWheel()
    many: TimerWheel[int] = TimerWheel()
    for key, at in before.items():
        one.schedule(key, at)
        many.schedule(key, at)
    for key in keys:
        one.schedule(key, when)
    many.schedule_many(keys, when)
    assert {k: many.deadline(k) for k in range(31)} == {k: one.deadline(k) for k in range(31)}
    assert many.next_due() == one.next_due()
    assert sorted(many.pop_due(1001)) == sorted(one.pop_due(1001))
