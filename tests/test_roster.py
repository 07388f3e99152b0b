"""The roster: which monitors a page or an API call lists, from its index."""

from __future__ import annotations

import random

import pytest

from heartbeatd.model import Status
from heartbeatd.roster import Roster, SortedKeys

UP, DOWN, LATE, NEW, PAUSED = Status.UP, Status.DOWN, Status.LATE, Status.NEW, Status.PAUSED


def roster_of(*monitors: tuple[str, str, tuple[str, ...], Status]) -> Roster:
    roster = Roster()
    roster.rebuild(monitors)
    return roster


@pytest.fixture
def roster() -> Roster:
    return roster_of(
        ("web", "Web site", ("prod",), UP),
        ("backup-db", "Nightly DB backup", ("prod", "db"), DOWN),
        ("backup-files", "Files backup", (), UP),
        ("queue", "queue", ("prod",), LATE),
        ("mail", "Mail relay", (), NEW),
        ("old", "Old cron", (), PAUSED),
        ("api", "api", ("prod",), DOWN),
    )


def test_sorted_keys_keep_order_through_adds_and_removals():
    rng = random.Random(7)
    keys = SortedKeys[str]()
    mirror: set[str] = set()
    # Past two runs' worth, so runs split.
    for _ in range(5000):
        key = f"k{rng.randrange(3000):05d}"
        if key in mirror and rng.random() < 0.4:
            keys.discard(key)
            mirror.discard(key)
        elif key not in mirror:
            keys.add(key)
            mirror.add(key)
    expected = sorted(mirror)
    assert len(keys) == len(expected)
    assert list(keys.iter_from(0)) == expected
    assert list(keys.iter_from(1234)) == expected[1234:]
    probe = expected[500]
    assert keys.rank(probe) == 501
    assert keys.rank("k") == 0


def test_the_page_order_is_worst_first_then_by_name(roster):
    found = roster.page()
    assert found.slugs == ["api", "backup-db", "queue", "mail", "backup-files", "web", "old"]
    assert (found.total, found.more) == (7, False)


def test_pages_follow_each_other_across_statuses(roster):
    pages = [roster.page(offset=offset, limit=3) for offset in (0, 3, 6)]
    assert [p.slugs for p in pages] == [
        ["api", "backup-db", "queue"],
        ["mail", "backup-files", "web"],
        ["old"],
    ]
    assert [p.more for p in pages] == [True, True, False]
    assert roster.page(offset=50).slugs == []


@pytest.mark.parametrize(
    ("filters", "slugs"),
    [
        ({"status": DOWN}, ["api", "backup-db"]),
        ({"tag": "prod"}, ["api", "backup-db", "queue", "web"]),
        ({"tag": "prod", "status": DOWN}, ["api", "backup-db"]),
        ({"q": "BACKUP"}, ["backup-db", "backup-files"]),
        # In the name ("Nightly DB backup") as well as the slug.
        ({"q": "nightly"}, ["backup-db"]),
        ({"q": "backup", "status": UP}, ["backup-files"]),
        ({"tag": "nope"}, []),
    ],
    ids=["status", "tag", "tag+status", "q-slug", "q-name", "q+status", "unknown-tag"],
)
def test_it_filters_by_status_tag_and_text(roster, filters, slugs):
    found = roster.page(**filters)
    assert found.slugs == slugs
    assert found.total == len(slugs)


def test_it_counts_by_status_and_by_tag(roster):
    assert roster.counts() == {DOWN: 2, LATE: 1, NEW: 1, UP: 2, PAUSED: 1}
    assert roster.counts("prod") == {DOWN: 2, LATE: 1, NEW: 0, UP: 1, PAUSED: 0}
    assert roster.tags() == ["db", "prod"]


def test_a_status_change_moves_a_monitor_and_its_counts(roster):
    roster.set_status("web", DOWN)
    assert roster.page(status=DOWN).slugs == ["api", "backup-db", "web"]
    assert roster.counts("prod")[UP] == 0
    roster.set_status("web", UP)
    assert roster.page().slugs[-2:] == ["web", "old"]
    # A slug it does not list stays out (a monitor removed by a reload).
    roster.set_status("gone", DOWN)
    assert "gone" not in roster.page().slugs


def test_put_takes_in_a_new_name_and_tags_and_remove_drops(roster):
    roster.put("web", "A web site", ("edge",), UP)
    assert roster.page(status=UP).slugs == ["web", "backup-files"]
    assert roster.page(tag="prod").slugs == ["api", "backup-db", "queue"]
    assert roster.page(tag="edge").slugs == ["web"]
    roster.remove("web")
    assert roster.page(tag="edge").slugs == []
    assert len(roster) == 6


def test_the_api_order_is_by_slug_and_a_cursor_resumes_after_it(roster):
    first = roster.after(None, limit=3)
    assert first.slugs == ["api", "backup-db", "backup-files"]
    assert (first.total, first.more) == (7, True)
    second = roster.after(first.slugs[-1], limit=3)
    assert second.slugs == ["mail", "old", "queue"]
    third = roster.after(second.slugs[-1], limit=3)
    assert (third.slugs, third.more) == (["web"], False)


def test_a_walk_by_cursor_sees_every_monitor_once_while_statuses_change(roster):
    seen: list[str] = []
    cursor = None
    flips = iter([("web", DOWN), ("api", UP), ("mail", UP), ("queue", DOWN)])
    while True:
        found = roster.after(cursor, limit=2)
        seen += found.slugs
        change = next(flips, None)
        if change:
            roster.set_status(*change)
        if not found.more:
            break
        cursor = found.slugs[-1]
    assert seen == sorted(seen)
    assert sorted(seen) == ["api", "backup-db", "backup-files", "mail", "old", "queue", "web"]


def test_a_cursor_for_a_removed_monitor_still_resumes_after_it(roster):
    roster.remove("mail")
    assert roster.after("mail", limit=2).slugs == ["old", "queue"]


def test_the_api_filters_like_the_page(roster):
    assert roster.after(None, status=DOWN).slugs == ["api", "backup-db"]
    assert roster.after(None, tag="prod", q="e").slugs == ["queue", "web"]
    found = roster.after("backup-db", q="backup", limit=5)
    assert (found.slugs, found.total, found.more) == (["backup-files"], 2, False)


def test_a_search_ignores_case_and_blank_and_nul_characters(roster):
    assert roster.page(q="  Mail ").slugs == ["mail"]
    assert roster.page(q="ma\0il").slugs == ["mail"]


def test_a_search_finds_what_a_substring_test_finds_through_adds_and_removals():
    rng = random.Random(11)
    keys = SortedKeys[str]()
    mirror: set[str] = set()
    words = ["backup", "db", "web", "mail", "bac", "kup"]
    needles = ["backup", "b", "kup\0", "p", "zz", "0", "web-1", "ackup\0w"]
    # Past two runs' worth, so runs split; searched between changes, so
    # what a search kept of a run must follow the run's changes.
    for step in range(6000):
        name = "-".join(rng.choice(words) for _ in range(rng.randrange(1, 3)))
        key = f"{name}\0{name}-{rng.randrange(2500)}"
        if key in mirror and rng.random() < 0.5:
            keys.discard(key)
            mirror.discard(key)
        elif key not in mirror:
            keys.add(key)
            mirror.add(key)
        if step % 500 == 0:
            for needle in needles:
                needle = needle.replace("\0", "")
                expected = sorted(k for k in mirror if needle in k)
                assert keys.matching(needle) == expected, needle
