"""The status page and badges, rendered from hand-built monitor objects (no I/O)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from heartbeatd import pages
from heartbeatd.times import isoformat, parse_isoformat
from heartbeatd.views import MonitorView

NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)


def at(**delta: float) -> str:
    """An ISO time relative to NOW: at(minutes=-3) is three minutes ago."""
    return isoformat(NOW + timedelta(**delta))


def monitor(slug: str = "backup", status: str = "up", **fields: object) -> MonitorView:
    """A monitor view (Engine.view), up and pinged 3 minutes ago; `fields` as in its JSON."""
    base = {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "description": "",
        "status": status,
        "reason": None,
        "schedule": "every 1h",
        "grace": 300,
        "started_at": None,
        "last_ping": at(minutes=-3),
        "last_success": at(minutes=-3),
        "last_exit_status": 0,
        "expected_at": at(minutes=57),
        "down_at": at(minutes=62),
        "n_pings": 12,
        "last_duration": 83.0,
        "channels": ["ops"],
    }
    return MonitorView.from_json(base | fields)


def ping(**fields: object) -> dict:
    base = {
        "id": 1,
        "at": at(minutes=-3),
        "kind": "success",
        "exit_status": 0,
        "rid": None,
        "method": "POST",
        "remote_addr": "10.0.0.7",
        "user_agent": "heartbeatd-exec/0.1",
        "body": "",
        "truncated": False,
        "duration": 83.0,
    }
    return base | fields


def flip(at_: str, old: str, new: str, reason: str, **fields: object) -> dict:
    base = {"id": 1, "at": at_, "old": old, "new": new, "reason": reason, "event": None}
    return base | {"deliveries": []} | fields


class Collector(HTMLParser):
    """Tags and attributes, to assert on structure instead of on whitespace."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)


def parse(html: str) -> Collector:
    collector = Collector()
    collector.feed(html)
    return collector


def words(html: str) -> str:
    return " ".join(" ".join(parse(html).text).split())


def index(monitors: list[MonitorView], **listing: object) -> str:
    """The overview of `monitors` as the web layer gathers it: in page order,
    without history strips unless given."""
    ordered = pages.sort_monitors(monitors)
    fields = {
        "rows": [(m, ()) for m in ordered],
        "counts": pages.count_by_status(monitors),
        "total": len(monitors),
    }
    return pages.render_index(pages.Listing(**(fields | listing)), NOW)


def status_words(html: str) -> list[str]:
    return re.findall(r'<span class="pill s-\w+">(\w+)</span>', html)


# -- the overview -------------------------------------------------------------------


def test_it_lists_down_first_then_late_new_up_paused():
    monitors = [
        monitor("a-up", "up"),
        monitor("b-paused", "paused"),
        monitor("c-new", "new"),
        monitor("d-down", "down"),
        monitor("e-late", "late"),
        monitor("f-down", "down"),
    ]
    html = index(monitors)
    assert status_words(html) == ["down", "down", "late", "new", "up", "paused"]
    links = [a["href"] for tag, a in parse(html).tags if tag == "a" and a.get("class") == "row"]
    assert links == [
        "monitors/d-down",
        "monitors/f-down",
        "monitors/e-late",
        "monitors/c-new",
        "monitors/a-up",
        "monitors/b-paused",
    ]


def test_it_shows_the_state_as_a_word_and_a_colour_class():
    html = index([monitor("db", "down")])
    assert '<span class="pill s-down">down</span>' in html
    assert ".s-down { --c: var(--down)" in html


def test_it_shows_times_relative_with_the_iso_time_in_a_title():
    html = index([monitor("db")])
    last, expected = at(minutes=-3), at(minutes=57)
    assert f'<time datetime="{last}" title="{last}">3 min ago</time>' in html
    assert f'<time datetime="{expected}" title="{expected}">in 57 min</time>' in html
    assert "Last run" in html
    assert "1 min 23 s" in html


def test_it_says_since_when_a_down_monitor_is_down():
    down = monitor("db", "down", down_at=at(hours=-2, minutes=-5), expected_at=at(hours=-3))
    text = words(index([down]))
    assert "Down since 2 h 5 min ago" in text
    assert "Next expected" not in text


@pytest.mark.parametrize(
    ("reason", "exit_status", "shown"),
    [
        ("missed", None, "no ping came in time"),
        ("failed", None, "the job reported a failure"),
        ("exit_status", 3, "the job exited with status 3"),
        ("ran_too_long", None, "the job started but did not finish in time"),
    ],
)
def test_it_says_why_a_monitor_is_down(reason, exit_status, shown):
    down = monitor("db", "down", reason=reason, last_exit_status=exit_status)
    assert f'<span class="why">{shown}</span>' in index([down])


def test_it_says_when_a_late_monitor_was_expected():
    late = monitor("db", "late", expected_at=at(minutes=-2))
    assert "Was expected 2 min ago" in words(index([late]))


def test_it_marks_a_running_job():
    running = monitor("db", started_at=at(minutes=-4))
    assert "running 4 min" in words(index([running]))
    assert "running" not in words(index([monitor("db")]))


def test_it_shows_never_for_a_monitor_never_pinged_and_when_it_goes_down():
    new = monitor("db", "new", last_ping=None, last_success=None, last_duration=None)
    text = words(index([new]))
    assert "Last ping never" in text
    assert "Goes down in 1 h 2 min" in text
    # Nothing ran yet: the room goes to when it will go down.
    assert "Last run" not in text


def test_it_says_when_a_late_monitor_goes_down():
    late = monitor("db", "late", expected_at=at(minutes=-2), down_at=at(minutes=3))
    assert "Was expected 2 min ago Goes down in 3 min" in words(index([late]))


def test_it_counts_monitors_by_status_in_the_heading_and_the_title():
    monitors = [monitor("a", "down"), monitor("b", "down"), monitor("c", "up")]
    html = index(monitors)
    assert "<title>(2 down) heartbeatd</title>" in html
    assert "2 down · 1 up" in words(html)
    assert "<title>heartbeatd</title>" in index([monitor("c")])


def test_it_refreshes_itself_and_fits_a_phone():
    html = index([monitor()])
    metas = [attrs for tag, attrs in parse(html).tags if tag == "meta"]
    assert {"http-equiv": "refresh", "content": "30"} in metas
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in metas
    assert "@media (max-width: 44rem)" in html


def test_it_needs_no_javascript_and_no_outside_resources():
    html = index([monitor()])
    tags = {tag for tag, _ in parse(html).tags}
    assert not tags & {"script", "link", "img", "iframe"}


def test_it_escapes_a_monitor_name():
    evil = monitor("x", name='<script>alert("hi")</script>', description="<b>bold</b>")
    html = index([evil])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;hi&#34;)&lt;/script&gt;" in html
    detail = pages.render_monitor(evil, [], [], NOW)
    assert "<script>" not in detail
    assert "<b>bold</b>" not in detail
    assert "&lt;b&gt;bold&lt;/b&gt;" in detail


def test_it_says_so_when_there_are_no_monitors():
    assert "No monitors yet" in words(index([]))


# -- one monitor --------------------------------------------------------------------


def test_it_shows_a_ping_body_escaped_and_collapsed():
    body = "dumping…\n<script>alert(1)</script>\ndone"
    html = pages.render_monitor(monitor(), [ping(body=body, truncated=True)], [], NOW)
    assert "<script>" not in html
    match = re.search(r"<details>\s*<summary>(.*?)</summary>\s*<pre>\n(.*?)</pre>", html, re.S)
    assert match is not None
    assert match.group(1) == "output, 41 B, truncated"
    assert match.group(2) == "dumping…\n&lt;script&gt;alert(1)&lt;/script&gt;\ndone"


def test_it_keeps_a_body_that_starts_with_a_newline():
    # HTML drops one newline right after <pre>; the template adds its own.
    html = pages.render_monitor(monitor(), [ping(body="\nfirst")], [], NOW)
    assert "<pre>\n\nfirst</pre>" in html


def test_it_lists_pings_with_kind_exit_status_and_duration():
    pings = [
        ping(id=2, kind="fail", exit_status=3, duration=4.25, at=at(minutes=-1)),
        ping(id=1, kind="start", exit_status=None, duration=None, at=at(minutes=-5)),
    ]
    text = words(pages.render_monitor(monitor(), pings, [], NOW))
    assert "1 min ago fail (exit 3) took 4.2 s POST from 10.0.0.7" in text
    assert "5 min ago start POST from 10.0.0.7" in text
    assert "<details>" not in pages.render_monitor(monitor(), pings, [], NOW)


def test_it_shows_each_flip_with_the_downtime_it_ended():
    flips = [
        flip(at(minutes=-10), "down", "up", "recovered", id=3),
        flip(at(hours=-1, minutes=-15), "up", "down", "missed", id=2, event="down"),
        flip(at(hours=-3), "new", "up", "recovered", id=1),
    ]
    text = words(pages.render_monitor(monitor(), [], flips, NOW))
    assert "10 min ago down → up a success ping came in down for 1 h 5 min" in text
    assert "1 h 15 min ago up → down no ping came in time" in text
    assert text.count("down for") == 1


def test_it_shows_how_long_a_monitor_has_been_down_so_far():
    down = monitor("db", "down", reason="exit_status", last_exit_status=2, down_at=at(minutes=-20))
    flips = [flip(at(minutes=-20), "up", "down", "exit_status", event="down")]
    text = words(pages.render_monitor(down, [], flips, NOW))
    assert "down for 20 min so far" in text
    assert "down because: the job exited with status 2" in text


def test_a_reminder_is_not_a_downtime_of_its_own():
    down = monitor("db", "down", down_at=at(hours=-3))
    flips = [
        flip(at(hours=-1), "down", "down", "missed", event="reminder"),
        flip(at(hours=-2), "down", "down", "missed", event="reminder"),
        flip(at(hours=-3), "up", "down", "missed", event="down"),
        flip(at(hours=-5), "down", "up", "recovered", event="up"),
        flip(at(hours=-6), "up", "down", "missed", event="down"),
    ]
    rows = pages.flip_rows(flips, "down", NOW)
    assert [(r["downtime"], r["ongoing"]) for r in rows] == [
        (None, False),
        (None, False),
        (3 * 3600, True),
        (3600, False),
        (None, False),
    ]
    text = words(pages.render_monitor(down, [], flips, NOW))
    assert "1 h ago down still down: reminder" in text
    assert "down for 3 h so far" in text


def test_a_downtime_that_ended_is_not_ongoing():
    flips = [
        flip(at(hours=-1), "down", "paused", "recovered"),
        flip(at(hours=-3), "up", "down", "missed", event="down"),
    ]
    rows = pages.flip_rows(flips, "paused", NOW)
    assert [(r["downtime"], r["ongoing"]) for r in rows] == [(7200, False), (None, False)]


def test_it_shows_where_each_flip_was_alerted():
    delivery = {"channel": "ops", "state": "failed", "attempts": 5, "last_error": "<530 auth>"}
    flips = [flip(at(minutes=-1), "up", "down", "failed", deliveries=[delivery])]
    html = pages.render_monitor(monitor(), [], flips, NOW)
    assert "alerts: ops failed" in words(html)
    assert 'title="&lt;530 auth&gt;"' in html


def test_it_links_back_to_the_overview_relatively():
    # Relative links keep working behind a reverse proxy that adds a path prefix.
    html = pages.render_monitor(monitor(), [], [], NOW)
    hrefs = {attrs["href"] for tag, attrs in parse(html).tags if tag == "a"}
    assert hrefs == {"../"}


def test_it_shows_the_monitor_facts():
    m = monitor("backup", "up", description="pg_dumpall to S3", last_exit_status=0, n_pings=12)
    text = words(pages.render_monitor(m, [], [], NOW))
    for fact in (
        "pg_dumpall to S3",
        "Schedule every 1h, grace 5 min",
        "Next expected in 57 min",
        "Goes down in 1 h 2 min",
        "Last run took 1 min 23 s",
        "Last exit status 0",
        "Pings received 12",
        "Alerts to ops",
    ):
        assert fact in text


# -- words for times ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "\u2013"),
        (0.354, "0.4 s"),
        (83, "1 min 23 s"),
    ],
)
def test_it_formats_run_times(seconds, expected):
    assert pages.run_time(seconds) == expected


@pytest.mark.parametrize(
    ("iso", "expected"),
    [
        (None, "never"),
        (at(seconds=0), "just now"),
        (at(seconds=-42), "42 s ago"),
        (at(minutes=-3), "3 min ago"),
        (at(minutes=5), "in 5 min"),
    ],
)
def test_it_says_how_long_ago(iso, expected):
    assert pages.ago(parse_isoformat(iso), NOW) == expected


# -- badges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "colour"),
    [
        ("up", "brightgreen"),
        ("late", "orange"),
        ("down", "red"),
        ("new", "lightgrey"),
        ("paused", "blue"),
    ],
)
def test_it_colours_the_json_badge_by_status(status, colour):
    assert pages.badge_json("Backup", status) == {
        "schemaVersion": 1,
        "label": "Backup",
        "message": status,
        "color": colour,
    }


def test_it_draws_a_well_formed_svg_badge():
    svg = pages.render_badge_svg("Nightly backup", "down")
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("aria-label") == "Nightly backup: down"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["Nightly backup", "Nightly backup", "down", "down"]
    assert 'fill="#e05d44"' in svg


def test_it_escapes_the_badge_label():
    svg = pages.render_badge_svg('<a href="x">&', "up")
    root = ET.fromstring(svg)
    assert root.find("{http://www.w3.org/2000/svg}title").text == '<a href="x">&: up'


def test_a_longer_label_makes_a_wider_badge():
    def width(label: str) -> int:
        return int(ET.fromstring(pages.render_badge_svg(label, "up")).get("width"))

    assert width("a-much-longer-monitor-name") > width("db") > 0
