"""The `heartbeatd` command: what a sysadmin types and what a script checks.

Commands that only read a file run in-process through click's CliRunner;
`run` and `test-alert` (which set up logging and an event loop of their own)
and `--version` run as real subprocesses. Commands that talk to a daemon get
a real one (tests/harness/process.py); hash-password on a terminal gets a
real pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from click.testing import CliRunner, Result

from heartbeatd import __version__
from heartbeatd.auth import verify_password
from heartbeatd.cli import main
from heartbeatd.cli.admin import _send_test_alert
from heartbeatd.cli.app import ClientErrorFilter
from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config, parse_config
from heartbeatd.systemd import ReloadStatus, write_reload_status
from tests.harness import START_TIMEOUT, DaemonProcess, WebhookSink, advance_until_done, free_port
from tests.samples import config_text

GOOD = """\
[server]
listen = "127.0.0.1:8080"
base_url = "https://hb.example.com"
ping_key = "k3y"

[storage]
path = "hb.db"

[channels.hook]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[monitors.nightly-backup]
name = "Nightly Postgres backup"
schedule = "0 2 * * *"
timezone = "Europe/Riga"
grace = "30m"
max_runtime = "2h"
uuid = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"

[monitors.queue-worker]
period = "1m"
grace = "30s"
repeat = "10m"
"""

GOOD_OUTPUT = """\
{path}: OK, 2 monitors, 1 channel

nightly-backup  (Nightly Postgres backup)
  schedule: cron 0 2 * * * (Europe/Riga), grace 30m, max runtime 2h
  channels: hook
  ping:     https://hb.example.com/ping/9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b
            https://hb.example.com/ping/k3y/nightly-backup

queue-worker
  schedule: every 1m, grace 30s, reminders every 10m
  channels: hook
  ping:     https://hb.example.com/ping/k3y/queue-worker
"""

BAD = """\
[channels.hook]
type = "webhook"
url = "ftp://example.com/hook"

[monitors.x]
period = "1h"
grace = "5 min"
chanels = ["hook"]

[monitors.start]
period = 60
"""

BAD_OUTPUT = """\
{path}: channels.hook.url: expected an http:// or https:// URL with a host
{path}: monitors.x.grace: expected a duration like "30s", "5m" or "1h30m", got "5 min"
{path}: monitors.x.chanels: unknown key; did you mean `channels`?
{path}: monitors.start: a slug may not be "start", "fail" or "log" (ping actions), got "start"
"""

TOKEN = "s3cret-api-token"
SLOW = '[monitors.{slug}]\nperiod = "1h"\ngrace = "1h"\n'


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def heartbeatd(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    # Inline secrets in a file others cannot read: no warning.
    path.chmod(0o600)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    return path


# -- check ---------------------------------------------------------------------------


def test_it_checks_a_good_config_and_lists_ping_urls(good: Path) -> None:
    result = cli("check", "-c", str(good))

    assert result.exit_code == 0, result.output
    assert result.stdout == GOOD_OUTPUT.format(path=good)
    assert result.stderr == ""


def test_it_takes_the_config_path_from_heartbeatd_config(good: Path) -> None:
    result = cli("check", env={"HEARTBEATD_CONFIG": str(good)})

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{good}: OK, 2 monitors")


def test_it_warns_about_an_open_listener(tmp_path: Path) -> None:
    path = tmp_path / "open.toml"
    path.write_text('[server]\nlisten = "0.0.0.0:8080"\n[monitors.a]\nperiod = 60\n')

    result = cli("check", "-c", str(path))

    assert result.exit_code == 0
    assert f"warning: {path}: server.listen: listens on 0.0.0.0:8080 without" in result.stderr
    assert f"warning: {path}: monitors.a: has no channels, so nobody hears of it" in result.stderr


def test_it_reports_every_problem_of_a_bad_config_and_exits_2(bad: Path) -> None:
    result = cli("check", "-c", str(bad))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == BAD_OUTPUT.format(path=bad)


def test_it_reports_a_missing_file_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    result = cli("check", "-c", str(missing))

    assert result.exit_code == 2
    assert result.stderr == f"{missing}: cannot read: No such file or directory\n"


def test_it_reports_a_toml_syntax_error_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "syntax.toml"
    path.write_text("[monitors.a]\nperiod = 60\ngrace = \n")

    result = cli("check", "-c", str(path))

    assert result.exit_code == 2
    assert result.stderr == f"{path}: invalid TOML: Invalid value (at line 3, column 9)\n"


HOSTILE_FILES = [
    pytest.param(
        '[monitors.a]\nperiod = "1h"\nname = ' + "[" * 600 + "]" * 600 + "\n",
        "invalid TOML: arrays or inline tables nested too deeply (at line 3)",
        id="500+-nested-arrays",
    ),
    pytest.param(
        "[monitors.a]\nperiod = " + "{a = " * 600 + "1" + "}" * 600 + "\n",
        "invalid TOML: arrays or inline tables nested too deeply (at line 2)",
        id="500+-nested-inline-tables",
    ),
    pytest.param(
        "[monitors.a]\nperiod = " + "9" * 5000 + "\n",
        "invalid TOML: a whole number of 5000 digits (at line 2); TOML integers fit in 64 bits",
        id="5000-digit-number",
    ),
    pytest.param(
        '[monitors.a]\nperiod = "' + "9" * 5000 + 's"\n',
        f'monitors.a.period: must be at most 10 years, got "{"9" * 40}\u2026" (5001 chars)',
        id="5000-digit-duration",
    ),
]


@pytest.mark.parametrize(("text", "problem"), HOSTILE_FILES)
def test_check_reports_a_hostile_file_in_one_line_and_exits_2(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text(text)

    result = cli("check", "-c", str(path))

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"{path}: {problem}\n"


def test_check_accepts_a_file_without_monitors_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:8080"\n')

    result = cli("check", "-c", str(path))

    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}: OK, 0 monitors, 0 channels\n")
    assert result.stderr == (
        f"warning: {path}: monitors: none configured, so heartbeatd would watch nothing\n"
    )


# -- reload (with the real daemon: tests/e2e/test_reload.py) -------------------------


@pytest.fixture
def mute(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that takes SIGHUP and never answers, like a hung daemon."""
    code = (
        "import signal\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        # Waits for a signal it handles (none), ended by the alarm at the latest.
        "signal.alarm(60)\n"
        "signal.pause()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_reload_gives_up_with_exit_1_when_the_daemon_does_not_answer(
    good: Path, mute: subprocess.Popen[str]
) -> None:
    result = cli("reload", "-c", str(good), "--pid", str(mute.pid), "--timeout", "0.5")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"heartbeatd (pid {mute.pid}) did not report the reload within 0.5s;"
        " its log says why (journalctl -u heartbeatd)\n"
    )


def test_reload_says_so_when_the_daemon_exits_instead(good: Path) -> None:
    # SIGHUP ends a process that does not handle it: so would a daemon that crashed.
    proc = subprocess.Popen(["sleep", "60"])
    try:
        result = cli("reload", "-c", str(good), "--pid", str(proc.pid))
    finally:
        proc.kill()
        proc.wait()

    assert result.exit_code == 1
    assert result.stderr == f"heartbeatd (pid {proc.pid}) exited during the reload; see its log\n"


def test_reload_does_not_signal_a_pid_left_in_an_old_status(good: Path) -> None:
    # A daemon that was killed left its status; its pid now belongs to another
    # process, which SIGHUP would end.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        status = good.parent / "hb.db-reload"
        write_reload_status(status, ReloadStatus(stranger.pid, 3, "applied"))

        result = cli("reload", "-c", str(good))

        assert stranger.poll() is None, "the process got SIGHUP"
    finally:
        stranger.kill()
        stranger.wait()
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"process {stranger.pid} named in {status} is not heartbeatd with this database"
        " (left from an earlier run?); give --pid\n"
    )


def test_reload_refuses_a_pid_that_is_not_a_process(good: Path) -> None:
    for pid in ("0", "1", "-1"):
        result = cli("reload", "-c", str(good), "--pid", pid)
        assert result.exit_code == 2, pid
        assert "Invalid value for '--pid'" in result.stderr


def test_reload_leaves_no_force_request_behind_when_nobody_answers(
    good: Path, mute: subprocess.Popen[str]
) -> None:
    result = cli("reload", "-c", str(good), "--pid", str(mute.pid), "--timeout", "0", "--force")

    assert result.exit_code == 1
    assert list(good.parent.glob("hb.db*")) == []


CREDENTIALS = """\
[server]
api_token_file = "/run/credentials/heartbeatd.service/api-token"

[channels.hook]
type = "webhook"
url_file = "/run/credentials/heartbeatd.service/hook-url"
headers_file = "/run/credentials/heartbeatd.service/hook-headers"

[monitors.a]
period = 60
"""


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """Where LoadCredential= takes the service's credentials from."""
    directory = tmp_path / "credstore"
    directory.mkdir()
    (directory / "api-token").write_text(TOKEN + "\n")
    (directory / "hook-url").write_text("http://127.0.0.1:9/hook\n")
    (directory / "hook-headers").write_text("Authorization: Bearer h00k\n")
    return directory


def test_it_checks_credentials_in_the_directory_systemd_loads_them_from(
    tmp_path: Path, credentials: Path
) -> None:
    path = tmp_path / "heartbeatd.toml"
    path.write_text(CREDENTIALS)

    result = cli("check", "-c", str(path), "--credentials", str(credentials))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: OK, 1 monitor, 1 channel\n")
    assert result.stderr == ""


def test_it_names_the_credential_it_cannot_read_in_that_directory(
    tmp_path: Path, credentials: Path
) -> None:
    path = tmp_path / "heartbeatd.toml"
    path.write_text(CREDENTIALS)
    (credentials / "api-token").unlink()

    result = cli("check", "-c", str(path), "--credentials", str(credentials))

    assert result.exit_code == 2
    assert result.stderr == (
        f'{path}: server.api_token_file: cannot read "{credentials}/api-token":'
        " No such file or directory\n"
    )


def test_without_credentials_it_says_systemd_provides_them_at_start(tmp_path: Path) -> None:
    path = tmp_path / "heartbeatd.toml"
    path.write_text(CREDENTIALS.replace("heartbeatd.service", "heartbeatd-test-absent.service"))

    result = cli("check", "-c", str(path))

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}: server.api_token_file: cannot read ")
    assert lines[-1] == (
        "note: systemd provides the files in /run/credentials/ (LoadCredential=) only"
        " while the service runs; check them before it starts with"
        " --credentials DIR, DIR holding them under their credential names"
        " (e.g. /etc/heartbeatd)"
    )


# -- run -----------------------------------------------------------------------------


def test_it_refuses_to_run_with_a_bad_config(bad: Path) -> None:
    result = heartbeatd("run", "-c", str(bad))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr == BAD_OUTPUT.format(path=bad)


@pytest.mark.parametrize(("text", "problem"), HOSTILE_FILES[::3])
def test_it_refuses_to_run_with_a_hostile_file_in_one_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text(text)

    result = heartbeatd("run", "-c", str(path))

    assert (result.returncode, result.stderr) == (2, f"{path}: {problem}\n")


def test_it_exits_1_when_the_port_is_taken(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", daemon.port))
        taken.listen()

        result = heartbeatd("run", "-c", str(daemon.config_path))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [last] = result.stderr.splitlines()[-1:]
    assert "CRITICAL heartbeatd: cannot start: " in last
    # Pythons word the OS error differently ("[errno 98] address already in use").
    assert f"('127.0.0.1', {daemon.port})" in last
    assert "address already in use" in last.lower()


def test_it_exits_1_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "state" / "hb.db").mkdir(parents=True)
    path = tmp_path / "hb.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[storage]\npath = "state/hb.db"\n[monitors.a]\nperiod = 60\n'
    )

    result = heartbeatd("run", "-c", str(path))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [last] = result.stderr.splitlines()[-1:]
    assert f"CRITICAL heartbeatd: cannot start: {tmp_path}/state/hb.db: cannot open the" in last


def test_it_prints_its_version() -> None:
    result = heartbeatd("--version")

    assert result.returncode == 0
    assert result.stdout == f"heartbeatd, version {__version__}\n"


# -- status, pause, resume, history ----------------------------------------------------


def test_it_shows_status_and_exits_1_while_a_monitor_is_down(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a") + SLOW.format(slug="backup"))
    daemon.start()
    assert daemon.ping("a").status == 200
    config = str(daemon.config_path)

    result = cli("status", "-c", config)

    assert result.exit_code == 0, result.output
    header, row_a, row_backup = result.stdout.splitlines()
    assert header.split() == ["MONITOR", "STATUS", "LAST", "PING", "NEXT", "EXPECTED"]
    assert row_a.split()[:2] == ["a", "up"]
    assert "ago" in row_a and "in 59m" in row_a
    assert row_backup.split()[:3] == ["backup", "new", "never"]

    assert daemon.ping("backup/fail").status == 200
    result = cli("status", "-c", config)

    assert result.exit_code == 1
    row_backup = result.stdout.splitlines()[2]
    assert row_backup.split()[:2] == ["backup", "down"]
    # Not a next expected time: when it went down.
    down_at = daemon.monitor("backup")["down_at"]
    assert row_backup.endswith(f"down since {down_at}")


def test_it_exits_3_when_the_daemon_is_not_running(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "hb.toml"
    path.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\n[monitors.a]\nperiod = 60\n')

    result = cli("status", "-c", str(path))

    assert result.exit_code == 3
    assert result.stderr.startswith(f"heartbeatd is not running at http://127.0.0.1:{port} (")


def test_it_pauses_and_resumes_a_monitor_with_the_api_token(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a"), server=f'api_token = "{TOKEN}"')
    daemon.config_path.chmod(0o600)
    daemon.start()
    config = str(daemon.config_path)

    result = cli("pause", "a", "-c", config)
    assert (result.exit_code, result.stdout) == (0, "a: paused\n")
    assert cli("status", "-c", config).stdout.splitlines()[1].split()[:2] == ["a", "paused"]

    result = cli("resume", "a", "-c", config)
    assert (result.exit_code, result.stdout) == (0, "a: new\n")

    result = cli("pause", "nope", "-c", config)
    assert result.exit_code == 4
    assert result.stderr == f"heartbeatd at {daemon.base_url} answered 404: no such monitor\n"


def test_it_refuses_to_pause_without_a_token_or_with_a_wrong_one(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.write_config(SLOW.format(slug="a"))
    daemon.start()

    result = cli("pause", "a", "-c", str(daemon.config_path))

    assert result.exit_code == 4
    assert result.stderr.startswith(
        f"heartbeatd at {daemon.base_url} answered 403:"
        " the write API is off: set [server] api_token_file or [web.users]\n"
    )

    daemon.stop()
    daemon.write_config(SLOW.format(slug="a"), server=f'api_token = "{TOKEN}"')
    daemon.start()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(daemon.config(SLOW.format(slug="a"), server='api_token = "not-it"'))

    result = cli("pause", "a", "-c", str(wrong))

    assert result.exit_code == 4
    assert result.stderr == (
        f"heartbeatd at {daemon.base_url} answered 401: a valid bearer token is required\n"
    )
    assert daemon.monitor("a", token=TOKEN)["status"] == "new"


def test_status_says_a_paused_monitor_waits_and_shows_uuids_with_v(
    daemon: DaemonProcess,
) -> None:
    uuid = "9c4a2f4e-1111-4222-8333-944445555666"
    daemon.write_config(
        SLOW.format(slug="a") + f'uuid = "{uuid}"\n' + SLOW.format(slug="b"),
        server=f'api_token = "{TOKEN}"',
    )
    daemon.config_path.chmod(0o600)
    daemon.start()
    config = str(daemon.config_path)
    assert cli("pause", "b", "-c", config).exit_code == 0

    result = cli("status", "-v", "-c", config)

    assert result.exit_code == 0, result.output
    header, row_a, row_b = result.stdout.splitlines()
    assert header.split() == [
        *["MONITOR", "STATUS", "LAST", "PING", "NEXT", "EXPECTED", "UUID", "TAGS"]
    ]
    assert row_a.split()[0] == "a" and row_a.endswith(f"{uuid}  -")
    assert row_b.split()[:2] == ["b", "paused"]
    assert "paused: until resumed or pinged  -" in row_b and row_b.split()[-2:] == ["-", "-"]


def test_status_with_tags_shows_only_monitors_carrying_every_tag(daemon: DaemonProcess) -> None:
    daemon.write_config(
        SLOW.format(slug="a")
        + 'tags = ["db", "nightly"]\n'
        + SLOW.format(slug="b")
        + 'tags = ["db"]\n'
        + SLOW.format(slug="c")
    )
    daemon.start()
    config = str(daemon.config_path)
    assert daemon.ping("a/1").status == 200

    one = cli("status", "--tag", "db", "-c", config)
    both = cli("status", "--tag", "db", "--tag", "nightly", "-v", "-c", config)
    healthy = cli("status", "--tag", "db", "--tag", "x", "-c", config)

    assert [line.split()[0] for line in one.stdout.splitlines()[1:]] == ["a", "b"]
    assert one.exit_code == 1  # a is down
    assert both.stdout.splitlines()[1].split()[0] == "a"
    assert both.stdout.splitlines()[1].endswith("db,nightly")
    assert healthy.stdout.splitlines()[1:] == [] and healthy.exit_code == 0


def test_status_lists_every_monitor_past_one_page_of_the_api(daemon: DaemonProcess) -> None:
    # The API answers 1000 at most (100 unless asked): status follows its cursor.
    daemon.write_config("".join(SLOW.format(slug=f"job-{i:04d}") for i in range(1205)))
    daemon.start()

    shown = cli("status", "-c", str(daemon.config_path))

    slugs = [line.split()[0] for line in shown.stdout.splitlines()[1:]]
    assert slugs == [f"job-{i:04d}" for i in range(1205)]


def test_history_honours_n_0_and_shows_bodies(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a"))
    daemon.start()
    assert daemon.ping("a/start").status == 200
    assert daemon.ping("a/7", data=b"pg_dump: error: connection refused\nexit 7\n").status == 200
    config = str(daemon.config_path)

    assert cli("history", "a", "-n", "0", "-c", config).stdout == "PINGS\nFLIPS\n"

    lines = cli("history", "a", "--body", "-c", config).stdout.splitlines()
    # A run of a few milliseconds reads in hundredths of a second, not "0s".
    assert re.fullmatch(r"  \S+Z  fail    exit=7  took 0\.\d+ s  127\.0\.0\.1", lines[1])
    assert lines[2:4] == ["      | pg_dump: error: connection refused", "      | exit 7"]
    assert lines[4].split()[1] == "start"


def test_it_shows_the_history_of_a_monitor(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a"))
    daemon.start()
    assert daemon.ping("a").status == 200
    assert daemon.ping("a/7").status == 200

    result = cli("history", "a", "-c", str(daemon.config_path))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "PINGS"
    assert lines[1].split()[1:] == ["fail", "exit=7", "127.0.0.1"]
    assert lines[2].split()[1:] == ["success", "127.0.0.1"]
    assert lines[3] == "FLIPS"
    assert [line.split()[1:] for line in lines[4:]] == [
        ["up", "->", "down", "(exit_status)"],
        ["new", "->", "up", "(recovered)"],
    ]


# -- test-alert ----------------------------------------------------------------------


def _hook_config(tmp_path: Path, webhook_sink: WebhookSink, alerts: str = "") -> Path:
    path = tmp_path / "hook.toml"
    path.write_text(config_text(SLOW.format(slug="a"), hook=webhook_sink.url, defaults="") + alerts)
    return path


def test_it_sends_a_test_alert(tmp_path: Path, webhook_sink: WebhookSink) -> None:
    result = heartbeatd("test-alert", "hook", "-c", str(_hook_config(tmp_path, webhook_sink)))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "test alert sent through hook\n"
    [alert] = webhook_sink.delivered()
    assert (alert["event"], alert["monitor"]) == ("test", "heartbeatd-test")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, "temporary: the outbox would retry it"), (404, "permanent")],
    ids=["500-temporary", "404-permanent"],
)
def test_it_reports_a_failed_test_alert_classified(
    tmp_path: Path, webhook_sink: WebhookSink, status: int, kind: str
) -> None:
    webhook_sink.answer(status)

    result = heartbeatd("test-alert", "hook", "-c", str(_hook_config(tmp_path, webhook_sink)))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith(
        f"test alert through hook failed: webhook to 127.0.0.1:{webhook_sink.port}: HTTP {status}"
        f" ({kind})\n"
    )


def test_it_names_the_configured_channels_for_an_unknown_one(
    tmp_path: Path, webhook_sink: WebhookSink
) -> None:
    result = cli("test-alert", "nope", "-c", str(_hook_config(tmp_path, webhook_sink)))

    assert result.exit_code == 2
    assert result.stderr == "no channel named 'nope' (configured: hook)\n"
    assert webhook_sink.requests == []


async def test_a_test_alert_gives_up_after_the_send_timeout_on_the_clock(
    tmp_path: Path, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    webhook_sink.hold()
    path = _hook_config(tmp_path, webhook_sink, alerts='[alerts]\nsend_timeout = "30s"\n')
    sending = asyncio.ensure_future(_send_test_alert(load_config(path), "hook", clock))
    await webhook_sink.next_request()

    await advance_until_done(clock, sending, 31, within=1.0)

    assert sending.result() == "no answer within 30s (temporary: the outbox would retry it)"


def test_it_stops_a_running_daemon_cleanly_on_sigint(daemon: DaemonProcess) -> None:
    # Ctrl-C in a terminal: the same orderly stop as SIGTERM.
    daemon.write_config(SLOW.format(slug="a"))
    daemon.start()

    daemon.signal(signal.SIGINT)

    assert daemon.wait_exit() == 0
    assert "Traceback" not in daemon.log()


def test_a_malformed_request_is_one_debug_line_not_an_error_with_a_traceback():
    try:
        raise BadHttpMessage("Duplicate 'User-Agent' header found.")
    except BadHttpMessage:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), exc_info
    )
    shown = ClientErrorFilter().filter(record)
    assert (record.levelname, record.exc_info) == ("DEBUG", None)
    assert "Duplicate 'User-Agent'" in record.getMessage()
    assert shown is logging.getLogger().isEnabledFor(logging.DEBUG)


# -- hash-password ----------------------------------------------------------------------


def test_it_reads_the_password_from_stdin_when_not_a_terminal() -> None:
    result = CliRunner().invoke(main, ["hash-password"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("scrypt$")
    assert verify_password("s3cret", line)


def test_it_prints_a_line_to_paste_under_web_users(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["hash-password", "admin"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith('admin = "scrypt$')
    # What it prints is a valid config as it is.
    config = parse_config({"web": {"users": {"admin": line.split('"')[1]}}}, tmp_path / "hb.toml")
    assert verify_password("s3cret", config.web.users["admin"])


def test_it_quotes_a_user_name_that_is_not_a_bare_key() -> None:
    result = CliRunner().invoke(main, ["hash-password", "ops team"], input="pw\n")
    assert result.output.startswith('"ops team" = "scrypt$')


def test_it_refuses_an_empty_password() -> None:
    result = CliRunner().invoke(main, ["hash-password"], input="\n")
    assert result.exit_code == 2
    assert "no password given" in result.output


def test_it_refuses_a_user_name_with_a_colon() -> None:
    result = CliRunner().invoke(main, ["hash-password", "a:b"], input="pw\n")
    assert result.exit_code == 2
    assert "must not be empty or contain" in result.output


PROMPT = b"Password: "
REPEAT = b"Repeat for confirmation: "


def on_a_terminal(*exchange: tuple[bytes, str]) -> tuple[int, str]:
    """`heartbeatd hash-password` on a pseudo-terminal of its own: answer
    each prompt as it appears; the exit code and all the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:
        # The child: its controlling terminal is the pty.
        os.execv(sys.executable, [sys.executable, "-m", "heartbeatd", "hash-password"])
    shown = b""
    try:
        for prompt, answer in exchange:
            while not shown.endswith(prompt):
                shown += read_terminal(fd)
            os.write(fd, answer.encode() + b"\n")
        while chunk := read_terminal(fd):
            shown += chunk
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode()


def read_terminal(fd: int) -> bytes:
    """What the terminal shows next; b"" once the program has exited."""
    ready, _, _ = select.select([fd], [], [], START_TIMEOUT)
    assert ready, "the program shows nothing"
    try:
        return os.read(fd, 4096)
    except OSError:
        # EIO: the other side of the pty closed.
        return b""


def test_it_asks_twice_without_echo_on_a_terminal() -> None:
    code, shown = on_a_terminal((PROMPT, "s3cret"), (REPEAT, "s3cret"))
    assert code == 0, shown
    assert "s3cret" not in shown
    assert verify_password("s3cret", shown.split()[-1])


def test_it_asks_again_when_the_two_entries_differ() -> None:
    code, shown = on_a_terminal(
        (PROMPT, "one"), (REPEAT, "two"), (PROMPT, "three"), (REPEAT, "three")
    )
    assert code == 0, shown
    assert "do not match" in shown
    assert verify_password("three", shown.split()[-1])


# -- talking to a daemon without its config: --url, --token-file, --user ----------------


def hb(
    *args: str, env: dict[str, str] | None = None, config: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command, as a user types it: no HEARTBEATD_CONFIG unless given."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HEARTBEATD_")}
    if config is not None:
        environ["HEARTBEATD_CONFIG"] = config
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", *args],
        capture_output=True,
        text=True,
        timeout=15,
        stdin=subprocess.DEVNULL,
        env=environ,
    )


def alice_users() -> str:
    from heartbeatd.auth import hash_password

    return f'[web.users]\nalice = "{hash_password("alice-pass", n=16, r=1, p=1)}"\n'


def test_status_with_only_url_needs_no_config(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a"))
    daemon.start()

    result = hb("status", "--url", daemon.base_url)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[1].split()[:4] == ["a", "new", "never", "in"]


def test_a_missing_default_config_says_where_it_looked_and_what_to_do() -> None:
    result = hb("status")

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "no config at /etc/heartbeatd/heartbeatd.toml (the default):"
        " give -c FILE or set HEARTBEATD_CONFIG, or reach the daemon with --url URL\n"
    )


def test_write_commands_without_a_token_say_how_to_enable_them(daemon: DaemonProcess) -> None:
    daemon.write_config(SLOW.format(slug="a"))
    daemon.start()

    result = hb("pause", "a", "--url", daemon.base_url)

    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        f"heartbeatd at {daemon.base_url} answered 403:"
        " the write API is off: set [server] api_token_file or [web.users]\n"
        "to pause and resume: set [server] api_token_file (or add [web.users]) in the"
        " daemon's config, reload it, and give --token-file FILE (or --user NAME)\n"
    )


def test_refusals_exit_4_and_an_unknown_monitor_says_so(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.write_config(SLOW.format(slug="a"), server=f'api_token = "{TOKEN}"')
    daemon.config_path.chmod(0o600)
    daemon.start()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    url = daemon.base_url

    result = hb("pause", "a", "--url", url, "--token-file", str(token))
    assert (result.returncode, result.stdout, result.stderr) == (0, "a: paused\n", "")

    result = hb("status", "--url", url)
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        f"heartbeatd at {url} answered 401: a valid bearer token is required\n"
        "to log in: give --user NAME, or --token-file FILE (or -c with the daemon's config)\n"
    )

    result = hb("resume", "nope", "--url", url, "--token-file", str(token))
    assert (result.returncode, result.stderr) == (
        4,
        f"heartbeatd at {url} answered 404: no such monitor\n",
    )


def test_a_web_user_can_use_status_history_pause_and_resume(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.write_config(SLOW.format(slug="a") + alice_users())
    daemon.start()
    password = tmp_path / "password"
    password.write_text("alice-pass\n")
    url = daemon.base_url

    result = hb("pause", "a", "--url", url, "--user", "alice", "--password-file", str(password))
    assert (result.returncode, result.stdout, result.stderr) == (0, "a: paused\n", "")
    env = {"HEARTBEATD_PASSWORD": "alice-pass"}
    result = hb("status", "--url", url, "--user", "alice", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[1].split()[:2] == ["a", "paused"]
    result = hb("history", "a", "--url", url, "--user", "alice", env=env)
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "PINGS")
    result = hb("resume", "a", "--url", url, "--user", "alice", env=env)
    assert (result.returncode, result.stdout) == (0, "a: new\n")

    result = hb("status", "--url", url)
    assert (result.returncode, result.stderr) == (
        4,
        f"heartbeatd at {url} answered 401:"
        " log in as a [web.users] user (basic auth) or with the bearer token\n"
        "to log in: give --user NAME, or --token-file FILE (or -c with the daemon's config)\n",
    )
    result = hb("status", "--url", url, "--user", "alice", env={"HEARTBEATD_PASSWORD": "no"})
    assert (result.returncode, result.stderr) == (
        4,
        f"heartbeatd at {url} answered 401:"
        " log in as a [web.users] user (basic auth) or with the bearer token\n",
    )


def test_the_daemon_unreachable_exits_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = hb("history", "a", "--url", url)

    assert result.returncode == 3
    assert result.stderr.startswith(f"heartbeatd is not running at {url} (")
