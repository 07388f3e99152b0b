"""Which monitors a page or an API call lists, without looking at all of them.

The status page shows monitors worst first (down, late, new, up, paused) and
by name within a status; the API lists them by slug. At 100,000 monitors
sorting or filtering all of them on every request would hold the event loop
for longer than a ping may wait, so the roster keeps both orders as sorted
lists, one per status (and per status and tag), and the engine tells it when
a monitor's status changes (rarely: pings that keep a monitor up change
nothing here). A page of 100 then costs a few bisections and a slice.

A text search (`q`) cannot use an index: it looks at the names and slugs of
the monitors that the other filters leave. Each run of keys keeps them
joined in one string, so the search is str.find over that string (C speed),
and Python looks only at the keys that match.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from heapq import merge
from itertools import accumulate, islice
from typing import Generic, TypeVar

from heartbeatd.model import Status

# Worst first: what needs attention is at the top of the page.
STATUS_ORDER = (Status.DOWN, Status.LATE, Status.NEW, Status.UP, Status.PAUSED)

K = TypeVar("K", bound=str)


class SortedKeys(Generic[K]):
    """Keys kept in order, as a list of sorted runs of at most 2 * LOAD keys.

    Adding or removing a key moves at most one run's tail (a memmove), and
    finding a position skips whole runs by their lengths: no key is looked
    at that is not near the answer.
    """

    LOAD = 1000

    def __init__(self, keys: Iterable[K] = ()) -> None:
        ordered = sorted(keys)
        self._runs: list[list[K]] = [
            ordered[i : i + self.LOAD] for i in range(0, len(ordered), self.LOAD)
        ]
        self._maxes: list[K] = [run[-1] for run in self._runs]
        self._len = len(ordered)
        # Per run, its keys joined by SEP and where each starts, for
        # matching(); None until a search needs it, and again once the run
        # changes.
        self._texts: list[tuple[str, array[int]] | None] = [None] * len(self._runs)

    def __len__(self) -> int:
        return self._len

    def add(self, key: K) -> None:
        if not self._runs:
            self._runs, self._maxes, self._len = [[key]], [key], 1
            self._texts = [None]
            return
        i = min(bisect_left(self._maxes, key), len(self._runs) - 1)
        run = self._runs[i]
        insort(run, key)
        self._maxes[i] = run[-1]
        self._texts[i] = None
        self._len += 1
        if len(run) > 2 * self.LOAD:
            self._runs[i : i + 1] = [run[: self.LOAD], run[self.LOAD :]]
            self._maxes[i : i + 1] = [run[self.LOAD - 1], run[-1]]
            self._texts[i : i + 1] = [None, None]

    def discard(self, key: K) -> None:
        i = bisect_left(self._maxes, key)
        if i == len(self._runs):
            return
        run = self._runs[i]
        j = bisect_left(run, key)
        if j == len(run) or run[j] != key:
            return
        del run[j]
        self._len -= 1
        if run:
            self._maxes[i] = run[-1]
            self._texts[i] = None
        else:
            del self._runs[i], self._maxes[i], self._texts[i]

    def rank(self, key: K) -> int:
        """How many keys are <= `key`."""
        i = bisect_right(self._maxes, key)
        before = sum(len(run) for run in self._runs[:i])
        if i < len(self._runs):
            before += bisect_right(self._runs[i], key)
        return before

    def matching(self, needle: str) -> list[K]:
        """The keys that contain `needle` (which holds no SEP), in order."""
        found: list[K] = []
        for i, run in enumerate(self._runs):
            text = self._texts[i]
            if text is None:
                joined = SEP.join(run)
                starts = array("q", accumulate((len(key) + 1 for key in run), initial=0))
                text = self._texts[i] = (joined, starts)
            joined, starts = text
            # A match never spans a SEP, so it lies inside one key; after it,
            # the search goes on from the next key.
            at = joined.find(needle)
            while at != -1:
                k = bisect_right(starts, at) - 1
                found.append(run[k])
                at = joined.find(needle, starts[k + 1])
        return found

    def iter_from(self, start: int) -> Iterator[K]:
        """The keys from position `start` on, in order."""
        for run in self._runs:
            if start >= len(run):
                start -= len(run)
                continue
            yield from islice(run, start, None)
            start = 0


@dataclass(frozen=True)
class Found:
    """One page of a listing: the slugs on it and how many match in all."""

    slugs: list[str]
    total: int
    # Whether monitors follow the last one on this page.
    more: bool


def fold(text: str) -> str:
    """Search and sort text: case-insensitive, "Straße" finding "STRASSE"."""
    return text.casefold()


# Page-order keys are "<folded name>\0<slug>": strings compare (and sort)
# much faster than tuples, sort as (name, slug) would, and are also what a
# text search looks in. A slug never holds a NUL; a search text loses its NULs.
# A monitor whose name is its slug (the default) has the slug as its key: no
# string of its own, and it sorts among equal names in its own place.
SEP = "\0"


class Roster:
    """The monitors of the running config, by status, in page and slug order."""

    def __init__(self) -> None:
        # slug -> (page key, tags, status)
        self._entries: dict[str, tuple[str, tuple[str, ...], Status]] = {}
        # Keyed by (tag or None for all, status).
        self._by_name: dict[tuple[str | None, Status], SortedKeys[str]] = {}
        self._by_slug: dict[tuple[str | None, Status], SortedKeys[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def rebuild(self, monitors: Iterable[tuple[str, str, Sequence[str], Status]]) -> None:
        """Start over from (slug, name, tags, status) of every monitor: one sort each."""
        entries = {}
        names: dict[tuple[str | None, Status], list[str]] = {}
        slugs: dict[tuple[str | None, Status], list[str]] = {}
        for slug, name, tags, status in monitors:
            key = _page_key(slug, name)
            entries[slug] = (key, tuple(tags), status)
            for group in ((None, status), *((tag, status) for tag in tags)):
                if group not in names:
                    names[group], slugs[group] = [], []
                names[group].append(key)
                slugs[group].append(slug)
        self._entries = entries
        self._by_name = {group: SortedKeys(keys) for group, keys in names.items()}
        self._by_slug = {group: SortedKeys(keys) for group, keys in slugs.items()}

    def put(self, slug: str, name: str, tags: Sequence[str], status: Status) -> None:
        """Add a monitor, or take in its new name, tags or status."""
        self._place(slug, (_page_key(slug, name), tuple(tags), status))

    def _place(self, slug: str, entry: tuple[str, tuple[str, ...], Status]) -> None:
        if self._entries.get(slug) == entry:
            return
        self.remove(slug)
        self._entries[slug] = entry
        key, tags, status = entry
        for group in ((None, status), *((tag, status) for tag in tags)):
            self._by_name.setdefault(group, SortedKeys()).add(key)
            self._by_slug.setdefault(group, SortedKeys()).add(slug)

    def remove(self, slug: str) -> None:
        entry = self._entries.pop(slug, None)
        if entry is None:
            return
        key, tags, status = entry
        for group in ((None, status), *((tag, status) for tag in tags)):
            self._by_name[group].discard(key)
            self._by_slug[group].discard(slug)

    def set_status(self, slug: str, status: Status) -> None:
        """A monitor's status changed; a slug the roster does not list is left out."""
        entry = self._entries.get(slug)
        if entry is not None and entry[2] is not status:
            self._place(slug, (entry[0], entry[1], status))

    # -- reading ------------------------------------------------------------------

    def counts(self, tag: str | None = None) -> dict[Status, int]:
        """How many monitors (with `tag`) have each status, worst first."""
        return {s: len(self._by_name.get((tag, s), ())) for s in STATUS_ORDER}

    def tags(self) -> list[str]:
        return sorted({tag for tag, _ in self._by_name if tag is not None})

    def page(
        self,
        *,
        status: Status | None = None,
        tag: str | None = None,
        q: str = "",
        offset: int = 0,
        limit: int = 100,
    ) -> Found:
        """Worst first, by name within a status: `limit` monitors from `offset` on."""
        runs = self._lists(self._by_name, status, tag)
        needle = _needle(q)
        if needle:
            # Every match is looked at anyway, to count them.
            matched = [key for keys in runs for key in keys.matching(needle)]
            on_page = matched[offset : offset + limit]
            return Found(
                [_slug(key) for key in on_page], len(matched), offset + limit < len(matched)
            )
        total = sum(len(keys) for keys in runs)
        slugs: list[str] = []
        skip = offset
        for keys in runs:
            if skip >= len(keys):
                skip -= len(keys)
                continue
            slugs.extend(_slug(key) for key in islice(keys.iter_from(skip), limit - len(slugs)))
            skip = 0
            if len(slugs) == limit:
                break
        return Found(slugs, total, offset + len(slugs) < total)

    def after(
        self,
        cursor: str | None,
        *,
        status: Status | None = None,
        tag: str | None = None,
        q: str = "",
        limit: int = 100,
    ) -> Found:
        """By slug: `limit` monitors whose slug sorts after `cursor` (None: from the first)."""
        needle = _needle(q)
        if needle:
            runs = self._lists(self._by_name, status, tag)
            # Every match is looked at anyway, to count them.
            matched = sorted(_slug(key) for keys in runs for key in keys.matching(needle))
            start = bisect_right(matched, cursor) if cursor is not None else 0
            on_page = matched[start : start + limit]
            return Found(on_page, len(matched), start + limit < len(matched))
        slug_runs = self._lists(self._by_slug, status, tag)
        streams = [keys.iter_from(keys.rank(cursor) if cursor else 0) for keys in slug_runs]
        # merge() is lazy: it takes from each list no more than it gives out.
        taken = list(islice(merge(*streams), limit + 1))
        total = sum(len(keys) for keys in slug_runs)
        return Found(taken[:limit], total, len(taken) > limit)

    @staticmethod
    def _lists(
        index: dict[tuple[str | None, Status], SortedKeys[str]],
        status: Status | None,
        tag: str | None,
    ) -> list[SortedKeys[str]]:
        statuses = STATUS_ORDER if status is None else (status,)
        return [keys for s in statuses if (keys := index.get((tag, s)))]


def _page_key(slug: str, name: str) -> str:
    folded = fold(name)
    return slug if folded == slug else f"{folded}{SEP}{slug}"


def _slug(key: str) -> str:
    return key[key.rfind(SEP) + 1 :]


def _needle(q: str) -> str:
    return fold(q.replace(SEP, "")).strip()
