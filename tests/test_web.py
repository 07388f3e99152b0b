"""The ping endpoint over real HTTP (aiohttp test server), real SQLite, fake clock."""

from __future__ import annotations

import asyncio
import sqlite3
import string
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heartbeatd import pingurl
from heartbeatd.config import load_config
from heartbeatd.model import PingKind, Status
from tests.harness import POLL, PROMPT, open_stack

UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
RID = "0c7b3a0e-3c5e-4b0e-9a51-111111111111"
TOKEN = "t0ken"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = f"""
[server]
{{server_extra}}

[storage]
path = "hb.db"
max_body = 100

[channels.log]
type = "log"

[monitors.backup]
period = "1h"
uuid = "{UUID}"

[monitors.web]
period = "1m"
"""


async def make_client(
    tmp_path, aiohttp_client, clock, server_extra='trusted_proxies = ["10.0.0.0/8"]'
):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG.replace("{server_extra}", server_extra)))
    stack = await open_stack(path, clock)
    client = await aiohttp_client(stack.app())
    client.engine = stack.engine
    client.store = stack.store
    return client


@pytest.fixture
async def client(tmp_path, aiohttp_client, clock):
    client = await make_client(tmp_path, aiohttp_client, clock)
    yield client
    await client.store.close()


@pytest.fixture
async def keyed(tmp_path, aiohttp_client, clock):
    client = await make_client(tmp_path, aiohttp_client, clock, 'ping_key = "s3cret-key"')
    yield client
    await client.store.close()


async def kinds(client, slug="backup"):
    return [(p["kind"], p["exit_status"]) for p in reversed(await client.store.pings(slug))]


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        (f"/ping/{UUID}", ("success", None)),
        (f"/ping/{UUID.upper()}", ("success", None)),
        (f"/ping/{UUID}/start", ("start", None)),
        (f"/ping/{UUID}/fail", ("fail", None)),
        (f"/ping/{UUID}/log", ("log", None)),
        (f"/ping/{UUID}/0", ("success", 0)),
        (f"/ping/{UUID}/255", ("fail", 255)),
        ("/ping/backup", ("success", None)),
        ("/ping/backup/start", ("start", None)),
        ("/ping/backup/fail", ("fail", None)),
        ("/ping/backup/log", ("log", None)),
        ("/ping/backup/3", ("fail", 3)),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
async def test_it_accepts_every_ping_form(client, path, stored, method):
    response = await client.request(method, path)
    assert response.status == 200
    assert response.headers["Ping-Body-Limit"] == "100"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "no-cache" in response.headers["Cache-Control"]
    if method != "HEAD":
        assert await response.text() == "OK"
    assert await kinds(client) == [stored]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ping/nope", 404),
        # An unknown monitor is unknown whatever follows it.
        ("/ping/nope/256", 404),
        ("/ping/backup/256", 400),
        ("/ping/backup/99999999999999999999", 400),
        # Python's int() refuses over 4300 digits with a ValueError: not a 500.
        ("/ping/backup/" + "9" * 5000, 400),
        (f"/ping/{UUID}/" + "1" * 5000, 400),
        # At most three digits, as the exit status a shell reports.
        ("/ping/backup/0255", 400),
        ("/ping/backup/-1", 404),
        ("/ping/backup/nope", 404),
        ("/ping/backup/start/extra", 404),
        ("/ping/00000000-0000-0000-0000-000000000000", 404),
        (f"/ping/{UUID}/backup/start", 404),
        ("/ping/", 404),
        ("/ping//backup", 404),
        ("/ping/backup?rid=not-a-uuid", 400),
    ],
)
async def test_it_refuses_what_it_cannot_map(client, path, status):
    response = await client.get(path)
    assert response.status == status
    assert response.headers["Ping-Body-Limit"] == "100"
    assert await kinds(client) == []


async def test_a_rid_ties_start_and_finish_and_may_be_uppercase(client, clock):
    assert (await client.get(f"/ping/backup/start?rid={RID.upper()}")).status == 200
    clock.advance(seconds=7)
    assert (await client.get(f"/ping/backup?rid={RID}")).status == 200
    pings = await client.store.pings("backup")
    assert pings[0]["rid"] == RID
    assert pings[0]["duration"] == 7.0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    address=st.sampled_from([(pingurl.By.UUID, UUID, "backup"), (pingurl.By.SLUG, "web", "web")]),
    action=st.one_of(
        st.sampled_from([("success", None), ("start", None), ("fail", None), ("log", None)]),
        st.integers(0, 255).map(lambda n: ("success" if n == 0 else "fail", n)),
    ),
    rid=st.none() | st.uuids().map(str),
)
async def test_a_url_built_by_the_grammar_is_stored_as_what_it_says(client, address, action, rid):
    by, monitor, slug = address
    kind, exit_status = action
    target = pingurl.PingTarget(by, monitor, PingKind(kind), exit_status, rid=rid)
    response = await client.get(pingurl.build("", target))
    assert response.status == 200
    [ping] = await client.store.pings(slug, limit=1)
    assert (ping["kind"], ping["exit_status"], ping["rid"]) == (kind, exit_status, rid)


async def test_a_ping_key_guards_slug_urls(keyed):
    assert (await keyed.get("/ping/s3cret-key/backup")).status == 200
    assert (await keyed.get("/ping/s3cret-key/backup/fail")).status == 200
    # Without the key (or with a wrong one) a slug is unknown; uuids still work.
    assert (await keyed.get("/ping/backup")).status == 404
    assert (await keyed.get("/ping/wrong-key/backup")).status == 404
    assert (await keyed.get(f"/ping/{UUID}")).status == 200
    assert await kinds(keyed) == [("success", None), ("fail", None), ("success", None)]


async def test_the_api_shows_each_monitor_its_ping_url_but_never_the_ping_key(keyed):
    listed = await (await keyed.get("/api/v1/monitors")).json()
    shown = [(m["slug"], m["uuid"], m["ping_url"]) for m in listed["monitors"]]
    # A slug URL would carry [server] ping_key, which guards exactly such URLs.
    assert shown == [
        ("backup", UUID, f"http://127.0.0.1:8080/ping/{UUID}"),
        ("web", None, None),
    ]


async def test_without_a_ping_key_a_monitor_without_uuid_shows_its_slug_url(client):
    web = await (await client.get("/api/v1/monitors/web")).json()
    assert (web["uuid"], web["ping_url"]) == (None, "http://127.0.0.1:8080/ping/web")


async def test_a_long_body_is_truncated_and_the_ping_still_counts(client):
    response = await client.post("/ping/backup/fail", data=b"x" * 5000 + b"END")
    assert response.status == 200
    ping = (await client.store.pings("backup"))[0]
    assert ping["body"] == "x" * 100
    assert ping["truncated"] is True


async def test_bytes_that_are_not_utf8_are_replaced_not_refused(client):
    response = await client.post("/ping/backup", data=b"ok \xff\xfe done")
    assert response.status == 200
    assert (await client.store.pings("backup"))[0]["body"] == "ok \ufffd\ufffd done"


async def test_the_user_agent_is_cut_to_200_characters(client):
    await client.get("/ping/backup", headers={"User-Agent": "u" * 1000})
    assert (await client.store.pings("backup"))[0]["user_agent"] == "u" * 200


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (None, "127.0.0.1"),
        ("203.0.113.9", "127.0.0.1"),
    ],
    ids=["direct", "untrusted-peer"],
)
async def test_x_forwarded_for_is_ignored_from_untrusted_peers(client, forwarded, expected):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    await client.get("/ping/backup", headers=headers)
    assert (await client.store.pings("backup"))[0]["remote_addr"] == expected


async def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(tmp_path, aiohttp_client, clock):
    client = await make_client(
        tmp_path, aiohttp_client, clock, 'trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]'
    )
    try:
        # The client, then a trusted proxy in front of us: the client is the answer.
        await client.get("/ping/backup", headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3"})
        assert (await client.store.pings("backup"))[0]["remote_addr"] == "203.0.113.9"
    finally:
        await client.store.close()


async def test_a_database_that_cannot_be_written_answers_503(client, tmp_path, caplog):
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute(
            "CREATE TRIGGER full_disk BEFORE INSERT ON pings "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
    response = await client.get("/ping/backup")
    assert response.status == 503
    assert response.headers["Ping-Body-Limit"] == "100"
    # Logged under the package's name, whichever of its modules wrote it.
    logged = [r for r in caplog.records if r.getMessage().startswith("ping not stored")]
    assert [(r.name, r.levelname) for r in logged] == [("heartbeatd.web", "ERROR")]
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute("DROP TRIGGER full_disk")
    assert (await client.get("/ping/backup")).status == 200


async def test_the_api_lists_monitors_with_the_contract_fields(client):
    await client.get("/ping/backup")
    body = await (await client.get("/api/v1/monitors")).json()
    fields = {
        "slug",
        "name",
        "status",
        "started_at",
        "last_ping",
        "expected_at",
        "down_at",
        "n_pings",
        "last_duration",
    }
    assert [m["slug"] for m in body["monitors"]] == ["backup", "web"]
    assert fields <= set(body["monitors"][0])
    assert body["monitors"][0]["status"] == "up"
    assert body["monitors"][0]["last_ping"].endswith("Z")


async def test_the_api_monitor_object_is_exactly_this(client, clock):
    """Keys, their order and every value's form: what scripts parse."""
    clock.advance(seconds=0.7)
    await client.get(f"/ping/backup/start?rid={RID}")
    clock.advance(seconds=83.6)
    await client.post(f"/ping/{UUID}/0?rid={RID}", data=b"done")
    response = await client.get("/api/v1/monitors/backup")
    assert response.content_type == "application/json"
    assert await response.text() == (
        '{"slug": "backup", "name": "backup", "description": "", "status": "up",'
        ' "reason": null, "schedule": "every 1h", "grace": 3600, "started_at": null,'
        ' "last_ping": "2026-01-14T12:01:24Z", "last_success": "2026-01-14T12:01:24Z",'
        ' "last_exit_status": 0, "expected_at": "2026-01-14T13:01:24Z",'
        ' "down_at": "2026-01-14T14:01:24Z", "n_pings": 2, "last_duration": 83.6,'
        f' "channels": ["log"], "uuid": "{UUID}", "ping_url": "http://127.0.0.1:8080/ping/{UUID}",'
        ' "tags": [], "source": "file", "alert": "quiet", "held_by": null, "snoozed_until": null,'
        ' "snooze_reason": "", "maintenance": null, "maintenance_until": null,'
        ' "acked_at": null, "acked_by": "", "ack_note": "",'
        ' "runs": {"runs": 1, "median": 83.6, "p95": 83.6}}'
    )
    # The list leaves out the run statistics, which are read from the database.
    listed = await (await client.get("/api/v1/monitors")).json()
    detail = await response.json()
    del detail["runs"]
    assert listed["monitors"][0] == detail


async def test_the_api_monitor_object_has_median_and_p95_of_stored_runs(client, clock):
    for seconds in (10, 20, 30, 40, 1000):
        await client.get("/ping/backup/start")
        clock.advance(seconds=seconds)
        await client.get("/ping/backup")
    body = await (await client.get("/api/v1/monitors/backup")).json()
    assert body["runs"] == {"runs": 5, "median": 30.0, "p95": 1000.0}
    body = await (await client.get("/api/v1/monitors/web")).json()
    assert body["runs"] == {"runs": 0, "median": None, "p95": None}


async def test_a_failed_monitor_says_why_and_with_what_exit_status(client):
    await client.get("/ping/web/3")
    body = await (await client.get("/api/v1/monitors/web")).json()
    assert (body["status"], body["reason"], body["last_exit_status"]) == ("down", "exit_status", 3)
    assert body["down_at"] == "2026-01-14T12:00:00Z"


@pytest.fixture
async def tokened(tmp_path, aiohttp_client, clock):
    client = await make_client(tmp_path, aiohttp_client, clock, f'api_token = "{TOKEN}"')
    yield client
    await client.store.close()


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_a_write_the_database_refuses_answers_503_with_a_json_error(
    tokened, tmp_path, action
):
    await tokened.get("/ping/backup")
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute(
            "CREATE TRIGGER full_disk BEFORE UPDATE ON monitors "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
    response = await tokened.post(f"/api/v1/monitors/backup/{action}", headers=BEARER)
    assert response.status == 503
    assert await response.json() == {"error": "storage unavailable"}
    # Rolled back: what the API shows is what is stored.
    assert tokened.engine.state("backup").status is Status.UP
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute("DROP TRIGGER full_disk")
    assert (await tokened.post("/api/v1/monitors/backup/pause", headers=BEARER)).status == 200


@pytest.mark.parametrize("table", ["pings", "flips"])
async def test_a_read_the_database_refuses_answers_503_with_a_json_error(client, tmp_path, table):
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_elsewhere")
    response = await client.get(f"/api/v1/monitors/backup/{table}")
    assert response.status == 503
    assert await response.json() == {"error": "storage unavailable"}
    with sqlite3.connect(tmp_path / "hb.db") as conn:
        conn.execute(f"ALTER TABLE {table}_elsewhere RENAME TO {table}")
    assert (await client.get(f"/api/v1/monitors/backup/{table}")).status == 200


async def test_a_pause_whose_monitor_a_reload_removes_meanwhile_gets_404(tokened, tmp_path, clock):
    """The pause waits for the writer; the monitor may be gone when it returns."""
    lock = sqlite3.connect(tmp_path / "hb.db", isolation_level=None)
    try:
        # Holds the writer (its busy timeout is 5 s) until COMMIT below.
        lock.execute("BEGIN EXCLUSIVE")
        pausing = asyncio.ensure_future(
            tokened.post("/api/v1/monitors/backup/pause", headers=BEARER)
        )
        # The request travels over a real socket: poll for it within a bound.
        for _ in range(int(PROMPT / POLL)):
            if tokened.engine.state("backup").status is Status.PAUSED:
                break
            await asyncio.sleep(POLL)
        else:
            pytest.fail("the pause never reached the engine")
        tokened.engine.apply_config(reloaded_without_backup(tmp_path), clock.now())
        lock.execute("COMMIT")
        response = await asyncio.wait_for(pausing, 5)
    finally:
        lock.close()
    assert response.status == 404
    assert await response.json() == {"error": "no such monitor"}


def reloaded_without_backup(tmp_path):
    path = tmp_path / "reloaded.toml"
    path.write_text(textwrap.dedent(CONFIG.replace("{server_extra}", f'api_token = "{TOKEN}"')))
    text = path.read_text()
    path.write_text(text[: text.index("[monitors.backup]")] + '[monitors.web]\nperiod = "1m"\n')
    return load_config(path)


@pytest.mark.parametrize("limit", ["nope", "-5", "1e3", ""])
async def test_a_limit_that_is_not_a_number_is_a_json_400(client, limit):
    response = await client.get(f"/api/v1/monitors/backup/flips?limit={limit}")
    assert response.status == 400
    assert await response.json() == {"error": "limit must be a number"}


@pytest.mark.parametrize("limit", ["99999", "9" * 5000], ids=["5-digits", "5000-digits"])
async def test_a_limit_past_the_maximum_is_cut_to_it(client, limit):
    for _ in range(3):
        await client.get("/ping/backup")
    response = await client.get(f"/api/v1/monitors/backup/pings?limit={limit}")
    assert response.status == 200
    assert len((await response.json())["pings"]) == 3


async def test_the_write_api_is_off_without_a_token(client):
    response = await client.post("/api/v1/monitors/backup/pause")
    assert response.status == 403


async def test_healthz_answers_ok(client):
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


SEGMENT = st.one_of(
    st.sampled_from(["backup", "web", UUID, "start", "fail", "log", "0", "255", "256", "", ".."]),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~%!$&'()*+,;=:@", max_size=40),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segments=st.lists(SEGMENT, min_size=0, max_size=5),
    query=st.text(alphabet=string.printable, max_size=60),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]),
    body=st.binary(max_size=300),
)
async def test_no_ping_path_ever_gets_a_5xx(client, segments, query, method, body):
    path = "/ping/" + "/".join(segments)
    response = await client.request(
        method, path, params={"rid": query} if query else None, data=body or None
    )
    assert response.status < 500
