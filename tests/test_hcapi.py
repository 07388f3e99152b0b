"""The Healthchecks management API, driven by the real `healthchecks-io`
client (sync and async, v1 to v3) against an in-process daemon on a fake
clock, with a real SQLite file and real sockets. Every call is checked by
what it did to the monitors, not only by its status code."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from healthchecks_io import (
    AsyncClient,
    CheckCreate,
    CheckTrap,
    CheckUpdate,
    Client,
)
from healthchecks_io.client.exceptions import (
    BadAPIRequestError,
    CheckNotFoundError,
    HCAPIAuthError,
    HCAPIError,
)

from heartbeatd import hcjson
from heartbeatd.model import Status
from tests.harness import free_port, settle, stop_daemon
from tests.samples import config_text

UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
RW = "rw-key-0123456789abcdef"
RO = "ro-key-0123456789abcdef"
MONITORS = f"""
[monitors.backup]
name = "Nightly backup"
period = "1h"
grace = "5m"
uuid = "{UUID}"
tags = ["db", "prod"]

[monitors.nightly]
schedule = "0 2 * * *"
timezone = "Europe/Riga"
tags = ["prod"]
"""
CHECK_KEYS = {
    "name", "slug", "tags", "desc", "grace", "n_pings", "status", "started", "last_ping",
    "next_ping", "manual_resume", "methods", "subject", "subject_fail", "start_kw",
    "success_kw", "failure_kw", "filter_subject", "filter_body", "badge_url", "source",
}  # fmt: skip
# The client (0.4.4) uses pydantic v1 idioms that pydantic 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RW_KEYS = {"uuid", "ping_url", "update_url", "pause_url", "resume_url", "channels"}


def write_config(tmp_path: Path, port: int, *, server: str = "", monitors: str = MONITORS) -> Path:
    (tmp_path / "api-keys").write_text(f"# keys\nrw {RW}\nro {RO}\n")
    path = tmp_path / "heartbeatd.toml"
    text = config_text(
        monitors,
        port=port,
        server=server,
        channels='[channels.log]\ntype = "log"\n[channels.ops]\ntype = "log"\n',
        defaults='grace = "10m"\nchannels = ["ops"]\n',
    )
    path.write_text(text + '\n[api]\nkeys_file = "api-keys"\n')
    return path


@pytest.fixture
async def hc(tmp_path, make_daemon):
    port = free_port()
    daemon = await make_daemon(write_config(tmp_path, port))
    daemon.port = port
    daemon.api = f"http://127.0.0.1:{port}/api/"
    daemon.ping = f"http://127.0.0.1:{port}/ping/"
    return daemon


def client(daemon, version=3, key=RW):
    return Client(api_key=key, api_url=daemon.api, ping_url=daemon.ping, api_version=version)


def aclient(daemon, version=3, key=RW):
    return AsyncClient(api_key=key, api_url=daemon.api, ping_url=daemon.ping, api_version=version)


async def call(fn, *args, **kwargs):
    """A sync client call, off the loop the daemon runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def raw(daemon, method, path, *, key=RW, body=None):
    headers = {"X-Api-Key": key} if key else {}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{daemon.port}{path}"
        async with session.request(method, url, headers=headers, json=body) as answer:
            text = await answer.text()
            return answer.status, text


# -- reads ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_it_lists_checks_in_healthchecks_shape(hc, version):
    with client(hc, version) as sync:
        checks = {c.slug: c for c in await call(sync.get_checks)}
    assert set(checks) == {"backup", "nightly"}
    backup = checks["backup"]
    assert (backup.name, backup.uuid, backup.grace, backup.timeout) == (
        "Nightly backup", UUID, 300, 3600,
    )  # fmt: skip
    assert backup.status == "new" and backup.n_pings == 0 and backup.last_ping is None
    assert backup.tags == "db prod"
    assert backup.channels == hcjson.channel_id("ops")
    assert backup.ping_url == f"http://127.0.0.1:{hc.port}/ping/{UUID}"
    # Every field Healthchecks documents, and uuid-only ones for a read-write key.
    status, text = await raw(hc, "GET", f"/api/v{version}/checks/")
    assert status == 200
    data = json.loads(text)["checks"]
    by_slug = {c["slug"]: c for c in data}
    assert set(by_slug["backup"]) == CHECK_KEYS | RW_KEYS | {"timeout"}
    assert set(by_slug["nightly"]) == CHECK_KEYS | RW_KEYS | {"schedule", "tz"}
    assert (by_slug["nightly"]["schedule"], by_slug["nightly"]["tz"]) == (
        "0 2 * * *", "Europe/Riga",
    )  # fmt: skip
    # The file monitor without a uuid is addressed by one derived from its slug.
    nightly = by_slug["nightly"]["uuid"]
    with client(hc, version) as sync:
        assert (await call(sync.get_check, nightly)).slug == "nightly"


async def test_it_maps_statuses_and_times_as_healthchecks_does(hc, clock):
    with client(hc, 1) as v1, client(hc, 3) as v3:
        await call(v3.start_ping, uuid=UUID)
        await settle(hc)
        assert (await call(v1.get_check, UUID)).status == "started"
        started = json.loads((await raw(hc, "GET", f"/api/v3/checks/{UUID}"))[1])
        assert (started["status"], started["started"]) == ("new", True)
        await call(v3.success_ping, uuid=UUID, data="done")
        up = json.loads((await raw(hc, "GET", f"/api/v3/checks/{UUID}"))[1])
        assert up["status"] == "up" and up["started"] is False
        assert up["last_ping"] == clock.now().replace(microsecond=0).isoformat()
        assert up["last_ping"].endswith("+00:00")
        expected = clock.now().replace(microsecond=0) + timedelta(hours=1)
        assert up["next_ping"] == expected.isoformat()
        clock.advance(minutes=61)
        hc.engine.tick(clock.now())
        assert (await call(v3.get_check, UUID)).status == "grace"
        clock.advance(minutes=5)
        hc.engine.tick(clock.now())
        await settle(hc)
        assert (await call(v3.get_check, UUID)).status == "down"


async def test_read_only_keys_see_unique_keys_and_cannot_write(hc):
    with client(hc, 3, RO) as ro:
        checks = {c.slug: c for c in await call(ro.get_checks)}
        backup = checks["backup"]
        assert backup.unique_key == hcjson.unique_key(UUID)
        assert backup.ping_url is None and backup.uuid is None
        assert (await call(ro.get_check, backup.unique_key)).name == "Nightly backup"
        with pytest.raises(HCAPIAuthError):
            await call(ro.pause_check, UUID)
        with pytest.raises(HCAPIAuthError):
            await call(ro.create_check, CheckCreate(name="x", timeout=3600))
    assert hc.engine.state("backup").status is Status.NEW
    assert len(hc.engine.config.monitors) == 2


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "missing api key"), ("wrong-key-0123456789", "wrong api key")],
    ids=["missing", "wrong"],
)
async def test_it_refuses_a_missing_or_wrong_key(hc, key, message):
    status, text = await raw(hc, "GET", "/api/v3/checks/", key=key)
    assert (status, json.loads(text)) == (401, {"error": message})
    with client(hc, 3, key or "") as bad, pytest.raises(HCAPIAuthError):
        await call(bad.get_checks)


async def test_a_key_in_the_json_body_is_accepted(hc):
    status, _ = await raw(
        hc, "POST", f"/api/v3/checks/{UUID}/pause", key=None, body={"api_key": RW}
    )
    assert status == 200
    assert hc.engine.state("backup").status is Status.PAUSED


async def test_pings_and_their_bodies(hc):
    with client(hc, 2) as sync:
        await call(sync.start_ping, uuid=UUID)
        await call(sync.success_ping, uuid=UUID, data="backup done")
        await call(sync.exit_code_ping, 3, uuid=UUID, data="exit 3")
        await call(sync.fail_ping, uuid=UUID)
        pings = await call(sync.get_check_pings, UUID)
    assert [p.type for p in pings] == ["fail", "fail", "success", "start"]
    assert all(p.remote_addr == "127.0.0.1" and "healthchecks" in p.user_agent for p in pings)
    data = json.loads((await raw(hc, "GET", f"/api/v2/checks/{UUID}/pings/"))[1])["pings"]
    assert data[1]["exitstatus"] == 3
    body_url = data[2]["body_url"]
    assert body_url.endswith(f"/pings/{data[2]['n']}/body")
    status, text = await raw(hc, "GET", body_url.split(str(hc.port), 1)[1])
    assert (status, text) == (200, "backup done")
    status, _ = await raw(hc, "GET", f"/api/v2/checks/{UUID}/pings/{data[0]['n']}/body")
    assert status == 404  # that ping had no body


async def test_flips_with_seconds_start_and_end(hc, clock):
    with client(hc, 3) as sync:
        await call(sync.success_ping, uuid=UUID)
        first = int(clock.now().timestamp())
        clock.advance(minutes=10)
        await call(sync.fail_ping, uuid=UUID)
        clock.advance(minutes=10)
        await call(sync.success_ping, uuid=UUID)
        await settle(hc)
        assert [f.up for f in await call(sync.get_check_flips, UUID)] == [1, 0, 1]
        assert [f.up for f in await call(sync.get_check_flips, UUID, seconds=900)] == [0, 1]
        assert [f.up for f in await call(sync.get_check_flips, UUID, end=first + 1)] == [1]
        flips = await call(sync.get_check_flips, UUID, start=first + 1)
        assert [f.up for f in flips] == [0, 1]
        with pytest.raises(BadAPIRequestError):
            await call(sync.get_check_flips, UUID, seconds=5, start=first)


async def test_channels_badges_and_status(hc):
    with client(hc, 1) as sync:
        channels = await call(sync.get_integrations)
        badges = await call(sync.get_badges)
    assert {(c.name, c.kind, c.id) for c in channels} == {
        ("log", "log", hcjson.channel_id("log")),
        ("ops", "log", hcjson.channel_id("ops")),
    }
    assert set(badges) == {"db", "prod"}
    assert badges["db"].svg == f"http://127.0.0.1:{hc.port}/badge/tag/db.svg"
    with client(hc, 3) as sync:
        await call(sync.fail_ping, uuid=UUID)
    async with aiohttp.ClientSession() as session, session.get(badges["db"].json_url) as got:
        assert (await got.json())["message"] == "down"
    assert await raw(hc, "GET", "/api/v3/status/", key=None) == (200, "OK")


async def test_tag_and_slug_filters(hc):
    with client(hc, 3) as sync:
        assert {c.slug for c in await call(sync.get_checks, ["prod"])} == {"backup", "nightly"}
        assert [c.slug for c in await call(sync.get_checks, ["prod", "db"])] == ["backup"]
        assert await call(sync.get_checks, ["db", "nope"]) == []
    status, text = await raw(hc, "GET", "/api/v3/checks/?slug=nightly")
    assert status == 200
    assert [c["slug"] for c in json.loads(text)["checks"]] == ["nightly"]


# -- writes ---------------------------------------------------------------------------


async def test_pause_and_resume(hc):
    with client(hc, 3) as sync:
        paused = await call(sync.pause_check, UUID)
    assert paused.status == "paused"
    assert hc.engine.state("backup").status is Status.PAUSED
    status, text = await raw(hc, "POST", f"/api/v3/checks/{UUID}/resume")
    assert status == 200 and json.loads(text)["status"] == "new"
    assert hc.engine.state("backup").status is not Status.PAUSED
    status, text = await raw(hc, "POST", f"/api/v3/checks/{UUID}/resume")
    assert (status, json.loads(text)) == (409, {"error": "check is not paused"})


async def test_created_checks_are_watched_stored_and_marked_api(hc, clock):
    with client(hc, 3) as sync:
        made = await call(sync.create_check, CheckCreate(name="DB dump", timeout=600, grace=60))
        assert (made.slug, made.timeout, made.grace, made.status) == ("db-dump", 600, 60, "new")
        monitor = hc.engine.config.monitors["db-dump"]
        assert (monitor.source, monitor.uuid, monitor.schedule.period) == ("api", made.uuid, 600)
        # Durable before the answer: the row is in the file.
        assert [d.slug for d in await hc.store.api_monitors()] == ["db-dump"]
        # [defaults] channels, since the client sent none.
        assert monitor.channels == ("ops",)
        await call(sync.success_ping, uuid=made.uuid)
        assert hc.engine.state("db-dump").status is Status.UP
        # On the wheel: it goes down when its period and grace are over.
        clock.advance(minutes=11, seconds=1)
        hc.engine.tick(clock.now())
        assert hc.engine.state("db-dump").status is Status.DOWN
        status, text = await raw(hc, "GET", "/api/v1/monitors/db-dump")
        assert (status, json.loads(text)["source"]) == (200, "api")


async def test_update_and_delete_of_an_api_check(hc):
    with client(hc, 3) as sync:
        made = await call(sync.create_check, CheckCreate(name="dump", timeout=600))
        changed = await call(
            sync.update_check,
            made.uuid,
            CheckUpdate(schedule="30 3 * * *", tz="Europe/Riga", desc="nightly dump"),
        )
        assert changed.desc == "nightly dump" and changed.timeout is None
        shown = json.loads((await raw(hc, "GET", f"/api/v3/checks/{made.uuid}"))[1])
        assert (shown["schedule"], shown["tz"]) == ("30 3 * * *", "Europe/Riga")
        monitor = hc.engine.config.monitors["dump"]
        assert (monitor.schedule.cron, monitor.description) == ("30 3 * * *", "nightly dump")
        deleted = await call(sync.delete_check, made.uuid)
        assert deleted.slug == "dump"
        assert hc.engine.monitor("dump") is None
        assert await hc.store.api_monitors() == []
        with pytest.raises(CheckNotFoundError):
            await call(sync.get_check, made.uuid)


async def test_monitors_of_the_file_cannot_be_changed_or_deleted_through_the_api(hc):
    status, text = await raw(hc, "DELETE", f"/api/v3/checks/{UUID}")
    assert status == 403
    assert "monitors.backup is declared in" in json.loads(text)["error"]
    with client(hc, 3) as sync:
        with pytest.raises(HCAPIAuthError):
            await call(sync.update_check, UUID, CheckUpdate(grace=120))
        with pytest.raises(HCAPIAuthError):
            await call(sync.delete_check, UUID)
    assert hc.engine.config.monitors["backup"].grace == 300


async def test_a_create_the_way_hchk_sends_it(hc):
    # hchk (its URL is fixed to healthchecks.io) posts JSON without a
    # Content-Type, the key in the body, and pings the ping_url it is given.
    payload = {"api_key": RW, "name": "cron", "tags": "a b", "timeout": 600, "grace": 60}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{hc.port}/api/v1/checks/"
        async with session.post(url, data=json.dumps(payload)) as answer:
            assert answer.status == 201
            made = await answer.json()
        async with session.get(made["ping_url"]) as answer:
            assert answer.status == 200
    assert hc.engine.config.monitors["cron"].tags == ("a", "b")
    assert hc.engine.state("cron").status is Status.UP


async def test_unique_upserts_instead_of_creating_again(hc):
    with client(hc, 3) as sync:
        first = await call(sync.create_check, CheckCreate(name="sync", timeout=600))
        again = await call(
            sync.create_check, CheckCreate(name="sync", timeout=900, unique=["name"])
        )
    assert again.uuid == first.uuid and again.timeout == 900
    assert [s for s, m in hc.engine.config.monitors.items() if m.source == "api"] == ["sync"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "timeout": 30}, "json validation error: timeout is too small"),
        ({"name": "x", "manual_resume": True}, "manual_resume is not supported by heartbeatd"),
        ({"name": "x", "schedule": "not cron"}, "api_monitors: monitors.x.schedule: "),
        ({"name": "x", "channels": "nope"}, "invalid channel identifier: nope"),
    ],
    ids=["small-timeout", "manual-resume", "bad-cron", "bad-channel"],
)
async def test_a_bad_create_is_a_400_that_says_why(hc, body, message):
    status, text = await raw(hc, "POST", "/api/v3/checks/", body=body)
    assert status == 400
    assert json.loads(text)["error"].startswith(message)
    assert hc.engine.monitor("x") is None


async def test_api_checks_survive_a_restart_and_a_reload(tmp_path, make_daemon, clock):
    port = free_port()
    path = write_config(tmp_path, port)
    daemon = await make_daemon(path)
    daemon.port, daemon.api, daemon.ping = port, f"http://127.0.0.1:{port}/api/", ""
    with client(daemon, 3) as sync:
        made = await call(sync.create_check, CheckCreate(name="kept", timeout=600))
        await call(sync.pause_check, made.uuid)
    await stop_daemon(daemon, clock)
    again = await make_daemon(path)
    assert again.engine.config.monitors["kept"].uuid == made.uuid
    assert again.engine.state("kept").status is Status.PAUSED
    # A reload keeps it; a file monitor of the same slug then wins.
    again.reload.set()
    await again.apply_reload()
    assert again.engine.config.monitors["kept"].source == "api"
    path.write_text(path.read_text() + '\n[monitors.kept]\nperiod = "1d"\n')
    await again.apply_reload()
    assert again.engine.config.monitors["kept"].source == "file"
    assert again.engine.config.monitors["kept"].uuid is None


async def test_the_async_client_does_it_all_too(hc):
    async with aclient(hc, 2) as a:
        made = await a.create_check(CheckCreate(name="async job", timeout=3600, tags="jobs b"))
        assert made.tags == "jobs b"
        assert hc.engine.config.monitors["async-job"].tags == ("jobs", "b")
        assert made.slug == "async-job"
        await a.start_ping(uuid=made.uuid)
        await a.success_ping(uuid=made.uuid, data="ok")
        await a.exit_code_ping(0, uuid=made.uuid)
        await a.fail_ping(uuid=made.uuid)
        assert hc.engine.state("async-job").status is Status.DOWN
        assert len(await a.get_check_pings(made.uuid)) == 4
        assert [f.up for f in await a.get_check_flips(made.uuid)] == [1, 0]
        assert (await a.get_check(made.uuid)).status == "down"
        assert {c.slug for c in await a.get_checks()} == {"backup", "nightly", "async-job"}
        assert (await a.pause_check(made.uuid)).status == "paused"
        updated = await a.update_check(made.uuid, CheckUpdate(grace=120))
        assert updated.grace == 120 and hc.engine.config.monitors["async-job"].grace == 120
        assert {c.name for c in await a.get_integrations()} == {"log", "ops"}
        assert set(await a.get_badges()) == {"db", "prod", "jobs", "b"}
        async with CheckTrap(a, uuid=made.uuid):
            pass
        assert hc.engine.state("async-job").status is Status.UP
        await a.delete_check(made.uuid)
        assert hc.engine.monitor("async-job") is None


async def test_the_sync_check_trap_reports_a_failure(hc):
    def job() -> None:
        with client(hc, 3) as sync, CheckTrap(sync, uuid=UUID):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await call(job)
    assert hc.engine.state("backup").status is Status.DOWN


async def test_the_api_is_off_without_keys(tmp_path, make_daemon):
    port = free_port()
    path = tmp_path / "heartbeatd.toml"
    path.write_text(config_text(MONITORS, port=port))
    daemon = await make_daemon(path)
    daemon.port = port
    status, text = await raw(daemon, "GET", "/api/v3/checks/")
    assert status == 401
    assert json.loads(text) == {"error": "the Healthchecks API is off: set [api] keys_file"}


async def test_a_server_error_is_reported_as_one(hc):
    # A store that cannot be read: the client sees a 5xx, not a crash.
    await hc.store._reader.close()
    with client(hc, 3) as sync, pytest.raises(HCAPIError):
        await call(sync.get_check_pings, UUID)


async def test_creates_at_once_with_one_name_get_slugs_of_their_own(hc):
    body = {"name": "twin", "timeout": 600}
    answers = await asyncio.gather(
        *(raw(hc, "POST", "/api/v3/checks/", body=body) for _ in range(3))
    )
    assert [status for status, _ in answers] == [201, 201, 201]
    made = sorted((json.loads(text)["slug"], json.loads(text)["uuid"]) for _, text in answers)
    assert [slug for slug, _ in made] == ["twin", "twin-2", "twin-3"]
    # What is stored is what is watched: each slug with its own uuid.
    stored = sorted((d.slug, d.uuid) for d in await hc.store.api_monitors())
    assert stored == made
    assert all(hc.engine.config.monitors[slug].uuid == code for slug, code in made)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("N" * 100, "n" * 56),
        ("log", "check-log"),
        ("2026", "check-2026"),
        ("Ünïcode: backup!", "n-code-backup"),
        ("", "check"),
    ],
    ids=["long", "reserved", "digits", "unicode", "empty"],
)
async def test_a_new_check_gets_a_valid_slug_from_any_name(hc, name, slug):
    for expected in (slug, f"{slug}-2"):
        status, text = await raw(hc, "POST", "/api/v3/checks/", body={"name": name})
        assert (status, json.loads(text)["slug"]) == (201, expected)
        assert hc.engine.config.monitors[expected].name == (name or expected)


async def test_a_derived_code_a_reload_retires_while_the_index_is_made_finds_nothing(
    hc, tmp_path, monkeypatch
):
    import threading

    from heartbeatd.web import hccodes

    # nightly declares no uuid: its code is derived from its slug.
    old_code = hcjson.check_code(hc.engine.config.monitors["nightly"])
    building, go_on = threading.Event(), threading.Event()
    real = hccodes.check_codes

    def slow(monitors):
        building.set()
        assert go_on.wait(30), "the reload never finished"
        return real(monitors)

    monkeypatch.setattr(hccodes, "check_codes", slow)
    asking = asyncio.ensure_future(raw(hc, "POST", f"/api/v3/checks/{old_code}/pause"))
    assert await asyncio.to_thread(building.wait, 30)
    # Meanwhile a reload gives nightly a uuid of its own: the old code is retired.
    path = tmp_path / "heartbeatd.toml"
    own = "2b1f5c0e-7a3d-4e8b-9c6f-0d1e2f3a4b5c"
    path.write_text(
        path.read_text().replace("[monitors.nightly]\n", f'[monitors.nightly]\nuuid = "{own}"\n')
    )
    await hc.apply_reload()
    assert hc.engine.config.monitors["nightly"].uuid == own
    go_on.set()
    status, _ = await asking
    assert status == 404
    assert hc.engine.state("nightly").status is not Status.PAUSED


async def test_a_failed_build_of_the_check_index_is_tried_again(hc, monkeypatch):
    from heartbeatd.web import hccodes

    real = hccodes.check_codes
    calls = []

    def once_broken(monitors):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("out of memory")
        return real(monitors)

    monkeypatch.setattr(hccodes, "check_codes", once_broken)
    code = hcjson.check_code(hc.engine.config.monitors["nightly"])
    first, _ = await raw(hc, "GET", f"/api/v3/checks/{code}")
    second, text = await raw(hc, "GET", f"/api/v3/checks/{code}")
    assert (first, second, json.loads(text)["slug"]) == (500, 200, "nightly")
