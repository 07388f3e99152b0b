"""A monitor's statuses over time from its flips: strip cells and uptime; and
the SVG pictures drawn from them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from heartbeatd import charts, timeline
from heartbeatd.schedule import Schedule
from heartbeatd.times import format_stored, isoformat
from tests.samples import NOW

HOUR = timedelta(hours=1)
# Cells are whole hours: seen at 11:59, the last one is 11:00 to 12:00.
SEEN = NOW - timedelta(minutes=1)
SVG = "{http://www.w3.org/2000/svg}"


def flip(at, old: str, new: str, reason: str) -> dict:
    return {"at": format_stored(at), "old": old, "new": new, "reason": reason}


def spans(flips, status="up", **state):
    state.setdefault("first_seen", NOW - 48 * HOUR)
    state.setdefault("expected_at", None)
    return timeline.spans(flips, status=status, grace=300, now=NOW, **state)


@pytest.mark.parametrize(
    ("schedule", "length"),
    [
        (Schedule(period=3600), HOUR),
        (Schedule(cron="0 2 * * *"), timedelta(days=1)),
        (Schedule(cron="*/5 * * * *"), timedelta(minutes=5)),
        # Weekdays only: 8 gaps from Wednesday 14 to Monday 26 January.
        (Schedule(cron="0 9 * * 1-5"), timedelta(days=12) / 8),
    ],
    ids=["period", "daily", "5min", "weekdays"],
)
def test_a_cell_is_one_expected_run(schedule, length):
    assert timeline.cell_length(schedule, NOW) == length


def test_cells_keep_their_place_as_time_passes():
    history = spans([], status="up")
    at_start = timeline.strip(history, NOW, HOUR, cells=3)
    later = timeline.strip(history, NOW + timedelta(minutes=59), HOUR, cells=3)
    assert [c.start for c in at_start] == [c.start for c in later]
    assert at_start[-1].start == NOW
    assert timeline.strip(history, NOW + HOUR, HOUR, cells=3)[-1].start == NOW + HOUR


def test_a_monitor_never_flipped_has_no_data_before_it_was_first_seen():
    history = spans([], status="new", first_seen=NOW - 2.5 * HOUR)
    cells = timeline.strip(history, SEEN, HOUR, cells=4)
    assert [c.status for c in cells] == ["none", "none", "none", "none"]
    history = spans([], status="up", first_seen=NOW - 2.5 * HOUR)
    assert [c.status for c in timeline.strip(history, SEEN, HOUR, cells=4)] == [
        "none",
        "up",
        "up",
        "up",
    ]


def test_a_cell_shows_the_worst_status_it_saw_and_why():
    flips = [
        flip(NOW - 10 * HOUR, "new", "up", "recovered"),
        flip(NOW - 2.5 * HOUR, "up", "down", "failed"),
        flip(NOW - 2.4 * HOUR, "down", "up", "recovered"),
        flip(NOW - 1.5 * HOUR, "up", "paused", "recovered"),
    ]
    cells = timeline.strip(spans(flips), SEEN, HOUR, cells=4)
    assert [(c.status, c.reason) for c in cells] == [
        ("up", "recovered"),
        ("down", "failed"),
        # Up, then paused at 10:30: the pause tells more.
        ("paused", "recovered"),
        ("paused", "recovered"),
    ]
    assert (cells[0].start, cells[-1].end) == (NOW - 4 * HOUR, NOW)


def test_the_grace_before_a_missed_deadline_was_late():
    flips = [
        flip(NOW - 10 * HOUR, "new", "up", "recovered"),
        # Missed: expected at -1h05m, down 5 min (the grace) later.
        flip(NOW - HOUR, "up", "down", "missed"),
    ]
    history = spans(flips, status="down")
    assert [(s.status, s.start) for s in history[-2:]] == [
        ("late", NOW - HOUR - timedelta(minutes=5)),
        ("down", NOW - HOUR),
    ]
    cells = timeline.strip(history, SEEN, HOUR, cells=3)
    assert [c.status for c in cells] == ["up", "late", "down"]


def test_a_late_monitor_is_late_from_when_it_was_expected():
    flips = [flip(NOW - 10 * HOUR, "new", "up", "recovered")]
    history = spans(flips, status="late", expected_at=NOW - timedelta(minutes=2))
    cells = timeline.strip(history, SEEN, HOUR, cells=2)
    assert [c.status for c in cells] == ["up", "late"]


def test_a_paused_monitor_is_paused_from_now_only():
    # Pausing stores no flip: the strip knows only that it is paused now.
    flips = [flip(NOW - 10 * HOUR, "new", "up", "recovered")]
    history = spans(flips, status="paused")
    cells = timeline.strip(history, NOW, HOUR, cells=2)
    assert [c.status for c in cells] == ["up", "paused"]


def test_the_flip_before_the_window_says_what_it_was_at_its_start():
    flips = [flip(NOW - 100 * HOUR, "up", "down", "exit_status")]
    cells = timeline.strip(spans(flips, status="down"), SEEN, HOUR, cells=3)
    assert [(c.status, c.reason) for c in cells] == [("down", "exit_status")] * 3


def test_uptime_counts_time_not_down_of_the_time_watched():
    flips = [
        flip(NOW - 10 * HOUR, "new", "up", "recovered"),
        flip(NOW - 4 * HOUR, "up", "down", "failed"),
        flip(NOW - 3 * HOUR, "down", "up", "recovered"),
        flip(NOW - 2 * HOUR, "up", "paused", "recovered"),
    ]
    # Watched 8 h (10 h less 2 paused), down 1 h of them.
    assert timeline.uptime(spans(flips), NOW, 30) == pytest.approx(7 / 8)
    # Over the last 3 hours only: 1 h up, 2 h paused.
    assert timeline.uptime(spans(flips), NOW, 0) is None
    assert timeline.uptime(spans([], status="new"), NOW, 30) is None


# -- pictures -------------------------------------------------------------------------


def test_the_strip_is_svg_with_a_tooltip_per_cell():
    cells = [
        timeline.Cell(NOW - 2 * HOUR, NOW - HOUR, "up", "recovered"),
        timeline.Cell(NOW - HOUR, NOW, "down", "missed"),
    ]
    svg = ET.fromstring(str(charts.strip_svg(cells)))
    rects = svg.findall(f"{SVG}rect")
    assert [r.get("class") for r in rects] == ["h-up", "h-down"]
    assert [r.find(f"{SVG}title").text for r in rects] == [
        "2026-01-14 10:00 \u2013 11:00 UTC: up",
        "2026-01-14 11:00 \u2013 12:00 UTC: down, no ping came in time",
    ]
    assert svg.get("aria-label") == "the last 2 periods: 1 up, 1 down"


def test_the_run_chart_draws_max_runtime_above_the_bars():
    runs = [
        {"at": isoformat(NOW), "kind": "fail", "exit_status": 2, "duration": 0.4},
        {"at": isoformat(NOW - HOUR), "kind": "success", "exit_status": None, "duration": 60.0},
    ]
    svg = ET.fromstring(str(charts.runs_svg(runs, 120)))
    bars = svg.findall(f"{SVG}rect")
    # Oldest on the left.
    assert [b.get("class") for b in bars] == ["r-ok", "r-fail"]
    assert bars[1].find(f"{SVG}title").text == (
        "2026-01-14 12:00:00 UTC: took 0.4 s, exit status 2"
    )
    line = svg.find(f"{SVG}line[@class='limit']")
    assert line is not None
    # Higher on the page (a smaller y) than the top of the longest bar.
    assert float(line.get("y1")) < float(bars[0].get("y"))
    assert "max_runtime 2 min" in str(charts.runs_svg(runs, 120))


def test_a_daemon_gap_shows_unknown_and_is_left_out_of_uptime():
    # heartbeatd was not running from 09:00 to 11:00: two `unknown` rows.
    flips = [
        flip(NOW - 10 * HOUR, "new", "up", "recovered"),
        flip(NOW - 3 * HOUR, "up", "unknown", "daemon_gap"),
        flip(NOW - 1 * HOUR, "unknown", "up", "daemon_gap"),
    ]
    history = spans(flips)
    cells = timeline.strip(history, SEEN, HOUR, cells=4)
    assert [c.status for c in cells] == ["up", "unknown", "unknown", "up"]
    # Watched 8 of the last 10 hours, never down.
    assert timeline.uptime(history, NOW, days=1) == 1.0
    svg = charts.strip_svg(cells)
    assert "2 unknown (heartbeatd was not running)" in svg
