"""The status page and the monitors API at any size: filters, pages and
cursors, history strips and charts, through the real app over a real store.

An Engine over a real Store in tmp_path, a FakeClock, and aiohttp's test client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config
from heartbeatd.model import Status
from tests.samples import LOG_CHANNEL, config_text

# Five monitors, one of them tagged by name only ("backup" in slug or name).
MONITORS = """
[monitors.backup-db]
name = "Nightly DB backup"
period = "1h"
grace = "5m"
max_runtime = "2m"

[monitors.backup-files]
name = "Files"
period = "1h"
grace = "5m"

[monitors.web]
period = "1d"
tags = ["prod", "edge"]

[monitors.queue]
period = "1d"
tags = ["prod"]

[monitors.mail]
name = "Mail relay backup check"
period = "1d"
"""


@pytest.fixture
async def client(make_client):
    return await make_client(config_text(MONITORS, channels=LOG_CHANNEL))


async def settle(client) -> None:
    # Writes commit in order: once this one is in, every change before it is.
    await client.store.set_meta("barrier", "1")


async def go_down(client, clock: FakeClock) -> None:
    """backup-db and backup-files (1h + 5m) miss their deadlines; the others were pinged."""
    for slug in ("web", "queue", "mail"):
        assert (await client.post(f"/ping/{slug}")).status == 200
    clock.advance(hours=1, minutes=6)
    client.engine.tick(clock.now())
    await settle(client)


def row_slugs(html: str) -> list[str]:
    return re.findall(r'<a class="row" href="monitors/([^"]+)"', html)


# -- the API --------------------------------------------------------------------------


async def test_a_small_install_gets_every_monitor_in_one_answer(client):
    body = await (await client.get("/api/v1/monitors")).json()
    assert [m["slug"] for m in body["monitors"]] == [
        "backup-db",
        "backup-files",
        "mail",
        "queue",
        "web",
    ]
    assert (body["total"], body["next_cursor"]) == (5, None)


async def test_the_api_walks_every_monitor_by_cursor(client):
    seen, cursor, answers = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get("/api/v1/monitors" + query)).json()
        answers += 1
        assert body["total"] == 5
        seen += [m["slug"] for m in body["monitors"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert answers == 3
    assert seen == ["backup-db", "backup-files", "mail", "queue", "web"]


@pytest.mark.parametrize(
    ("query", "slugs"),
    [
        ("status=down", ["backup-db", "backup-files"]),
        ("status=up", ["mail", "queue", "web"]),
        ("q=backup", ["backup-db", "backup-files", "mail"]),
        ("q=NIGHTLY", ["backup-db"]),
        ("q=backup&status=up", ["mail"]),
    ],
)
async def test_the_api_filters_by_status_and_text(client, clock, query, slugs):
    await go_down(client, clock)
    body = await (await client.get(f"/api/v1/monitors?{query}")).json()
    assert [m["slug"] for m in body["monitors"]] == slugs
    assert body["total"] == len(slugs)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("limit=0", "limit must be a number from 1 to 1000"),
        ("limit=1001", "limit must be a number from 1 to 1000"),
        ("limit=" + "9" * 5000, "limit must be a number from 1 to 1000"),
        ("limit=ten", "limit must be a number from 1 to 1000"),
        ("status=sideways", "status must be one of new, up, late, down, paused"),
        ("cursor=bm9wZQ", "cursor is not one this API gave out"),
        ("cursor=%25%25", "cursor is not one this API gave out"),
    ],
)
async def test_the_api_refuses_a_bad_query_in_json(client, query, error):
    response = await client.get(f"/api/v1/monitors?{query}")
    assert response.status == 400
    assert await response.json() == {"error": error}


async def test_the_api_takes_a_limit_of_1000_with_leading_zeros(client):
    body = await (await client.get("/api/v1/monitors?limit=0001000")).json()
    assert len(body["monitors"]) == 5


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v2/monitors", "/api/", "/api/v1/monitors/backup-db/nope"]
)
async def test_an_unknown_api_path_answers_a_json_404(client, path):
    response = await client.get(path)
    assert response.status == 404
    assert response.content_type == "application/json"
    assert await response.json() == {"error": "no such API path"}


async def test_a_wrong_method_on_an_api_path_answers_a_json_405(client):
    response = await client.delete("/api/v1/monitors")
    assert response.status == 405
    assert await response.json() == {"error": "method DELETE not allowed here"}
    assert "GET" in response.headers["Allow"]


async def test_the_api_filters_by_tag(client, clock):
    await go_down(client, clock)
    body = await (await client.get("/api/v1/monitors?tag=prod")).json()
    assert [m["slug"] for m in body["monitors"]] == ["queue", "web"]
    assert body["monitors"][1]["tags"] == ["prod", "edge"]
    body = await (await client.get("/api/v1/monitors?tag=prod&status=down")).json()
    assert (body["monitors"], body["total"]) == ([], 0)
    body = await (await client.get("/api/v1/monitors?tag=nope")).json()
    assert (body["monitors"], body["total"], body["next_cursor"]) == ([], 0, None)


# -- the status page ------------------------------------------------------------------


async def test_the_page_filters_by_tag_and_counts_within_it(client, clock):
    await go_down(client, clock)
    html = await (await client.get("/?tag=prod")).text()
    assert row_slugs(html) == ["queue", "web"]
    # The counts are the tag's: 2 up, none down.
    assert re.search(r'<a class="s s-up" href="\?status=up&amp;tag=prod">2 up</a>', html)
    assert 's-down" href' not in html
    # Every tag is offered, the one shown selected.
    options = re.findall(r"<option( selected)?>(\w+)</option>", html)
    assert options == [("", "edge"), (" selected", "prod")]


async def test_a_reload_that_changes_tags_moves_monitors_between_them(client, clock):
    monitors = MONITORS.replace('tags = ["prod"]', 'tags = ["batch"]')
    client.stack.path.write_text(config_text(monitors, channels=LOG_CHANNEL))
    client.engine.apply_config(load_config(client.stack.path), clock.now())
    assert row_slugs(await (await client.get("/?tag=prod")).text()) == ["web"]
    assert row_slugs(await (await client.get("/?tag=batch")).text()) == ["queue"]


async def test_the_page_filters_by_status_and_text_in_its_url(client, clock):
    await go_down(client, clock)
    html = await (await client.get("/?status=down&q=db")).text()
    assert row_slugs(html) == ["backup-db"]
    html = await (await client.get("/?q=BACKUP")).text()
    # Worst first, then by name: "Files" before "Nightly DB backup".
    assert row_slugs(html) == ["backup-files", "backup-db", "mail"]
    # The form keeps the filter it shows.
    assert 'name="q" value="BACKUP"' in html


async def test_the_page_counts_link_to_their_filter(client, clock):
    await go_down(client, clock)
    html = await (await client.get("/?q=mail")).text()
    assert re.search(r'<a class="s s-down" href="\?status=down&amp;q=mail">2 down</a>', html)
    assert "2 down · 3 up" in re.sub(r"<[^>]+>|\s+", " ", html).replace("  ", " ")


async def test_no_match_says_so_with_a_way_back(client):
    html = await (await client.get("/?q=zzz")).text()
    assert "No monitor matches" in html
    assert row_slugs(html) == []


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("status=sideways", "400: status must be one of down, late, new, up, paused"),
        ("page=0", "400: page must be a number from 1 on"),
        ("page=x", "400: page must be a number from 1 on"),
    ],
)
async def test_the_page_refuses_a_bad_query(client, query, error):
    response = await client.get(f"/?{query}")
    assert response.status == 400
    assert (await response.text()).strip() == error


def page_links(html: str) -> Mapping[str, dict[str, list[str]]]:
    links = re.findall(r'<a rel="(prev|next)" href="([^"]+)"', html)
    return {rel: parse_qs(urlsplit(href.replace("&amp;", "&")).query) for rel, href in links}


def many(n: int) -> str:
    return "".join(f'[monitors.job-{i:04d}]\nperiod = "1h"\n' for i in range(n))


async def test_the_page_shows_100_monitors_a_page_with_stable_links(make_client):
    client = await make_client(config_text(many(250), channels=LOG_CHANNEL))
    first = await (await client.get("/")).text()
    assert row_slugs(first) == [f"job-{i:04d}" for i in range(100)]
    assert "page 1 of 3 · 250 monitors" in first
    assert page_links(first) == {"next": {"page": ["2"]}}
    third = await (await client.get("/?q=job&page=3")).text()
    assert row_slugs(third) == [f"job-{i:04d}" for i in range(200, 250)]
    assert page_links(third) == {"prev": {"q": ["job"], "page": ["2"]}}
    past = await (await client.get("/?page=9")).text()
    assert "No monitors on page 9: there are 3" in past


async def test_the_page_follows_status_changes_through_the_engine(client, clock):
    await go_down(client, clock)
    assert row_slugs(await (await client.get("/?status=down")).text()) == [
        "backup-files",
        "backup-db",
    ]
    assert (await client.post("/ping/backup-db")).status == 200
    await settle(client)
    assert row_slugs(await (await client.get("/?status=down")).text()) == ["backup-files"]
    assert client.engine.roster.counts()[Status.UP] == 4


# -- pictures -------------------------------------------------------------------------


def cells(html: str, slug: str) -> list[tuple[str, str]]:
    """(class, tooltip) of each cell of `slug`'s strip on the overview."""
    row = re.search(rf'href="monitors/{slug}">(.*?)</a>', html, re.S)
    assert row is not None
    return re.findall(r'<rect [^>]*class="h-(\w+)"><title>([^<]*)</title>', row.group(1))


async def test_each_row_has_a_strip_of_its_last_periods(client, clock):
    # Up for two hours, then missed: late for the grace, then down.
    await client.post("/ping/backup-db")
    clock.advance(hours=1)
    await client.post("/ping/backup-db")
    clock.advance(hours=1)
    await client.post("/ping/backup-db")
    clock.advance(hours=1, minutes=30)
    client.engine.tick(clock.now())
    await settle(client)
    html = await (await client.get("/")).text()
    strip = cells(html, "backup-db")
    assert len(strip) == 30
    kinds = [kind for kind, _ in strip]
    # Whole hours, the last one 15:00 to 16:00: no data before 12:00.
    assert kinds[:26] == ["none"] * 26
    assert kinds[26:] == ["up", "up", "up", "down"]
    assert strip[-1][1] == "2026-01-14 15:00 \u2013 16:00 UTC: down, no ping came in time"
    assert 'aria-label="the last 30 periods: 26 no data, 3 up, 1 down"' in html


async def test_the_strips_of_a_page_come_from_one_query(client, clock, monkeypatch):
    await go_down(client, clock)
    calls = []
    flips_since = client.store.flips_since

    async def counted(since: Mapping[str, Any], **options: Any) -> Any:
        calls.append(sorted(since))
        return await flips_since(since, **options)

    monkeypatch.setattr(client.store, "flips_since", counted)
    html = await (await client.get("/")).text()
    assert len(row_slugs(html)) == 5
    assert calls == [["backup-db", "backup-files", "mail", "queue", "web"]]


async def test_the_monitor_page_draws_its_runs_against_max_runtime(client, clock):
    for seconds in (30, 90, 150):
        await client.post("/ping/backup-db/start")
        clock.advance(seconds=seconds)
        await client.post("/ping/backup-db")
        clock.advance(minutes=10)
    await settle(client)
    html = await (await client.get("/monitors/backup-db")).text()
    chart = re.search(r'<svg class="runs".*?</svg>', html, re.S)
    assert chart is not None
    bars = re.findall(r'<rect [^>]*class="r-(ok|fail)"><title>([^<]*)</title>', chart.group(0))
    assert [title.split(": ")[1] for _, title in bars] == [
        "took 30 s",
        "took 1 min 30 s",
        "took 2 min 30 s",
    ]
    limit = re.search(r'<line [^>]*class="limit"[^>]*><title>([^<]*)</title>', chart.group(0))
    assert limit is not None
    assert limit.group(1) == "max_runtime 2 min"


async def test_the_monitor_page_shows_uptime_from_the_flips(client, clock):
    # Up from 12:00, down at 13:05 (missed), up again at 13:10, seen at 13:20:
    # 5 min down of 80 watched.
    await client.post("/ping/backup-db")
    clock.advance(hours=1, minutes=10)
    client.engine.tick(clock.now())
    await client.post("/ping/backup-db")
    clock.advance(minutes=10)
    await settle(client)
    html = await (await client.get("/monitors/backup-db")).text()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "Uptime: 93.75 % over 30 days · 93.75 % over 90 days" in text


async def test_the_monitor_page_shows_its_ping_urls(make_client):
    client = await make_client(
        config_text(
            '[monitors.backup]\nperiod = "1h"\nuuid = "9c4a2f4e-0000-4000-8000-000000000001"\n',
            server='base_url = "https://hb.example.com"\nping_key = "s3cret-ping-key"',
            channels=LOG_CHANNEL,
        )
    )
    html = await (await client.get("/monitors/backup")).text()
    assert "<code>https://hb.example.com/ping/9c4a2f4e-0000-4000-8000-000000000001</code>" in html
    assert "<code>https://hb.example.com/ping/PING_KEY/backup</code>" in html
    assert "s3cret-ping-key" not in html


# -- at scale: a page and an API page do not look at every monitor --------------------


class Counted(dict):
    """A dict that counts what reads it: lookups, and walks over all of it."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.lookups = 0
        self.walks = 0

    def __getitem__(self, key: str) -> Any:
        self.lookups += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.lookups += 1
        return super().get(key, default)

    def __iter__(self) -> Iterator[str]:
        self.walks += 1
        return super().__iter__()

    def items(self) -> Any:
        self.walks += 1
        return super().items()

    def values(self) -> Any:
        self.walks += 1
        return super().values()


SCALE = 20_000


async def test_at_20000_monitors_a_page_and_an_api_page_touch_only_their_rows(make_client, clock):
    # One in a hundred goes down (1h + the default grace of 1h); the rest wait a day.
    text = "".join(
        f'[monitors.job-{i:04d}]\nperiod = "{"1h" if i % 100 == 0 else "1d"}"\n'
        for i in range(SCALE)
    )
    client = await make_client(config_text(text, channels=LOG_CHANNEL))
    engine = client.engine
    clock.advance(hours=2, minutes=1)
    engine.tick(clock.now())
    await settle(client)
    states, monitors = Counted(engine.states), Counted(engine.config.monitors)
    engine.states = states
    engine.config = type(engine.config)(
        **{**{f: getattr(engine.config, f) for f in engine.config.__slots__}, "monitors": monitors}
    )

    html = await (await client.get("/?page=3")).text()
    assert len(row_slugs(html)) == 100
    assert "page 3 of 200 · 20,000 monitors" in html
    body = await (await client.get("/api/v1/monitors?limit=1000&cursor=")).json()
    assert (len(body["monitors"]), body["total"]) == (1000, SCALE)
    down = await (await client.get("/api/v1/monitors?status=down&limit=1000")).json()
    assert (len(down["monitors"]), down["total"]) == (200, 200)
    searched = await (await client.get("/api/v1/monitors?q=job-19")).json()
    # job-19xx and job-19xxx.
    assert searched["total"] == 1100

    assert (states.walks, monitors.walks) == (0, 0)
    # A few lookups for each monitor shown (100 + 1,000 + 200 + 100), none for the rest.
    assert states.lookups + monitors.lookups < 10 * 1400
