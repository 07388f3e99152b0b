"""A timer wheel: one deadline per key, bucketed by whole second.

Scheduling, rescheduling and cancelling are O(1) dict/set operations (plus a
heap push when a second gets its first deadline), so a ping moving its
monitor's deadline costs next to nothing, and 100,000 idle monitors cost only
their memory. Nothing here runs by itself: the daemon's ticker calls
`pop_due()` once a second.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class TimerWheel(Generic[K]):
    def __init__(self) -> None:
        self._buckets: dict[int, set[K]] = {}
        self._slot_of: dict[K, int] = {}
        # Seconds that have (or had) a bucket. Emptied buckets leave stale
        # entries behind; pop_due skips them and _compact bounds them.
        self._slots: list[int] = []

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def schedule(self, key: K, when: float) -> None:
        """Fire `key` at the first whole second at or after `when` (epoch seconds)."""
        # Rounding up means a deadline never fires early, and at most one
        # second late.
        slot = math.ceil(when)
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

    def cancel(self, key: K) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            self._remove_from_bucket(key, slot)

    def deadline(self, key: K) -> int | None:
        return self._slot_of.get(key)

    def next_due(self) -> int | None:
        while self._slots and self._slots[0] not in self._buckets:
            heapq.heappop(self._slots)
        return self._slots[0] if self._slots else None

    def pop_due(self, now: float) -> list[K]:
        """Remove and return every key whose deadline is at or before `now`."""
        due: list[K] = []
        while self._slots and self._slots[0] <= now:
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
        # when deadlines keep moving to fresh seconds.
        if len(self._slots) > 2 * len(self._buckets) + 1024:
            self._slots = list(self._buckets)
            heapq.heapify(self._slots)
