"""The Healthchecks API of the real daemon, with the real `healthchecks-io`
client: monitors created through it survive SIGKILL right after the 201, a
reload and a restart, and show as "api" in `heartbeatd status` and
`export`; a ?create=1 ping provisions one."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import pytest
from healthchecks_io import CheckCreate, Client

from tests.harness import DaemonProcess

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY = "e2e-rw-key-0123456789"
FILE = '[monitors.backup]\nperiod = "1h"\n'


def cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", *args, "-c", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        cwd=daemon.dir,
    )


def setup(daemon: DaemonProcess, monitors: str = FILE) -> Client:
    (daemon.dir / "api-keys").write_text(f"rw {KEY}\n")
    text = daemon.config(monitors, server="auto_provision = true\n")
    daemon.write_raw_config(text + '\n[api]\nkeys_file = "api-keys"\n')
    return Client(
        api_key=KEY, api_url=f"{daemon.base_url}/api/", ping_url=f"{daemon.base_url}/ping/"
    )


def test_api_monitors_survive_a_kill_a_reload_and_a_restart(daemon: DaemonProcess) -> None:
    client = setup(daemon)
    daemon.start()
    made = client.create_check(CheckCreate(name="db dump", timeout=3600, grace=600))
    # Committed before the 201: a SIGKILL now loses nothing.
    daemon.kill()
    daemon.start()
    assert client.get_check(made.uuid).slug == "db-dump"
    assert client.success_ping(uuid=made.uuid)[0]
    assert daemon.monitor("db-dump")["status"] == "up"

    result = cli(daemon, "reload")
    assert result.returncode == 0, result.stderr
    assert daemon.monitor("db-dump")["source"] == "api"
    daemon.signal(signal.SIGTERM)
    daemon.wait_exit()
    daemon.start()
    after = daemon.monitor("db-dump")
    assert (after["status"], after["uuid"], after["source"]) == ("up", made.uuid, "api")

    status = cli(daemon, "status")
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "db-dump (api)" in lines["db-dump"] and "(api)" not in lines["backup"]
    exported = cli(daemon, "export")
    assert exported.stdout == (
        f'[monitors.db-dump]\ngrace = 600\nname = "db dump"\nperiod = 3600\nuuid = "{made.uuid}"\n'
    )


def test_a_create_ping_provisions_and_an_unknown_ping_is_listed(daemon: DaemonProcess) -> None:
    setup(daemon)
    daemon.start()
    with urllib.request.urlopen(f"{daemon.base_url}/ping/nightly?create=1") as answer:
        assert answer.status == 200
    assert daemon.monitor("nightly")["source"] == "api"
    assert daemon.ping("nightlly").status == 404
    listed = daemon.api("unknown-pings")
    assert listed["total"] == 1
    assert listed["unknown_pings"][0]["path"] == "/ping/nightlly"
    # A file monitor of that slug, once added, wins; `check` says so.
    setup(daemon, FILE + '[monitors.nightly]\nperiod = "1d"\n')
    assert cli(daemon, "reload").returncode == 0
    assert daemon.monitor("nightly")["source"] == "file"
    checked = cli(daemon, "check")
    assert "monitors.nightly: also created through the API" in checked.stderr
