"""Reloading the real daemon: `heartbeatd reload` (what ExecReload= runs) and SIGHUP.

`heartbeatd reload` must come back only once the daemon has applied the file
or rejected it, so each test pings right after it returns, without waiting:
a reload command that only sent SIGHUP would race the reload and lose.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import DaemonProcess

SLOW = '[monitors.{slug}]\nperiod = "1h"\ngrace = "1h"\n'
# Enough monitors that parsing the file takes the daemon a while (about a
# second), so a reload command that did not wait would come back too early.
MANY = 20_000
BIG_START = 60.0

FORCE_HINT = "`heartbeatd reload --force` applies it anyway"
KEEPS = "heartbeatd keeps running its previous config"


def monitors(*slugs: str) -> str:
    return "".join(SLOW.format(slug=slug) for slug in slugs)


def reload(daemon: DaemonProcess, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", "reload", "-c", str(daemon.config_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=daemon.dir,
    )


def test_reload_returns_once_the_new_monitor_answers(daemon: DaemonProcess) -> None:
    many = monitors(*(f"job-{i}" for i in range(MANY)))
    daemon.write_config(many)
    daemon.start(wait=False)
    daemon.wait_ready(timeout=BIG_START)
    assert daemon.ping("fresh").status == 404

    daemon.write_config(many + monitors("fresh"))
    result = reload(daemon)

    # No polling: the moment the command returns, the new monitor is served.
    assert daemon.ping("fresh").status == 200
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{daemon.config_path}: reloaded, {MANY + 1} monitors (1 added, 0 removed, 0 changed)\n"
    )


def test_a_rejected_reload_exits_2_with_the_errors_and_the_old_config_runs_on(
    daemon: DaemonProcess,
) -> None:
    daemon.write_config(monitors("a"))
    daemon.start()

    daemon.write_config(monitors("a") + '[monitors.b]\nperiod = "5 min"\n')
    result = reload(daemon)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f'{daemon.config_path}: monitors.b.period: expected a duration like "30s", "5m" or'
        f' "1h30m", got "5 min"\n{KEEPS}\n'
    )
    assert daemon.ping("a").status == 200
    assert daemon.ping("b").status == 404
    daemon.assert_running()


def test_a_reload_that_removes_every_monitor_needs_force(daemon: DaemonProcess) -> None:
    daemon.write_config(monitors("a", "b"))
    daemon.start()

    # Saved empty, as an editor that truncates before it writes can leave it.
    daemon.write_raw_config("")
    refused = reload(daemon)

    assert refused.returncode == 2
    assert refused.stderr == (
        f"{daemon.config_path}: monitors: none in the file, so the reload would remove all 2"
        f" monitors (a file cut short?); {FORCE_HINT}\n{KEEPS}\n"
    )
    assert daemon.ping("a").status == 200

    # Meant this time (the same port and database as the empty file's defaults).
    daemon.write_config("")
    forced = reload(daemon, "--force")

    assert (forced.returncode, forced.stderr) == (0, "")
    assert forced.stdout == (
        f"{daemon.config_path}: reloaded, 0 monitors (0 added, 2 removed, 0 changed)\n"
    )
    assert daemon.ping("a").status == 404

    # --force was for that reload only.
    daemon.write_config(monitors("a", "b", "c"))
    assert reload(daemon).returncode == 0
    daemon.write_config(monitors("a"))
    assert reload(daemon).returncode == 2
    assert daemon.ping("c").status == 200


def test_a_reload_within_reload_max_removed_needs_no_force(daemon: DaemonProcess) -> None:
    daemon.write_config(monitors("a", "b", "c"))
    daemon.start()

    daemon.write_config(monitors("a", "b"))
    result = reload(daemon)

    assert result.returncode == 0, result.stderr
    assert daemon.ping("c").status == 404


HOSTILE = {
    "500-nested-arrays": '[monitors.x]\nperiod = "1h"\nname = ' + "[" * 600 + "]" * 600,
    "500-nested-inline-tables": "[monitors.x]\nperiod = " + "{a = " * 600 + "1" + "}" * 600,
    "5000-digit-number": "[monitors.x]\nperiod = " + "9" * 5000,
    "5000-digit-duration": '[monitors.x]\nperiod = "' + "9" * 5000 + 's"',
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_sighup_with_a_hostile_file_leaves_the_daemon_serving(
    daemon: DaemonProcess, text: str
) -> None:
    daemon.write_config(monitors("a"))
    daemon.start()

    daemon.write_config(monitors("a") + text + "\n")
    daemon.signal(signal.SIGHUP)

    log = daemon.wait_for_log("reload rejected, keeping the running config")
    daemon.assert_running()
    assert daemon.ping("a").status == 200
    [line] = [line for line in log.splitlines() if "reload rejected" in line]
    assert f"reload rejected, keeping the running config: {daemon.config_path}: " in line

    # And `heartbeatd reload` reports the same one line.
    result = reload(daemon)
    assert result.returncode == 2
    assert result.stderr == line.split("keeping the running config: ")[1] + f"\n{KEEPS}\n"
    assert daemon.ping("a").status == 200


def test_reload_finds_the_daemon_by_pid_when_the_file_is_cut_short(
    daemon: DaemonProcess,
) -> None:
    # The database is not where a file without [storage] would put it.
    text = (
        f'[server]\nlisten = "127.0.0.1:{daemon.port}"\n'
        '[storage]\npath = "state/hb.db"\n' + monitors("a")
    )
    (daemon.dir / "state").mkdir()
    daemon.write_raw_config(text)
    daemon.start()
    assert daemon.proc is not None

    daemon.write_raw_config("[server]\nlisten = ")
    verdict = f"{daemon.config_path}: invalid TOML: Invalid value (at end of document)\n{KEEPS}\n"

    # Without the pid, nothing says where the daemon is: the file's errors
    # are reported from here.
    alone = reload(daemon)
    assert (alone.returncode, alone.stderr) == (2, verdict)

    # With it, the daemon's own verdict, found next to the database it has open.
    result = reload(daemon, "--pid", str(daemon.proc.pid))
    assert (result.returncode, result.stderr) == (2, verdict)
    assert "reload rejected" in daemon.log()
    assert daemon.ping("a").status == 200


def test_reload_says_so_when_no_daemon_runs(daemon: DaemonProcess) -> None:
    daemon.write_config(monitors("a"))

    result = reload(daemon)

    status = daemon.dir / "heartbeatd.db-reload"
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"no heartbeatd runs with {daemon.config_path}: no {status}\n"


@pytest.fixture
def notify_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[socket.socket]:
    # Short path: a unix socket address is at most 108 bytes.
    path: Path = tmp_path_factory.mktemp("sd") / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        yield sock


def test_reload_still_tells_systemd_reloading_then_ready(
    daemon: DaemonProcess, notify_socket: socket.socket
) -> None:
    daemon.write_config(monitors("a"))
    daemon.start(env={"NOTIFY_SOCKET": notify_socket.getsockname()})
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=watching 1 monitor"

    daemon.write_config(monitors("a", "b"))
    assert reload(daemon).returncode == 0

    assert notify_socket.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=watching 2 monitors"
