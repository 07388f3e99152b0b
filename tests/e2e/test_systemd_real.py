"""heartbeatd under a real systemd: Debian 12 (systemd 252) booted in systemd-nspawn.

The README's quick start runs as written inside the container (only its pip
line installs from wheels built here, as the container has no network), and
then come the promises the unit makes: start returns once pings are
answered, reload returns once the new config serves, a bad config makes the
reload fail and keeps the old one, the watchdog is fed, stop is prompt and
clean, the state outlives a restart, a SIGKILL and a reboot under
DynamicUser, `systemd-analyze security` scores it OK, log lines keep their
priorities in the journal, and `check --credentials` sees what
LoadCredential= will hand over.

The tests share one container and run in file order, each leaving the
service running with the quick start's config. About a minute; the first
run on a machine also builds the Debian tree (another minute or two). Runs
where RUN_SYSTEMD_TEST=1 (.ci/run sets it for one suite) and skips,
saying why, where no container can boot (see tests/e2e/nspawn.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.nspawn import (
    CannotBoot,
    Container,
    build_wheels,
    debian_rootfs,
    preflight,
    tail,
)
from tests.e2e.test_pyz import obtain_pyz

if os.environ.get("RUN_SYSTEMD_TEST") != "1":
    pytest.skip(
        "boots a Debian container with systemd-nspawn (about a minute): runs where"
        " RUN_SYSTEMD_TEST=1, as .ci/run sets it for the default Python",
        allow_module_level=True,
    )
try:
    preflight()
except CannotBoot as exc:
    pytest.skip(f"cannot boot a systemd container here: {exc}", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:8080"
# The clone of the repository the quick start runs in, inside the container.
CHECKOUT = "/root/heartbeatd"
PIP_LINE = "/opt/heartbeatd/bin/pip install ."
OFFLINE = "/opt/heartbeatd/bin/pip install --no-index --find-links /root/wheels heartbeatd"
CONFIG = "/etc/heartbeatd/heartbeatd.toml"
DROPINS = "/etc/systemd/system/heartbeatd.service.d"
HEARTBEATD = "/opt/heartbeatd/bin/heartbeatd"
# systemd allocates DynamicUser= ids from this range.
DYNAMIC_UIDS = range(61184, 65520)
# Big enough that reading it takes the daemon a good part of a second: a
# `systemctl reload` that returned before the reload was done would show.
BULK_MONITORS = 20_000
TOKEN = "s3cret-api-token"
# ExecReload=/bin/kill -HUP $MAINPID exits as soon as the signal is sent: it
# cannot fail on a rejected config, and systemd may end the reload job before
# the daemon's RELOADING=1 arrives. An ExecReload= that waits for the daemon's
# verdict keeps both promises, and these checks then run unmarked.
KILL_RELOAD = "ExecReload=/bin/kill " in (REPO / "systemd/heartbeatd.service").read_text()


def quick_start() -> str:
    """The README's quick start, as a script for the container."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Quick start on a VPS", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    assert PIP_LINE in lines, f"the README's quick start no longer runs `{PIP_LINE}`"
    return "\n".join(OFFLINE if line == PIP_LINE else line for line in lines)


@dataclass
class Box:
    container: Container
    # The quick start's outcome: the fixture runs it, the first test judges it.
    quick_start: Any
    config: str


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    try:
        tarball = debian_rootfs()
    except CannotBoot as exc:
        pytest.skip(f"cannot boot a systemd container here: {exc}")
    work = tmp_path_factory.mktemp("systemd")
    wheels = build_wheels(REPO, work)
    with Container.unpacked(tarball, work) as container:
        checkout = container.root / CHECKOUT.lstrip("/")
        (checkout / "systemd").mkdir(parents=True)
        for name in ("config.example.toml", "systemd/heartbeatd.service"):
            (checkout / name).write_bytes((REPO / name).read_bytes())
        (container.root / "root" / "wheels").mkdir()
        for wheel in wheels:
            (container.root / "root" / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
        try:
            try:
                container.boot()
            except CannotBoot as exc:
                pytest.skip(f"cannot boot a systemd container here: {exc}")
            script = f"cd {CHECKOUT}\n{quick_start()}"
            done = container.run(
                "bash", "-euxo", "pipefail", "-c", script, check=False, timeout=240
            )
            config = container.run("cat", CONFIG, check=False).stdout
            yield Box(container, done, config)
        finally:
            container.stop()
            print(f"==== container console ({container.log_path}) ====")
            print(container.log()[-20000:])


@pytest.fixture(autouse=True)
def journal_when_failed(box: Box) -> Iterator[None]:
    yield
    # Shown by pytest only when the test failed.
    print(box.container.sh("journalctl -u heartbeatd --no-pager -n 40", check=False))


# -- helpers ---------------------------------------------------------------------------


def show(box: Box, *properties: str) -> dict[str, str]:
    args = [a for p in properties for a in ("-p", p)]
    out = box.container.run("systemctl", "show", "heartbeatd", *args).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def main_pid(box: Box) -> int:
    return int(show(box, "MainPID")["MainPID"])


def curl(box: Box, path: str, *args: str) -> tuple[int, str]:
    """(status, body) of one request from inside the container."""
    out = box.container.run("curl", "-sS", "-w", "\n%{http_code}", *args, BASE + path).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def api(box: Box, path: str) -> Any:
    status, body = curl(box, "/api/v1/" + path)
    assert status == 200, (status, body)
    return json.loads(body)


def journal(box: Box) -> list[dict[str, str]]:
    """The unit's journal entries (systemd's lines about it and the daemon's own)."""
    out = box.container.run("journalctl", "-u", "heartbeatd", "-o", "json", "--no-pager").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def daemon_lines(box: Box, text: str) -> list[dict[str, str]]:
    return [
        e
        for e in journal(box)
        if e.get("SYSLOG_IDENTIFIER") == "heartbeatd" and text in str(e.get("MESSAGE", ""))
    ]


def poll(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def set_config(box: Box, text: str) -> None:
    box.container.write(CONFIG, text)


@contextlib.contextmanager
def restored(box: Box) -> Iterator[None]:
    """Put the quick start's config, unit and running daemon back afterwards."""
    try:
        yield
    finally:
        set_config(box, box.config)
        box.container.sh(
            f"rm -rf {DROPINS} && systemctl daemon-reload && systemctl restart heartbeatd"
        )


# -- the tests, in order -----------------------------------------------------------------


def test_the_quick_start_as_written_gives_a_running_service(box: Box) -> None:
    done = box.quick_start
    assert done.returncode == 0, f"the quick start failed:\n{tail(done.stdout + done.stderr, 40)}"
    # Its last steps: a ping answered "OK" (no newline), then the monitor is up.
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("OK{"), done.stdout
    assert json.loads(last[2:])["status"] == "up"
    props = show(box, "ActiveState", "SubState", "StatusText", "Type", "UnitFileState")
    assert props == {
        "ActiveState": "active",
        "SubState": "running",
        "StatusText": "watching 2 monitors",
        "Type": "notify",
        "UnitFileState": "enabled",
    }
    # The relative [storage] path landed in the state directory, owned by
    # the dynamic user and private to it; the lock names the daemon.
    out = box.container.sh(
        "readlink /var/lib/heartbeatd; stat -c '%u %a' /var/lib/private/heartbeatd/heartbeatd.db;"
        " cat /var/lib/heartbeatd/heartbeatd.db.lock"
    )
    link, owner_mode, lock = out.splitlines()
    assert link == "private/heartbeatd"
    uid, mode = owner_mode.split()
    assert int(uid) in DYNAMIC_UIDS and mode == "600"
    assert int(lock) == main_pid(box)


def test_start_returns_only_once_the_daemon_answers(box: Box) -> None:
    for _ in range(3):
        # No --retry: a start that returned before READY=1 would be refused.
        out = box.container.sh(f"systemctl restart heartbeatd && curl -fsS {BASE}/healthz")
        assert json.loads(out) == {"status": "ok"}


def test_a_ping_is_answered_and_recorded(box: Box) -> None:
    status, body = curl(box, "/ping/queue-worker", "--data", "ping-marker")
    assert (status, body) == (200, "OK")
    assert api(box, "monitors/queue-worker/pings?limit=1")["pings"][0]["body"] == "ping-marker"
    assert api(box, "monitors/queue-worker")["status"] == "up"


@pytest.mark.xfail(
    KILL_RELOAD,
    strict=False,
    reason="ExecReload=/bin/kill races the daemon's RELOADING=1: systemctl reload"
    " often returns before the new config serves",
)
def test_reload_returns_once_the_new_config_serves(box: Box) -> None:
    pid = main_pid(box)
    bulk = "".join(f'\n[monitors.bulk-{i}]\nperiod = "1h"\n' for i in range(BULK_MONITORS))
    with restored(box):
        set_config(box, box.config + bulk + '\n[monitors.added]\nperiod = "1h"\n')
        out = box.container.sh(
            "systemctl reload heartbeatd"
            f" && curl -sS -o /dev/null -w '%{{http_code}}' {BASE}/ping/added"
        )
        assert out == "200"
        assert main_pid(box) == pid
        assert show(box, "StatusText")["StatusText"] == f"watching {BULK_MONITORS + 3} monitors"


BROKEN = '\n[monitors.broken]\nperiod = "1h"\ngrace = "5 min"\n'


def test_a_rejected_reload_keeps_the_running_config(box: Box) -> None:
    pid = main_pid(box)
    with restored(box):
        set_config(box, box.config + BROKEN)
        box.container.run("systemctl", "reload", "heartbeatd", check=False)
        [entry] = poll(lambda: daemon_lines(box, "reload rejected"), 10, "reload rejected")
        assert 'monitors.broken.grace: expected a duration like "30s"' in entry["MESSAGE"]
        assert entry["PRIORITY"] == "3"
        assert show(box, "ActiveState")["ActiveState"] == "active"
        assert main_pid(box) == pid
        assert curl(box, "/ping/broken")[0] == 404
        assert curl(box, "/ping/queue-worker")[0] == 200


@pytest.mark.xfail(
    KILL_RELOAD,
    strict=True,
    reason="ExecReload=/bin/kill -HUP succeeds whatever the daemon makes of the file",
)
def test_a_rejected_reload_fails_systemctl_reload(box: Box) -> None:
    with restored(box):
        set_config(box, box.config + BROKEN)
        done = box.container.run("systemctl", "reload", "heartbeatd", check=False)
    assert done.returncode != 0, "systemctl reload succeeded with an invalid config"


def test_the_daemon_feeds_the_watchdog(box: Box) -> None:
    assert show(box, "WatchdogUSec")["WatchdogUSec"] == "30s"
    with restored(box):
        # A short watchdog, so that missed pets would get it killed within the test.
        box.container.sh(
            f"mkdir -p {DROPINS} && printf '[Service]\\nWatchdogSec=2s\\n' > {DROPINS}/wd.conf"
            " && systemctl daemon-reload && systemctl restart heartbeatd"
        )
        before = show(box, "MainPID", "NRestarts")
        pets = set()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            pets.add(show(box, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
            time.sleep(0.25)
        assert show(box, "MainPID", "NRestarts") == before
        assert show(box, "ActiveState")["ActiveState"] == "active"
        # Every second (half of WatchdogSec=2s): about four in four seconds.
        assert len(pets) >= 3, pets


def test_the_state_outlives_a_restart(box: Box) -> None:
    curl(box, "/ping/queue-worker", "--data", "restart-marker")
    before = api(box, "monitors/queue-worker")
    box.container.run("systemctl", "restart", "heartbeatd")
    after = api(box, "monitors/queue-worker")
    assert (after["n_pings"], after["last_ping"]) == (before["n_pings"], before["last_ping"])
    assert api(box, "monitors/queue-worker/pings?limit=1")["pings"][0]["body"] == "restart-marker"


def test_a_killed_daemon_is_restarted_and_takes_the_lock_again(box: Box) -> None:
    before = show(box, "MainPID", "NRestarts")
    n_pings = api(box, "monitors/queue-worker")["n_pings"]
    box.container.run("kill", "-KILL", before["MainPID"])

    def restarted() -> dict[str, str] | None:
        now = show(box, "MainPID", "NRestarts", "SubState")
        fresh = now["MainPID"] not in ("0", before["MainPID"])
        return now if fresh and now["SubState"] == "running" else None

    # RestartSec=5s, then a start.
    now = poll(restarted, 20, "systemd to restart the killed daemon")
    assert int(now["NRestarts"]) == int(before["NRestarts"]) + 1
    assert box.container.run("cat", "/var/lib/heartbeatd/heartbeatd.db.lock").stdout == (
        f"{now['MainPID']}\n"
    )
    assert api(box, "monitors/queue-worker")["n_pings"] == n_pings
    assert any("code=killed, status=9/KILL" in str(e.get("MESSAGE")) for e in journal(box)), (
        "no journal line for the killed process"
    )


def test_the_unit_scores_ok_in_systemd_analyze_security(box: Box) -> None:
    out = box.container.run("systemd-analyze", "security", "heartbeatd", "--no-pager").stdout
    found = re.search(r"Overall exposure level for heartbeatd\.service: (\d+\.\d+) (\w+)", out)
    assert found, out
    # The unit's own aim (see its header); README states what it scores.
    assert float(found.group(1)) <= 2.0, out


def test_log_lines_keep_their_priority_in_the_journal(box: Box) -> None:
    assert curl(box, "/ping/nightly-backup/fail")[0] == 200
    [alert] = poll(
        lambda: daemon_lines(box, "alert event=down monitor=nightly-backup"),
        10,
        "the down alert in the journal",
    )
    assert alert["PRIORITY"] == "4"
    # journald stamps the time and reads the level from the <N> prefix: neither is left in.
    assert alert["MESSAGE"].startswith("WARNING heartbeatd.alert: alert event=down")
    started = daemon_lines(box, "started version=")[-1]
    assert started["PRIORITY"] == "6"
    assert started["MESSAGE"].startswith("INFO heartbeatd.daemon: started version=")
    assert curl(box, "/ping/nightly-backup")[0] == 200


def test_check_reads_credentials_from_their_source_before_the_first_start(box: Box) -> None:
    with restored(box):
        box.container.sh(
            f"install -m 0600 /dev/null /etc/heartbeatd/api-token"
            f" && echo {TOKEN} > /etc/heartbeatd/api-token"
        )
        set_config(
            box,
            box.config.replace(
                "[server]\n",
                '[server]\napi_token_file = "/run/credentials/heartbeatd.service/api-token"\n',
                1,
            ),
        )
        without = box.container.run(HEARTBEATD, "check", "-c", CONFIG, check=False)
        assert without.returncode == 2
        assert without.stderr.splitlines()[-1].startswith("note: systemd provides the files")
        box.container.run(HEARTBEATD, "check", "-c", CONFIG, "--credentials", "/etc/heartbeatd")
        # As "Running under systemd" says: a drop-in with LoadCredential=.
        box.container.sh(
            f"mkdir -p {DROPINS} && printf '[Service]\\nLoadCredential=api-token:"
            f"/etc/heartbeatd/api-token\\n' > {DROPINS}/credentials.conf"
            " && systemctl daemon-reload && systemctl restart heartbeatd"
        )
        pause = "/api/v1/monitors/queue-worker/pause"
        assert curl(box, pause, "-X", "POST")[0] == 401
        auth = f"Authorization: Bearer {TOKEN}"
        assert curl(box, pause, "-X", "POST", "-H", auth)[0] == 200
        resume = "/api/v1/monitors/queue-worker/resume"
        assert curl(box, resume, "-X", "POST", "-H", auth)[0] == 200
        box.container.run("rm", "/etc/heartbeatd/api-token")


def test_nothing_so_far_logged_a_traceback(box: Box) -> None:
    assert not daemon_lines(box, "Traceback")


def test_stop_is_prompt_and_clean(box: Box) -> None:
    stops = len(daemon_lines(box, "heartbeatd.daemon: stopped"))
    started = time.monotonic()
    box.container.run("systemctl", "stop", "heartbeatd")
    took = time.monotonic() - started
    props = show(box, "ActiveState", "Result", "ExecMainStatus")
    box.container.run("systemctl", "start", "heartbeatd")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    # The daemon's own bound (DESIGN: within 5 s of SIGTERM), well inside TimeoutStopSec=.
    assert took < 5.0
    assert len(daemon_lines(box, "heartbeatd.daemon: stopped")) == stops + 1


def test_the_service_and_its_state_outlive_a_reboot(box: Box) -> None:
    curl(box, "/ping/queue-worker", "--data", "reboot-marker")
    before = api(box, "monitors/queue-worker")
    box.container.reboot()
    # Enabled: started at boot, which waited for it.
    assert show(box, "ActiveState")["ActiveState"] == "active"
    after = api(box, "monitors/queue-worker")
    assert (after["n_pings"], after["last_ping"]) == (before["n_pings"], before["last_ping"])
    assert api(box, "monitors/queue-worker/pings?limit=1")["pings"][0]["body"] == "reboot-marker"


# -- the single-file build under its own unit (after the rest: it swaps the units) -------

PYZ_UNIT = "heartbeatd-pyz"


def test_the_single_file_build_runs_under_its_hardened_unit(
    box: Box, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pyz = obtain_pyz(tmp_path_factory.mktemp("pyz"))
    n_pings = api(box, "monitors/queue-worker")["n_pings"]
    # As "Single-file build" in the README installs them.
    (box.container.root / "opt/heartbeatd/heartbeatd.pyz").write_bytes(pyz.read_bytes())
    unit = (REPO / "systemd" / f"{PYZ_UNIT}.service").read_bytes()
    (box.container.root / f"etc/systemd/system/{PYZ_UNIT}.service").write_bytes(unit)

    def props(*names: str) -> dict[str, str]:
        args = [a for n in names for a in ("-p", n)]
        out = box.container.run("systemctl", "show", PYZ_UNIT, *args).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    try:
        # Type=notify: start returns once the archive has unpacked into the
        # cache directory and the daemon answers.
        box.container.sh(
            f"systemctl stop heartbeatd && systemctl daemon-reload && systemctl start {PYZ_UNIT}"
        )
        assert props("ActiveState", "StatusText") == {
            "ActiveState": "active",
            "StatusText": "watching 2 monitors",
        }
        assert curl(box, "/ping/queue-worker", "--data", "pyz-marker") == (200, "OK")
        # The same state directory and database as heartbeatd.service.
        assert api(box, "monitors/queue-worker")["n_pings"] == n_pings + 1
        # Unpacked under CacheDirectory=, as the dynamic user: ~/.shiv is hidden.
        cache = box.container.sh("ls /var/cache/private/heartbeatd").split()
        assert len(cache) == 1 and cache[0].startswith("heartbeatd.pyz_"), cache
        out = box.container.run("systemd-analyze", "security", PYZ_UNIT, "--no-pager").stdout
        found = re.search(r"Overall exposure level for heartbeatd-pyz\.service: (\d+\.\d+)", out)
        assert found and float(found.group(1)) <= 2.0, out
        box.container.run("systemctl", "reload", PYZ_UNIT)
        box.container.run("systemctl", "stop", PYZ_UNIT)
        assert props("ActiveState", "Result") == {"ActiveState": "inactive", "Result": "success"}
        logged = box.container.run("journalctl", "-u", PYZ_UNIT, "--no-pager").stdout
        assert "heartbeatd.daemon: stopped" in logged and "Traceback" not in logged, logged
    finally:
        box.container.sh(f"systemctl stop {PYZ_UNIT}; systemctl start heartbeatd", check=False)
