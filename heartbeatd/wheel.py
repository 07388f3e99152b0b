"""A timer wheel: one deadline per key, bucketed in slots of a tenth of a second.

Scheduling, rescheduling and cancelling are O(1) dict/set operations (plus a
heap push when a slot gets its first deadline), so a ping moving its
monitor's deadline costs next to nothing, and 100,000 idle monitors cost only
their memory. Nothing here runs by itself: the daemon's ticker sleeps until
`next_due()` (at most a second) and then calls `pop_due()`.

Times in and out are epoch seconds; slots are an internal detail.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# A deadline fires at most one slot late. A tenth of a second keeps alert lag
# well under a second, while monitors pinged in the same slot still share one
# bucket and one wake-up.
SLOTS_PER_SECOND = 10


def slot_time(slot: int) -> float:
    """The epoch second at which `slot` comes due."""
    return slot / SLOTS_PER_SECOND


def _slot(when: float) -> int:
    # Rounding up means a deadline never fires early, and at most one slot
    # late. `when * 10` can round below the exact product; the check keeps
    # "never early" true in the float comparisons pop_due makes.
    slot = math.ceil(when * SLOTS_PER_SECOND)
    if slot_time(slot) < when:
        slot += 1
    return slot


class TimerWheel(Generic[K]):
    def __init__(self) -> None:
        self._buckets: dict[int, set[K]] = {}
        self._slot_of: dict[K, int] = {}
        # Slots that have (or had) a bucket. Emptied buckets leave stale
        # entries behind; pop_due skips them and _compact bounds them.
        self._slots: list[int] = []

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def schedule(self, key: K, when: float) -> None:
        """Fire `key` at the first slot boundary at or after `when` (epoch seconds)."""
        slot = _slot(when)
        old = self._slot_of.get(key)
        if old == slot:
            return
        if old is not None:
            self._discard(key, old)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            heapq.heappush(self._slots, slot)
        bucket.add(key)
        self._slot_of[key] = slot

    def schedule_many(self, keys: Iterable[K], when: float) -> None:
        """schedule(key, when) for every key, with set operations instead of a
        loop: 100,000 new monitors at start-up share a few deadlines."""
        keys = set(keys)
        moving = keys & self._slot_of.keys()
        for key in moving:
            self.schedule(key, when)
        keys -= moving
        if not keys:
            return
        slot = _slot(when)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            heapq.heappush(self._slots, slot)
        bucket |= keys
        self._slot_of.update(dict.fromkeys(keys, slot))

    def cancel(self, key: K) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            self._remove_from_bucket(key, slot)

    def deadline(self, key: K) -> float | None:
        """When `key` fires (its slot's time, epoch seconds), or None."""
        slot = self._slot_of.get(key)
        return None if slot is None else slot_time(slot)

    def next_due(self) -> float | None:
        """When the earliest scheduled key fires (epoch seconds), or None."""
        while self._slots and self._slots[0] not in self._buckets:
            heapq.heappop(self._slots)
        return slot_time(self._slots[0]) if self._slots else None

    def pop_due(self, now: float) -> list[K]:
        """Remove and return every key whose slot time is at or before `now`."""
        due: list[K] = []
        while self._slots and slot_time(self._slots[0]) <= now:
            slot = heapq.heappop(self._slots)
            bucket = self._buckets.pop(slot, None)
            if not bucket:
                continue
            for key in bucket:
                del self._slot_of[key]
            due.extend(bucket)
        return due

    def _discard(self, key: K, slot: int) -> None:
        del self._slot_of[key]
        self._remove_from_bucket(key, slot)

    def _remove_from_bucket(self, key: K, slot: int) -> None:
        bucket = self._buckets[slot]
        bucket.discard(key)
        if not bucket:
            del self._buckets[slot]
            self._compact()

    def _compact(self) -> None:
        # Stale heap entries are harmless but must not grow without bound
        # when deadlines keep moving to fresh slots.
        if len(self._slots) > 2 * len(self._buckets) + 1024:
            self._slots = list(self._buckets)
            heapq.heapify(self._slots)
