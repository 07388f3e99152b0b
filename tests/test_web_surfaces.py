"""The status page, /metrics, badges and their auth, through the real app.

An Engine over a real Store in tmp_path, a FakeClock, and aiohttp's test
client; one test drives headless Chromium against a real port.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import struct
import textwrap
from types import SimpleNamespace

import pytest

from heartbeatd.auth import hash_password
from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config
from heartbeatd.daemon import Daemon
from heartbeatd.engine import Engine
from heartbeatd.outbox import DeliveryStats
from heartbeatd.reloading import Reloads
from heartbeatd.store import Store
from heartbeatd.web import make_app
from tests.conftest import NOW
from tests.harness import free_port, healthy, open_stack

TOKEN = "t0ken-for-tests"
BADGE_KEY = "b4dge-key"
# Cheap scrypt parameters: these tests are about who gets in, not about cost.
ALICE = hash_password("alice-pass", n=16, r=1, p=1)

CONFIG = """
[server]
{server}

[storage]
path = "hb.db"

[channels.log]
type = "log"

[monitors.backup]
name = "Nightly backup"
period = "1h"
grace = "5m"

[monitors.web]
period = "1d"

{web}
"""


async def make_client(tmp_path, aiohttp_client, clock, *, server="", web="", **app_kwargs):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG.format(server=server, web=web)))
    stack = await open_stack(path, clock)
    client = await aiohttp_client(stack.app(**app_kwargs))
    client.engine, client.store = stack.engine, stack.store
    return client


@pytest.fixture
async def open_client(tmp_path, aiohttp_client, clock):
    client = await make_client(tmp_path, aiohttp_client, clock)
    yield client
    await client.store.close()


@pytest.fixture
async def token_client(tmp_path, aiohttp_client, clock):
    client = await make_client(tmp_path, aiohttp_client, clock, server=f'api_token = "{TOKEN}"')
    yield client
    await client.store.close()


@pytest.fixture
async def users_client(tmp_path, aiohttp_client, clock):
    client = await make_client(
        tmp_path, aiohttp_client, clock, web=f'[web.users]\nalice = "{ALICE}"'
    )
    yield client
    await client.store.close()


@pytest.fixture
async def both_client(tmp_path, aiohttp_client, clock):
    client = await make_client(
        tmp_path,
        aiohttp_client,
        clock,
        server=f'api_token = "{TOKEN}"',
        web=f'[web.users]\nalice = "{ALICE}"',
    )
    yield client
    await client.store.close()


@pytest.fixture
async def keyed_client(tmp_path, aiohttp_client, clock):
    client = await make_client(
        tmp_path, aiohttp_client, clock, server=f'badge_key = "{BADGE_KEY}"\napi_token = "{TOKEN}"'
    )
    yield client
    await client.store.close()


async def go_down(client, clock: FakeClock, slug: str = "backup") -> None:
    """Let `slug` (1h + 5m grace) miss its deadline, and wait for the flip's commit."""
    clock.advance(hours=1, minutes=6)
    client.engine.tick(clock.now())
    # Writes commit in order: once this one is in, the flip is too.
    await client.store.set_meta("barrier", "1")
    assert client.engine.state(slug).status.value == "down"


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str, password: str) -> dict[str, str]:
    login = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {login}"}


LOGIN_SURFACES = ["/", "/monitors/backup", "/metrics"]


# -- the status page ------------------------------------------------------------------


async def test_the_status_page_lists_every_monitor_worst_first(open_client, clock):
    await open_client.post("/ping/web")
    await go_down(open_client, clock)
    response = await open_client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert re.findall(r'<span class="pill s-\w+">(\w+)</span>', html) == ["down", "up"]
    assert html.index("Nightly backup") < html.index('href="monitors/web"')
    assert "<title>(1 down) heartbeatd</title>" in html


async def test_the_status_page_forbids_scripts_and_framing(open_client):
    response = await open_client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_monitor_page_shows_pings_and_flips(open_client, clock):
    await open_client.post("/ping/backup/start")
    clock.advance(seconds=95)
    await open_client.post("/ping/backup/1", data="pg_dump: <error> disk full")
    response = await open_client.get("/monitors/backup")
    assert response.status == 200
    html = await response.text()
    assert "pg_dump: &lt;error&gt; disk full" in html
    assert "<error>" not in html
    assert "fail (exit 1)" in html
    assert "took 1 min 35 s" in html
    # Median and p95 of the stored runs, among the facts.
    assert "median 1 min 35 s, p95 1 min 35 s (of 1 run)" in html
    assert "down because: the job exited with status 1" in html
    assert re.search(
        r'<span class="pill s-new">new</span>.*?<span class="pill s-down">down</span>', html, re.S
    )


async def test_a_monitor_page_for_an_unknown_slug_is_404(open_client):
    assert (await open_client.get("/monitors/nope")).status == 404


# -- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", LOGIN_SURFACES)
async def test_without_token_or_users_the_surfaces_are_open(open_client, path):
    assert (await open_client.get(path)).status == 200


@pytest.mark.parametrize("path", LOGIN_SURFACES)
async def test_with_a_token_the_surfaces_ask_for_a_login(token_client, path):
    response = await token_client.get(path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="heartbeatd"'
    assert (await token_client.get(path, headers=BEARER)).status == 200
    # Basic auth with any user name and the token as the password.
    assert (await token_client.get(path, headers=basic("anyone", TOKEN))).status == 200
    assert (await token_client.get(path, headers=basic("anyone", "wrong"))).status == 401
    bad = {"Authorization": "Bearer wrong"}
    assert (await token_client.get(path, headers=bad)).status == 401


@pytest.mark.parametrize("path", LOGIN_SURFACES)
async def test_with_users_the_surfaces_take_a_user_login(users_client, path):
    assert (await users_client.get(path)).status == 401
    assert (await users_client.get(path, headers=basic("alice", "alice-pass"))).status == 200
    assert (await users_client.get(path, headers=basic("alice", "wrong"))).status == 401
    assert (await users_client.get(path, headers=basic("mallory", "alice-pass"))).status == 401


async def test_with_users_and_a_token_both_work_but_the_token_is_not_a_password(both_client):
    assert (await both_client.get("/", headers=basic("alice", "alice-pass"))).status == 200
    assert (await both_client.get("/", headers=BEARER)).status == 200
    assert (await both_client.get("/", headers=basic("anyone", TOKEN))).status == 401


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"],
    ids=["empty", "not-base64", "no-colon", "other-scheme"],
)
async def test_a_malformed_authorization_header_is_a_401_not_a_500(users_client, header):
    assert (await users_client.get("/", headers={"Authorization": header})).status == 401


@pytest.mark.parametrize(
    "path", ["/ping/backup", "/healthz", "/badge/backup.svg", "/badge/backup.json"]
)
async def test_pings_health_and_badges_never_need_a_login(both_client, path):
    assert (await both_client.get(path)).status == 200


async def test_the_api_reads_are_guarded_like_the_status_page(
    token_client, users_client, open_client
):
    # With a token: the bearer token, or a basic login with it as the password.
    assert (await token_client.get("/api/v1/monitors")).status == 401
    assert (await token_client.get("/api/v1/monitors", headers=BEARER)).status == 200
    token_login = basic("anyone", TOKEN)
    assert (await token_client.get("/api/v1/monitors", headers=token_login)).status == 200
    # With users: the data the status page guards is guarded here too.
    assert (await users_client.get("/api/v1/monitors")).status == 401
    login = basic("alice", "alice-pass")
    assert (await users_client.get("/api/v1/monitors", headers=login)).status == 200
    # Nothing configured: reads are open.
    assert (await open_client.get("/api/v1/monitors")).status == 200


async def test_the_write_api_needs_a_login_and_is_off_without_token_or_users(
    token_client, users_client, open_client
):
    assert (await open_client.post("/api/v1/monitors/backup/pause")).status == 403
    assert (await users_client.post("/api/v1/monitors/backup/pause")).status == 401
    # Tools that speak only basic auth give the token as the password.
    token_login = basic("anyone", TOKEN)
    assert (
        await token_client.post("/api/v1/monitors/backup/pause", headers=token_login)
    ).status == 200
    await token_client.post("/api/v1/monitors/backup/resume", headers=BEARER)
    assert (await token_client.post("/api/v1/monitors/backup/pause", headers=BEARER)).status == 200


# -- metrics --------------------------------------------------------------------------


async def test_metrics_describe_monitors_pings_alerts_and_reloads(tmp_path, aiohttp_client, clock):
    outbox = SimpleNamespace(stats=DeliveryStats(sent={"log": 2}, failed={"log": 1}))
    reloads = Reloads(ok=3, failed=1, last_at=NOW, last_ok=True)
    client = await make_client(tmp_path, aiohttp_client, clock, outbox=outbox, reloads=reloads)
    try:
        await client.post("/ping/web")
        await client.post("/ping/web/log")
        await go_down(client, clock)
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()
    finally:
        await client.store.close()
    expected = [
        'heartbeatd_monitor_up{monitor="backup",name="Nightly backup"} 0',
        'heartbeatd_monitor_up{monitor="web",name="web"} 1',
        'heartbeatd_monitor_status{monitor="backup",name="Nightly backup",status="down"} 1',
        'heartbeatd_monitor_down_at_timestamp_seconds{monitor="backup",name="Nightly backup"} '
        + str(int(NOW.timestamp()) + 3900),
        'heartbeatd_pings_total{kind="success"} 1',
        'heartbeatd_pings_total{kind="log"} 1',
        'heartbeatd_alerts_sent_total{channel="log"} 2',
        'heartbeatd_alerts_failed_total{channel="log"} 1',
        # The down flip queued one alert for the log channel.
        "heartbeatd_outbox_pending 1",
        'heartbeatd_config_reloads_total{result="success"} 3',
        'heartbeatd_config_reloads_total{result="failure"} 1',
        f"heartbeatd_config_last_reload_timestamp_seconds {int(NOW.timestamp())}",
        "heartbeatd_config_last_reload_success 1",
    ]
    lines = text.splitlines()
    for line in expected:
        assert line in lines
    assert any(line.startswith("heartbeatd_build_info{") for line in lines)


async def test_the_daemon_feeds_outbox_and_reload_figures_to_metrics(tmp_path, clock):
    path = tmp_path / "heartbeatd.toml"
    listen = f'listen = "127.0.0.1:{free_port()}"'
    path.write_text(textwrap.dedent(CONFIG.format(server=listen, web="")))
    daemon = Daemon(path, clock, asyncio.Event(), asyncio.Event())
    await daemon.startup()
    try:
        await daemon.apply_reload()
        host, port = daemon.runner.addresses[0][:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        await writer.drain()
        text = (await reader.read()).decode()
        writer.close()
        await writer.wait_closed()
    finally:
        await daemon.shutdown()
    assert 'heartbeatd_config_reloads_total{result="success"} 1' in text
    assert 'heartbeatd_alerts_sent_total{channel="log"} 0' in text
    assert "heartbeatd_outbox_pending 0" in text


# -- badges ---------------------------------------------------------------------------


async def test_a_badge_shows_the_monitor_name_and_status(open_client, clock):
    response = await open_client.get("/badge/backup.svg")
    assert response.status == 200
    assert response.content_type == "image/svg+xml"
    svg = await response.text()
    assert 'aria-label="Nightly backup: new"' in svg
    await open_client.post("/ping/backup")
    assert (
        'aria-label="Nightly backup: up"'
        in await (await open_client.get("/badge/backup.svg")).text()
    )
    await go_down(open_client, clock)
    response = await open_client.get("/badge/backup.json")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert await response.json() == {
        "schemaVersion": 1,
        "label": "Nightly backup",
        "message": "down",
        "color": "red",
    }


@pytest.mark.parametrize(
    "path", ["/badge/nope.svg", "/badge/backup.png", "/badge/backup", "/badge/x/backup.svg"]
)
async def test_a_badge_for_something_unknown_is_404(open_client, path):
    assert (await open_client.get(path)).status == 404


async def test_with_a_badge_key_only_keyed_badge_urls_work(keyed_client):
    assert (await keyed_client.get(f"/badge/{BADGE_KEY}/backup.svg")).status == 200
    assert (await keyed_client.get(f"/badge/{BADGE_KEY}/backup.json")).status == 200
    assert (await keyed_client.get("/badge/backup.svg")).status == 404
    assert (await keyed_client.get("/badge/backup.json")).status == 404
    assert (await keyed_client.get("/badge/wrong-key/backup.svg")).status == 404
    assert (await keyed_client.get(f"/badge/{BADGE_KEY}/nope.svg")).status == 404


# -- a real browser -------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=390,844",
]


async def run_chromium(tmp_path, *args: str) -> bytes:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'chromium'}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0
    return out


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian: apt install chromium)"
)
async def test_a_browser_at_phone_width_sees_the_down_monitor(tmp_path, aiohttp_server, clock):
    client_dir = tmp_path / "app"
    client_dir.mkdir()
    path = client_dir / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG.format(server="", web="")))
    config = load_config(path)
    store = await Store.open(config.storage.path, clock=clock)
    try:
        engine = Engine(config, store)
        await engine.recover(clock.now())
        server = await aiohttp_server(make_app(engine, clock, health=healthy))
        url = f"http://127.0.0.1:{server.port}/"
        clock.advance(hours=1, minutes=6)
        engine.tick(clock.now())

        dom = (await run_chromium(tmp_path, "--dump-dom", url)).decode()
        row = re.search(r'<li class="card s-down">(.*?)</li>', dom, re.S)
        assert row is not None, dom
        assert '<span class="pill s-down">down</span>' in row.group(1)
        assert "Nightly backup" in row.group(1)

        shot = tmp_path / "shot.png"
        await run_chromium(tmp_path, f"--screenshot={shot}", url)
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert (width, height) == (390, 844)
    finally:
        await store.close()
