"""Monitors created at run time (auto-provisioning, `export`, `check`), the
keys of the Healthchecks API, and pings to unknown monitors: counted, listed
on the page and in the API, with their address and user agent."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import textwrap
import threading

import pytest
from click.testing import CliRunner

from heartbeatd import daemon as daemon_module
from heartbeatd.apikeys import find_key, parse_keys
from heartbeatd.cli import main
from heartbeatd.config import ConfigError, load_config
from heartbeatd.model import Status
from heartbeatd.provision import Provisioner
from heartbeatd.web.keys import PROVISIONER
from tests.samples import config_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KEY = "0123456789abcdef-key"


def config(server: str = "") -> str:
    return config_text(
        '[monitors.backup]\nperiod = "1h"\n',
        server=server,
        channels='[channels.log]\ntype = "log"\n',
        defaults='grace = "7m"\n',
    )


# -- keys -------------------------------------------------------------------------------


def test_it_reads_read_write_read_only_and_hashed_keys():
    hashed = hashlib.sha256(b"another-key-0123456").hexdigest()
    keys, problems = parse_keys(f"# comment\n\nrw {KEY}\nro sha256:{hashed}\n")
    assert problems == []
    assert find_key(keys, KEY).read_write is True
    assert find_key(keys, "another-key-0123456").read_write is False
    assert find_key(keys, "another-key-0123457") is None
    assert KEY not in repr(keys)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("admin 0123456789abcdef", 'line 1: expected "rw <key>" or "ro <key>"'),
        (
            "\nrw short",
            "line 2: a key needs at least 16 printable characters and no spaces"
            " (not shown: a secret)",
        ),
    ],
    ids=["kind", "short"],
)
def test_a_bad_key_line_is_named_by_its_number_never_its_key(text, problem):
    assert parse_keys(text) == ([], [problem])


def test_a_bad_keys_file_is_a_config_error_naming_file_key_and_line(tmp_path):
    (tmp_path / "keys").write_text("rw short\n")
    path = tmp_path / "heartbeatd.toml"
    path.write_text(config() + '\n[api]\nkeys_file = "keys"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: api.keys_file: line 1: a key needs at least 16 printable characters"
        " and no spaces (not shown: a secret)"
    ]


# -- auto-provisioning ------------------------------------------------------------------


async def test_a_create_ping_provisions_a_monitor_with_the_defaults(make_client):
    client = await make_client(config("auto_provision = true\n"))
    answer = await client.get("/ping/new-job?create=1", headers={"User-Agent": "runitor/1.2"})
    assert (answer.status, await answer.text()) == (200, "OK")
    monitor = client.engine.config.monitors["new-job"]
    assert (monitor.source, monitor.grace, monitor.schedule.period) == ("api", 420, 86400)
    assert client.engine.state("new-job").status is Status.UP
    stored = await client.store.api_monitors()
    assert [(d.slug, d.uuid) for d in stored] == [("new-job", monitor.uuid)]
    # Once made, it is an ordinary monitor: pinged again without ?create=1.
    assert (await client.get("/ping/new-job/fail")).status == 200
    assert client.engine.state("new-job").status is Status.DOWN


async def test_a_create_ping_under_a_ping_key_provisions_by_slug(make_client):
    client = await make_client(config('auto_provision = true\nping_key = "pk-123"\n'))
    assert (await client.get("/ping/pk-123/keyed?create=1")).status == 200
    assert client.engine.config.monitors["keyed"].source == "api"
    # The wrong key creates nothing.
    assert (await client.get("/ping/nope/other?create=1")).status == 404
    assert client.engine.monitor("other") is None


@pytest.mark.parametrize(
    ("server", "path"),
    [
        ("", "/ping/new-job?create=1"),
        ("auto_provision = true\n", "/ping/new-job"),
        ("auto_provision = true\n", "/ping/new-job?create=0"),
        ("auto_provision = true\n", "/ping/123?create=1"),
    ],
    ids=["off", "no-create", "create-0", "bad-slug"],
)
async def test_without_auto_provision_and_create_an_unknown_slug_is_404(make_client, server, path):
    client = await make_client(config(server))
    assert (await client.get(path)).status == 404
    assert [s for s in client.engine.config.monitors] == ["backup"]
    assert await client.store.api_monitors() == []


# -- unknown pings ----------------------------------------------------------------------


async def test_unknown_pings_are_counted_and_listed_with_address_and_agent(make_client, clock):
    client = await make_client(config('trusted_proxies = ["127.0.0.1/32"]\n'))
    headers = {"User-Agent": "curl/8.0", "X-Forwarded-For": "203.0.113.9"}
    assert (await client.get("/ping/bakup", headers=headers)).status == 404
    assert (await client.post("/ping/00000000-0000-4000-8000-000000000000/fail")).status == 404
    assert (await client.get("/ping/backup")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "\nheartbeatd_unknown_pings_total 2\n" in metrics
    listed = await (await client.get("/api/v1/unknown-pings")).json()
    assert listed["total"] == 2
    newest, oldest = listed["unknown_pings"]
    assert oldest == {
        "at": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": "GET",
        "path": "/ping/bakup",
        "remote_addr": "203.0.113.9",
        "user_agent": "curl/8.0",
    }
    assert (newest["method"], newest["path"]) == (
        "POST",
        "/ping/00000000-0000-4000-8000-000000000000/fail",
    )
    page = await (await client.get("/")).text()
    assert "Pings to unknown monitors" in page
    assert "/ping/bakup" in page and "203.0.113.9" in page and "curl/8.0" in page


async def test_only_the_last_twenty_unknown_pings_are_kept(make_client):
    client = await make_client(config())
    for n in range(25):
        await client.get(f"/ping/missing-{n}")
    listed = await (await client.get("/api/v1/unknown-pings")).json()
    assert listed["total"] == 25
    assert [p["path"] for p in listed["unknown_pings"]] == [
        f"/ping/missing-{n}" for n in range(24, 4, -1)
    ]


async def test_the_page_marks_monitors_created_through_the_api(make_client, clock):
    client = await make_client(config())
    provisioner = client.app[PROVISIONER]
    await provisioner.save("made", {"period": "1h"}, clock.now())
    page = await (await client.get("/")).text()
    assert '<span class="slug">made</span> · <span class="source">api</span>' in page
    assert '<span class="slug">backup</span> · every' in page


# -- export and check --------------------------------------------------------------------


async def test_export_prints_api_monitors_as_toml_the_file_accepts(make_stack, clock, tmp_path):
    stack = await make_stack(config())
    provisioner = Provisioner(stack.engine)
    data = {"name": 'A "quoted" job', "schedule": "30 3 * * *", "timezone": "Europe/Riga"}
    made = await provisioner.save("dump", {**data, "grace": 120, "channels": ["log"]}, clock.now())
    result = CliRunner().invoke(main, ["export", "-c", str(stack.path)])
    assert result.exit_code == 0, result.output
    tables = tomllib.loads(result.output)["monitors"]
    assert tables == {"dump": {**data, "grace": 120, "channels": ["log"], "uuid": made.uuid}}
    # Pasted into the file, it is the same monitor, now the file's.
    stack.path.write_text(stack.path.read_text() + "\n" + result.output)
    moved = load_config(stack.path).monitors["dump"]
    assert (moved.uuid, moved.schedule, moved.grace, moved.source) == (
        made.uuid,
        made.schedule,
        120,
        "file",
    )
    # ... and `check` warns that the file's monitor now hides the API's.
    checked = CliRunner().invoke(main, ["check", "-c", str(stack.path)])
    assert checked.exit_code == 0
    assert (
        f"warning: {stack.path}: monitors.dump: also created through the API; the file's"
        " monitor wins and the API's is not watched (`heartbeatd export` shows it)"
    ) in checked.output


def test_export_without_a_database_prints_nothing(tmp_path):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(config()))
    result = CliRunner().invoke(main, ["export", "-c", str(path)])
    assert (result.exit_code, result.output) == (0, "")


async def test_create_pings_at_once_make_one_monitor(make_client):
    client = await make_client(config("auto_provision = true\n"))
    answers = await asyncio.gather(*(client.get("/ping/burst?create=1") for _ in range(5)))
    assert [a.status for a in answers] == [200] * 5
    stored = await client.store.api_monitors()
    assert [(d.slug, d.uuid) for d in stored] == [
        ("burst", client.engine.config.monitors["burst"].uuid)
    ]
    assert client.engine.state("burst").n_pings == 5


def test_check_warns_of_auto_provision_without_a_ping_key(tmp_path):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(config("auto_provision = true\n"))
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0
    assert (
        f"warning: {path}: server.auto_provision: without ping_key anyone who reaches"
        " /ping/ can create monitors; Healthchecks provisions only under the ping key"
    ) in result.output
    path.write_text(config('auto_provision = true\nping_key = "pk-123"\n'))
    assert "auto_provision" not in CliRunner().invoke(main, ["check", "-c", str(path)]).output


async def test_a_monitor_created_while_a_reload_reads_the_file_stays(
    make_daemon, tmp_path, clock, monkeypatch
):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(config())
    daemon = await make_daemon(path)
    # The reload reads the file in a thread; hold that read until the create
    # has landed, so the create always comes in the middle of the reload.
    created = threading.Event()

    def slow_load(*args, **kwargs):
        assert created.wait(timeout=30), "the create never landed"
        return load_config(*args, **kwargs)

    monkeypatch.setattr(daemon_module, "load_config", slow_load)
    reloading = asyncio.ensure_future(daemon.apply_reload())
    for _ in range(5):
        await asyncio.sleep(0)
    await daemon.provisioner.save("meanwhile", {"period": "1h"}, clock.now())
    assert not reloading.done(), "the create should land while the file is read"
    created.set()
    await reloading
    assert daemon.engine.config.monitors["meanwhile"].source == "api"
    assert "meanwhile" in daemon.engine.wheel


async def test_a_create_during_the_reload_comparison_waits_for_the_swap_and_stays(
    make_daemon, tmp_path, clock, monkeypatch
):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(config())
    daemon = await make_daemon(path)
    # The reload compares the configs in a thread; hold it there until a
    # create (taking the lock, as every API write does) is on its way.
    create_waits = threading.Event()
    comparing = threading.Event()
    real_plan = daemon_module.plan_file_reload

    def slow_plan(*args, **kwargs):
        comparing.set()
        assert create_waits.wait(timeout=30), "the create never started"
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(daemon_module, "plan_file_reload", slow_plan)
    provisioner = daemon.provisioner

    async def create() -> None:
        if provisioner.lock.locked():
            # Queued behind the reload: it may finish its comparison.
            create_waits.set()
        async with provisioner.lock:
            await provisioner.save("meanwhile", {"period": "1h"}, clock.now())
        # Landed: the reload may go on with what it merged before.
        create_waits.set()

    reloading = asyncio.ensure_future(daemon.apply_reload())
    assert await asyncio.to_thread(comparing.wait, 30), "the reload never compared"
    await asyncio.gather(reloading, create())
    # Whichever order they took, the swap did not drop the new monitor.
    assert daemon.engine.config.monitors["meanwhile"].source == "api"
    assert "meanwhile" in daemon.engine.wheel


async def test_creates_and_reloads_merge_and_compare_off_the_event_loop(
    make_daemon, tmp_path, clock, monkeypatch
):
    from heartbeatd import provision

    path = tmp_path / "heartbeatd.toml"
    path.write_text(config())
    daemon = await make_daemon(path)
    # At 100,000 monitors a merge takes a good part of a second: it must not
    # run on the thread that serves pings.
    threads = []
    real_merge = provision.merge

    def merge(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(provision, "merge", merge)
    async with daemon.provisioner.lock:
        await daemon.provisioner.save("made", {"period": "1h"}, clock.now())
    await daemon.apply_reload()
    async with daemon.provisioner.lock:
        await daemon.provisioner.delete("made", clock.now())
    assert threads == [False, False, False]
    assert "made" not in daemon.engine.config.monitors
