"""sd_notify against a real unix datagram socket, and the unit file against systemd-analyze."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from heartbeatd.systemd import (
    APPLIED,
    Notifier,
    ReloadStatus,
    force_request_path,
    journal_logging,
    read_reload_status,
    reload_status_path,
    request_forced_reload,
    take_forced_reload,
    watchdog_interval,
    write_reload_status,
)

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "heartbeatd.service"
MAX_EXPOSURE = 2.0


@pytest.fixture
def notify_socket(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    # tmp_path_factory, not tmp_path: a long test name would push the path past
    # the 108-byte limit of a unix socket address.
    path = tmp_path_factory.mktemp("sd") / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        # A missing message fails the test instead of hanging it.
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


@pytest.fixture
def no_systemd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)


# --- Notifier ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda n: n.ready(), b"READY=1"),
        (lambda n: n.ready("Watching 3 monitors"), b"READY=1\nSTATUS=Watching 3 monitors"),
        (
            lambda n: n.reloading(123_456_789),
            b"RELOADING=1\nMONOTONIC_USEC=123456789",
        ),
        (lambda n: n.stopping(), b"STOPPING=1"),
        (lambda n: n.stopping("Flushing writes"), b"STOPPING=1\nSTATUS=Flushing writes"),
        (lambda n: n.status("2 down, 5 up"), b"STATUS=2 down, 5 up"),
        (lambda n: n.watchdog(), b"WATCHDOG=1"),
        (lambda n: n.notify("EXTEND_TIMEOUT_USEC=5000000"), b"EXTEND_TIMEOUT_USEC=5000000"),
        (lambda n: n.notify(STATUS="x", ERRNO="2"), b"STATUS=x\nERRNO=2"),
    ],
    ids=[
        "ready",
        "ready-status",
        "reloading",
        "stopping",
        "stopping-status",
        "status",
        "watchdog",
        "raw-message",
        "fields-in-order",
    ],
)
def test_it_sends_the_exact_message(notify_socket, send, expected):
    notifier = Notifier()
    assert notifier.enabled
    send(notifier)
    assert notify_socket.recv(4096) == expected


def test_it_sends_one_datagram_per_call(notify_socket):
    notifier = Notifier()
    notifier.reloading(1)
    notifier.ready("Reloaded")
    assert notify_socket.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=1"
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=Reloaded"


def test_it_keeps_a_multi_line_status_on_one_line(notify_socket):
    # A newline would make the rest of the text a (bogus) field of its own.
    Notifier().status("config error:\nmonitors.x.grace: bad")
    assert notify_socket.recv(4096) == b"STATUS=config error: monitors.x.grace: bad"


def test_it_refuses_a_lower_case_field_name(notify_socket):
    with pytest.raises(ValueError, match="upper-case"):
        Notifier().notify(status="x")


def test_an_explicit_path_wins_over_the_environment(notify_socket, monkeypatch):
    path = notify_socket.getsockname()
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    Notifier(path).watchdog()
    assert notify_socket.recv(4096) == b"WATCHDOG=1"


@pytest.mark.skipif(sys.platform != "linux", reason="abstract sockets are Linux-only")
def test_it_speaks_to_an_abstract_socket(monkeypatch):
    name = f"heartbeatd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        Notifier().ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_it_does_nothing_outside_systemd(no_systemd_env, caplog):
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("up")
    notifier.reloading(1)
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    assert caplog.records == []


def test_an_empty_notify_socket_means_outside_systemd(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert not Notifier().enabled


def test_an_unsupported_address_disables_it_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    with caplog.at_level(logging.WARNING, logger="heartbeatd.systemd"):
        notifier = Notifier()
        notifier.ready()
    assert not notifier.enabled
    assert [r.getMessage() for r in caplog.records] == [
        "event=notify_disabled reason=unsupported_address address='vsock:2:1234'"
    ]


def test_a_missing_socket_is_logged_once_and_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    notifier = Notifier()
    with caplog.at_level(logging.DEBUG, logger="heartbeatd.systemd"):
        notifier.ready()
        notifier.watchdog()
        notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("event=notify_failed ")
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_it_warns_again_after_a_recovery(tmp_path_factory, monkeypatch, caplog):
    path = tmp_path_factory.mktemp("sd") / "notify"
    notifier = Notifier(str(path))
    with caplog.at_level(logging.INFO, logger="heartbeatd.systemd"):
        notifier.watchdog()  # fails: nobody listens yet
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            notifier.watchdog()
            assert sock.recv(4096) == b"WATCHDOG=1"
        path.unlink()
        notifier.watchdog()  # a new outage
    events = [(r.levelno, r.getMessage().split()[0]) for r in caplog.records]
    assert events == [
        (logging.WARNING, "event=notify_failed"),
        (logging.INFO, "event=notify_recovered"),
        (logging.WARNING, "event=notify_failed"),
    ]


def test_it_does_not_block_when_the_queue_is_full(notify_socket, caplog):
    # Nobody reads: the kernel queue fills within a few hundred datagrams at
    # most, after which a blocking send would hang the event loop forever.
    notifier = Notifier()
    with caplog.at_level(logging.WARNING, logger="heartbeatd.systemd"):
        for _ in range(10_000):
            notifier.watchdog()
            if caplog.records:
                break
    assert [r.getMessage().split()[0] for r in caplog.records] == ["event=notify_failed"]


# --- watchdog_interval --------------------------------------------------------


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "other", None),
        ("1000000", None, 0.5),
        (None, None, None),
        ("", None, None),
        ("0", None, None),
        ("-5", None, None),
        ("thirty", None, None),
    ],
    ids=[
        "half-the-timeout",
        "pid-is-ours",
        "pid-is-another-process",
        "sub-second",
        "unset",
        "empty",
        "zero",
        "negative",
        "not-a-number",
    ],
)
def test_watchdog_interval(no_systemd_env, monkeypatch, usec, pid, expected):
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() == expected


# --- journal_logging ----------------------------------------------------------


def _stream_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}"


@pytest.fixture
def stderr_file(tmp_path) -> Iterator[io.TextIOWrapper]:
    with (tmp_path / "stderr").open("w") as f:
        yield f


# sys.stderr is swapped inside each test, not in a fixture: pytest's output
# capture puts its own stream back between the setup and call phases.


def test_it_logs_for_the_journal_when_stderr_is_the_journal_stream(stderr_file, monkeypatch):
    monkeypatch.setattr(sys, "stderr", stderr_file)
    monkeypatch.setenv("JOURNAL_STREAM", _stream_id(Path(stderr_file.name)))
    assert journal_logging()


def test_it_logs_for_a_terminal_when_stderr_was_redirected(stderr_file, tmp_path, monkeypatch):
    # systemd started us, but stderr now goes elsewhere (e.g. `2>file` in a script).
    other = tmp_path / "journal"
    other.touch()
    monkeypatch.setattr(sys, "stderr", stderr_file)
    monkeypatch.setenv("JOURNAL_STREAM", _stream_id(other))
    assert not journal_logging()


def test_it_logs_for_a_terminal_without_journal_stream(stderr_file, no_systemd_env, monkeypatch):
    monkeypatch.setattr(sys, "stderr", stderr_file)
    assert not journal_logging()


def test_it_logs_for_a_terminal_when_stderr_has_no_file(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not journal_logging()


# --- the unit file ------------------------------------------------------------


def _directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every line, in order; keys may repeat."""
    section, found = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key, value))
    return found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", "/opt/heartbeatd/bin/heartbeatd run -c /etc/heartbeatd/heartbeatd.toml"),
        (
            "ExecReload",
            "/opt/heartbeatd/bin/heartbeatd reload -c /etc/heartbeatd/heartbeatd.toml"
            " --pid $MAINPID",
        ),
        ("Restart", "on-failure"),
        ("WatchdogSec", "30s"),
        ("TimeoutStopSec", "15s"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "heartbeatd"),
        ("ConfigurationDirectory", "heartbeatd"),
        ("ProtectSystem", "strict"),
        ("MemoryDenyWriteExecute", "yes"),
        ("UMask", "0077"),
    ],
)
def test_the_unit_sets(key, value):
    assert ("Service", key, value) in _directives(UNIT.read_text())


def test_the_unit_does_not_fence_outbound_addresses():
    # Alerts go to whatever SMTP and webhook hosts the config names.
    keys = {key for _, key, _ in _directives(UNIT.read_text())}
    assert not keys & {"IPAddressDeny", "IPAddressAllow", "PrivateNetwork"}


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    return tool


def _runnable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart and ExecReload pointing at a binary that exists here."""
    true = shutil.which("true") or "/bin/true"
    text = UNIT.read_text().replace("=/opt/heartbeatd/bin/heartbeatd ", f"={true} ")
    assert text != UNIT.read_text()
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    tool = _systemd_analyze()
    # The original fails only because /opt/heartbeatd is not installed here.
    original = subprocess.run(
        [tool, "verify", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in original.stderr.splitlines() if "heartbeatd" in line]
    assert all("/opt/heartbeatd/bin/heartbeatd" in line for line in complaints), complaints

    result = subprocess.run(
        [tool, "verify", str(_runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "heartbeatd" not in output


def test_the_unit_exposure_is_at_most_2(tmp_path):
    tool = _systemd_analyze()
    result = subprocess.run(
        [tool, "security", "--offline=true", str(_runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "offline" in result.stderr and "unrecognized option" in result.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


# -- the reload handshake's files ------------------------------------------------
# They live in the state directory, which the daemon's user can write; root runs
# `heartbeatd reload`. A symlink planted there must not redirect a write.


@pytest.fixture
def database(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path / "state" / "hb.db"


def test_it_writes_the_reload_status_without_following_a_planted_symlink(
    database: Path, tmp_path: Path
):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    status = reload_status_path(database)
    # The name the temporary file had; anything predictable is as bad.
    (status.parent / f".{status.name}.tmp").symlink_to(victim)
    write_reload_status(status, ReloadStatus(os.getpid(), 3, APPLIED))
    assert victim.read_text() == "precious\n"
    assert read_reload_status(status) == ReloadStatus(os.getpid(), 3, APPLIED)
    assert status.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in database.parent.iterdir()) == [
        ".hb.db-reload.tmp",
        "hb.db-reload",
    ]


def test_a_forced_reload_request_does_not_follow_a_planted_symlink(database: Path, tmp_path: Path):
    elsewhere = tmp_path / "etc-cron.d-evil"
    force = force_request_path(database)
    force.symlink_to(elsewhere)
    with pytest.raises(OSError, match=re.escape(f"{force}: not a regular file")):
        request_forced_reload(force)
    assert not elsewhere.exists()


def test_a_forced_reload_request_is_used_up_once(database: Path):
    force = force_request_path(database)
    request_forced_reload(force)
    # A second request before a reload took the first asks for the same.
    request_forced_reload(force)
    assert force.stat().st_mode & 0o777 == 0o600
    assert take_forced_reload(force)
    assert not take_forced_reload(force)
