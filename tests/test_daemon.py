"""The daemon in-process on a fake clock: clock jumps, its own downtime,
reloads, its bounded waits, and one daemon per database (in-process and as
two real processes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from heartbeatd.clock import FakeClock
from heartbeatd.daemon import DELIVERY_DRAIN, HEALTH_WRITE_TIMEOUT, Daemon
from heartbeatd.model import Ping, PingKind, Status
from heartbeatd.systemd import (
    Notifier,
    ReloadStatus,
    force_request_path,
    read_reload_status,
    reload_status_path,
    request_forced_reload,
)
from tests.harness import (
    START_TIMEOUT,
    DaemonProcess,
    WebhookSink,
    advance_until_done,
    free_port,
    settle,
    stop_daemon,
)
from tests.samples import BACKUP, LOG_CHANNEL, config_text

MakeDaemon = Callable[..., Awaitable[Daemon]]


def write_config(path: Path, monitors: str = BACKUP, **kwargs: object) -> Path:
    """A config listening on a port of its own, with the log channel."""
    kwargs.setdefault("channels", LOG_CHANNEL)
    path.write_text(config_text(monitors, port=free_port(), **kwargs))  # type: ignore[arg-type]
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "heartbeatd.toml")


@pytest.fixture
def run_daemon(
    make_daemon: MakeDaemon, config_path: Path, clock: FakeClock
) -> Callable[[], Awaitable[Daemon]]:
    """Start the daemon on `config_path`, with `backup` pinged and up."""

    async def start() -> Daemon:
        daemon = await make_daemon(config_path)
        await daemon.engine.handle_ping("backup", Ping(PingKind.SUCCESS, at=clock.now()))
        await settle(daemon)
        return daemon

    return start


async def alert_events(daemon: Daemon) -> list[str]:
    await daemon.store.flush()
    with contextlib.closing(sqlite3.connect(daemon.store.path)) as db:
        return [row[0] for row in db.execute("SELECT event FROM outbox ORDER BY id")]


async def alerts(daemon: Daemon) -> int:
    counts = await daemon.store.outbox_counts()
    return sum(counts.values())


async def test_a_wall_clock_jump_forward_gives_grace_instead_of_false_alerts(
    run_daemon, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    daemon = await run_daemon()
    # NTP steps the clock a day ahead; only two seconds passed for real.
    clock.jump(clock.now().replace(day=clock.now().day + 1))
    clock.advance(seconds=2)
    await settle(daemon)
    assert "wall clock jumped forward" in caplog.text
    assert daemon.engine.state("backup").status is Status.LATE
    # No monitor alert; the jump itself is told, once (a daemon_gap).
    assert await alert_events(daemon) == ["daemon_gap"]
    # A real outage is still caught, one grace period after the jump.
    clock.advance(minutes=5)
    await settle(daemon)
    assert daemon.engine.state("backup").status is Status.DOWN
    assert await alert_events(daemon) == ["daemon_gap", "down"]


async def test_a_wall_clock_jump_back_only_delays_deadlines(
    run_daemon, clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    daemon = await run_daemon()
    clock.jump(clock.now().replace(day=clock.now().day - 1))
    clock.advance(seconds=2)
    await settle(daemon)
    assert "wall clock jumped back" in caplog.text
    clock.advance(hours=2)
    await settle(daemon)
    assert daemon.engine.state("backup").status is Status.UP
    assert await alerts(daemon) == 0


async def test_after_a_long_stop_it_says_how_long_and_sends_no_alert_storm(
    run_daemon,
    make_daemon: MakeDaemon,
    config_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    daemon = await run_daemon()
    await stop_daemon(daemon, clock)
    # Stopped for six hours: six periods of the monitor passed meanwhile.
    clock.advance(hours=6)
    again = await make_daemon(config_path)
    await settle(again)
    notices = [
        r.getMessage()
        for r in caplog.records
        if r.name == "heartbeatd.daemon" and "was not running" in r.getMessage()
    ]
    assert len(notices) == 1
    assert "about 6h" in notices[0]
    assert again.engine.state("backup").status is Status.LATE
    # No alert for the monitor; one about heartbeatd's own downtime.
    assert await alert_events(again) == ["daemon_gap"]


# -- reload --------------------------------------------------------------------------

TWO = BACKUP + '[monitors.web]\nperiod = "1m"\n'


def status_of(daemon: Daemon) -> ReloadStatus | None:
    return read_reload_status(reload_status_path(daemon.config.storage.path))


def rewrite(path: Path, monitors: str, db: str = "hb.db") -> None:
    """Replace the config's monitors, on the port the daemon listens on."""
    port = int(path.read_text().split('listen = "127.0.0.1:')[1].split('"')[0])
    path.write_text(config_text(monitors, port=port, db=db, channels=LOG_CHANNEL))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


async def test_a_reload_that_moves_the_database_reports_where_the_running_one_is(
    run_daemon, config_path: Path
):
    # The database path needs a restart to change: the running daemon keeps
    # its database, and `heartbeatd reload --pid` looks for the outcome there.
    daemon = await run_daemon()
    running = reload_status_path(daemon.store.path)
    rewrite(config_path, BACKUP, db="moved.db")
    await daemon.apply_reload()
    status = read_reload_status(running)
    assert status is not None
    assert (status.generation, status.state) == (1, "applied")


async def test_each_reload_reports_its_number_and_outcome(run_daemon, config_path: Path):
    daemon = await run_daemon()
    assert status_of(daemon) == ReloadStatus(
        os.getpid(), 0, "started", at="2026-01-14T12:00:00Z", monitors=1
    )

    rewrite(config_path, TWO)
    await daemon.apply_reload()
    assert status_of(daemon) == ReloadStatus(
        os.getpid(), 1, "applied", at="2026-01-14T12:00:00Z", monitors=2, added=1
    )

    rewrite(config_path, TWO.replace('period = "1m"', 'period = "1 min"'))
    await daemon.apply_reload()
    assert status_of(daemon) == ReloadStatus(
        os.getpid(),
        2,
        "rejected",
        at="2026-01-14T12:00:00Z",
        monitors=2,
        errors=(
            f'{config_path}: monitors.web.period: expected a duration like "30s", "5m" or'
            ' "1h30m", got "1 min"',
        ),
    )
    assert (daemon.reloads.ok, daemon.reloads.failed, daemon.reloads.generation) == (1, 1, 2)


HOSTILE = {
    "nested-500": '[monitors.x]\nperiod = "1h"\nname = ' + "[" * 600 + "]" * 600 + "\n",
    "inline-tables-500": "[monitors.x]\nperiod = " + "{a = " * 600 + "1" + "}" * 600 + "\n",
    "number-5000-digits": "[monitors.x]\nperiod = " + "9" * 5000 + "\n",
    "duration-5000-digits": '[monitors.x]\nperiod = "' + "9" * 5000 + 's"\n',
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_reload_of_a_hostile_file_keeps_the_running_config(
    run_daemon, config_path: Path, clock: FakeClock, text: str
):
    daemon = await run_daemon()
    before = daemon.config
    append(config_path, text)

    await daemon.apply_reload()

    assert daemon.config is before
    status = status_of(daemon)
    assert status is not None and status.state == "rejected"
    [error] = status.errors
    assert error.startswith(f"{config_path}: ") and "\n" not in error
    # Still watching: the monitor goes down on time.
    clock.advance(hours=1, minutes=6)
    await settle(daemon)
    assert daemon.engine.state("backup").status is Status.DOWN


class NoThreads(ThreadPoolExecutor):
    """A pool that cannot start a thread, as under systemd's TasksMax."""

    def submit(self, *args: object, **kwargs: object):  # type: ignore[override]
        raise RuntimeError("can't start new thread")


async def test_an_unexpected_error_in_a_reload_is_logged_and_the_daemon_goes_on(
    run_daemon, config_path: Path, caplog: pytest.LogCaptureFixture
):
    daemon = await run_daemon()
    before = daemon.config
    # The reload reads the file on a thread of the loop's default pool.
    loop = asyncio.get_running_loop()
    loop.set_default_executor(NoThreads())
    try:
        await daemon.apply_reload()
    finally:
        loop.set_default_executor(ThreadPoolExecutor())

    assert daemon.config is before
    status = status_of(daemon)
    assert status is not None
    error = 'RuntimeError("can\'t start new thread")'
    assert (status.state, status.errors) == (
        "rejected",
        (f"{config_path}: reload failed: {error} (a bug in heartbeatd; see its log)",),
    )
    assert f"reload failed: {error}" in caplog.text
    assert daemon.reloads.failed == 1
    # The next reload that can read the file applies it.
    rewrite(config_path, TWO)
    await daemon.apply_reload()
    assert list(daemon.config.monitors) == ["backup", "web"]


async def test_a_reload_that_removes_every_monitor_needs_force(run_daemon, config_path: Path):
    daemon = await run_daemon()
    rewrite(config_path, "")

    await daemon.apply_reload()
    status = status_of(daemon)
    assert status is not None
    assert (status.state, status.forced, status.errors) == (
        "rejected",
        False,
        (
            f"{config_path}: monitors: none in the file, so the reload would remove the only"
            " monitor (a file cut short?); `heartbeatd reload --force` applies it anyway",
        ),
    )
    assert list(daemon.config.monitors) == ["backup"]

    force = force_request_path(daemon.config.storage.path)
    request_forced_reload(force)
    await daemon.apply_reload()
    status = status_of(daemon)
    assert status is not None
    assert (status.state, status.forced, status.monitors, status.removed) == ("applied", True, 0, 1)
    assert daemon.config.monitors == {}
    # Used up: the next reload is an ordinary one again.
    assert not force.exists()


async def test_a_reload_tells_systemd_reloading_then_ready_even_when_rejected(
    make_daemon: MakeDaemon,
    config_path: Path,
    clock: FakeClock,
    tmp_path_factory: pytest.TempPathFactory,
):
    address = tmp_path_factory.mktemp("sd") / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(5)
        daemon = await make_daemon(config_path, notifier=Notifier(str(address)))
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching 1 monitor"
        append(config_path, "[monitors.x]\nperiod = 5 min\n")
        await daemon.apply_reload()
        assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=1000000000"
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching 1 monitor"
        await stop_daemon(daemon, clock)


def same_database_elsewhere(config_path: Path, db: Path) -> Path:
    """A second config: another directory and port, the first one's database."""
    other = config_path.parent / "other"
    other.mkdir()
    return write_config(other / "heartbeatd.toml", db=str(db))


def read_lock_file(db: Path) -> str:
    return Path(f"{db}.lock").read_text()


async def test_a_second_daemon_on_the_same_database_refuses_to_start(
    run_daemon, make_daemon: MakeDaemon, config_path: Path
):
    first = await run_daemon()
    db = first.config.storage.path
    # Even on another port: the second would run every timer and send every alert again.
    with pytest.raises(OSError) as info:
        await make_daemon(same_database_elsewhere(config_path, db))
    error = str(info.value)
    assert error == f"{db}: in use by another heartbeatd (pid {os.getpid()}, lock file {db}.lock)"
    assert first.store.path == db


async def test_the_database_lock_holds_the_pid_and_is_released_on_shutdown(
    run_daemon, make_daemon: MakeDaemon, config_path: Path, clock: FakeClock
):
    first = await run_daemon()
    assert read_lock_file(first.config.storage.path) == f"{os.getpid()}\n"
    await stop_daemon(first, clock)
    again = await make_daemon(config_path)
    assert read_lock_file(again.config.storage.path) == f"{os.getpid()}\n"


# -- bounded waits, on the clock ------------------------------------------------------


async def test_health_says_the_database_is_not_writable_when_a_write_outlasts_its_timeout(
    run_daemon, clock: FakeClock
):
    daemon = await run_daemon()
    assert await daemon.health() is None
    # Another process holds the write lock: the writer waits on it.
    lock = sqlite3.connect(daemon.config.storage.path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        checking = asyncio.ensure_future(daemon.health())
        await advance_until_done(clock, checking, HEALTH_WRITE_TIMEOUT, within=1.0)
        assert checking.result() == "database not writable: no answer within 5s"
    finally:
        lock.close()
    assert await daemon.health() is None


async def test_shutdown_cuts_a_delivery_still_under_way_after_the_drain_time(
    make_daemon: MakeDaemon, tmp_path: Path, clock: FakeClock, webhook_sink: WebhookSink
):
    path = write_config(tmp_path / "hook.toml", hook=webhook_sink.url)
    daemon = await make_daemon(path)
    webhook_sink.hold()
    await daemon.engine.handle_ping("backup", Ping(PingKind.FAIL, at=clock.now()))
    await webhook_sink.next_request()

    stopping = asyncio.ensure_future(daemon.shutdown())
    # The receiver never answers: the wait for it ends after DELIVERY_DRAIN on the clock.
    await advance_until_done(clock, stopping, DELIVERY_DRAIN, within=1.0)
    stopping.result()
    # Not lost: still pending, for the next start to send.
    with contextlib.closing(sqlite3.connect(daemon.config.storage.path)) as db:
        rows = db.execute("SELECT channel, state FROM outbox ORDER BY channel").fetchall()
    assert rows == [("hook", "pending"), ("log", "sent")]


def test_a_second_daemon_process_on_the_same_database_exits_naming_the_first(
    daemon: DaemonProcess, tmp_path: Path
):
    daemon.write_config('[monitors.backup]\nperiod = "1h"\n')
    daemon.start()
    assert daemon.proc is not None
    second = DaemonProcess(tmp_path / "second")
    second.dir.mkdir()
    second.write_raw_config(
        f'[server]\nlisten = "127.0.0.1:{second.port}"\n'
        f'[storage]\npath = "{daemon.db_path}"\n'
        '[monitors.backup]\nperiod = "1h"\n'
    )
    try:
        second.start(wait=False)
        assert second.wait_exit(START_TIMEOUT) == 1, second.log()
    finally:
        second.kill()
    assert f"in use by another heartbeatd (pid {daemon.proc.pid}" in second.log()
    # It stopped before it wrote anything, and the first one still serves.
    assert "store opened" not in second.log()
    assert daemon.ping("backup").status == 200
    daemon.assert_running()


# -- start-up order ----------------------------------------------------------------


def port_of(config_path: Path) -> int:
    [line] = [x for x in config_path.read_text().splitlines() if x.startswith("listen")]
    return int(line.rsplit(":", 1)[1].rstrip('"'))


def fingerprint(db: Path) -> tuple[bytes, int, int]:
    """The database's bytes and when it and its lock file were last written."""
    return db.read_bytes(), db.stat().st_mtime_ns, Path(f"{db}.lock").stat().st_mtime_ns


async def test_with_its_port_taken_it_leaves_an_existing_database_untouched(
    run_daemon, make_daemon: MakeDaemon, config_path: Path, clock: FakeClock
):
    first = await run_daemon()
    db = first.config.storage.path
    await stop_daemon(first, clock)
    before = fingerprint(db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port_of(config_path)))
        taken.listen()
        with pytest.raises(OSError) as info:
            await make_daemon(config_path)
    assert str(info.value) == (
        f"[Errno 98] error while attempting to bind on address"
        f" ('127.0.0.1', {port_of(config_path)}): address already in use"
    )
    # Not opened, so neither migrated nor stamped, and not locked.
    assert fingerprint(db) == before


def test_a_daemon_process_with_its_port_taken_exits_before_creating_its_database(
    daemon: DaemonProcess,
):
    daemon.write_config('[monitors.backup]\nperiod = "1h"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", daemon.port))
        taken.listen()
        daemon.start(wait=False)
        assert daemon.wait_exit(START_TIMEOUT) == 1, daemon.log()
    assert (
        daemon.log()
        .splitlines()[-1]
        .endswith(
            "CRITICAL heartbeatd: cannot start: [Errno 98] error while attempting to bind on"
            f" address ('127.0.0.1', {daemon.port}): address already in use"
        )
    )
    assert sorted(p.name for p in daemon.dir.iterdir()) == ["daemon.log", "heartbeatd.toml"]
