"""The daemon's own commands: run it, check its config, make it reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import click

from heartbeatd import humanize
from heartbeatd.cli.app import (
    EXIT_CONFIG,
    EXIT_NO_ANSWER,
    config_option,
    fail_config,
    setup_logging,
)
from heartbeatd.clock import Clock
from heartbeatd.config import (
    AlertsConfig,
    Config,
    SelfPingConfig,
    check_warnings,
    find_database,
    load_config,
    ping_urls,
)
from heartbeatd.durations import format_duration
from heartbeatd.provision import shadowed
from heartbeatd.store.provisioned import read_file
from heartbeatd.systemd import (
    APPLIED,
    ReloadStatus,
    find_open_database,
    force_request_path,
    read_reload_status,
    reload_status_path,
    request_forced_reload,
)
from heartbeatd.tables import ConfigError

# How often `heartbeatd reload` looks for the daemon's answer.
RELOAD_POLL = 0.05

# `check` run before the service ever started cannot read its credentials.
CREDENTIALS_NOTE_IF = ': cannot read "/run/credentials/'
CREDENTIALS_NOTE = (
    "note: systemd provides the files in /run/credentials/ (LoadCredential=) only"
    " while the service runs; check them before it starts with"
    " --credentials DIR, DIR holding them under their credential names"
    " (e.g. /etc/heartbeatd)"
)


@click.command()
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages too.")
def run(config_path: str, verbose: bool) -> None:
    """Run the daemon (SIGHUP reloads the config, SIGTERM stops)."""
    from heartbeatd.daemon import run as run_daemon
    from heartbeatd.store import StoreError

    setup_logging(verbose)
    _use_uvloop()

    async def main_task() -> None:
        stop, reload = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        await run_daemon(config_path, Clock(), stop, reload)

    try:
        asyncio.run(main_task())
    except ConfigError as exc:
        fail_config(exc)
    except (OSError, StoreError) as exc:
        # Most often: the listen address is taken, or the db directory is not writable.
        logging.getLogger("heartbeatd").critical("cannot start: %s", exc)
        sys.exit(1)


def _use_uvloop() -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@click.command()
@config_option
@click.option(
    "--credentials",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read *_file keys under /run/credentials/<unit>/ from this directory"
    " (where LoadCredential= takes them from), before the service first starts.",
)
def check(config_path: str, credentials: Path | None) -> None:
    """Validate the config and list monitors with their ping URLs."""
    try:
        config = load_config(config_path, credentials=credentials)
    except ConfigError as exc:
        if credentials is None and any(CREDENTIALS_NOTE_IF in line for line in exc.problems):
            exc.problems.append(CREDENTIALS_NOTE)
        fail_config(exc)
    click.echo(
        f"{config_path}: OK, {humanize.count(len(config.monitors), 'monitor')},"
        f" {humanize.count(len(config.channels), 'channel')}"
    )
    for slug, monitor in config.monitors.items():
        click.echo("")
        title = slug if monitor.name == slug else f"{slug}  ({monitor.name})"
        click.echo(title)
        timing = f"{monitor.schedule.describe()}, grace {format_duration(monitor.grace)}"
        if monitor.max_runtime != monitor.grace:
            timing += f", max runtime {format_duration(monitor.max_runtime)}"
        if monitor.repeat:
            timing += f", reminders every {format_duration(monitor.repeat)}"
        click.echo(f"  schedule: {timing}")
        click.echo(f"  channels: {', '.join(monitor.channels) or '(none: no alerts)'}")
        for i, url in enumerate(ping_urls(config, monitor)):
            click.echo(f"  {'ping:    ' if i == 0 else '         '} {url}")
    for line in daemon_checks(config):
        click.echo(line)
    warnings = check_warnings(config) + _shadowed_warnings(config)
    if config.server.auto_provision and config.server.ping_key is None:
        warnings.append(
            f"{config.path}: server.auto_provision: without ping_key anyone who reaches"
            " /ping/ can create monitors; Healthchecks provisions only under the ping key"
        )
    if warnings:
        click.echo("")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _shadowed_warnings(config: Config) -> list[str]:
    """API-created monitors (in the database) that a monitor of the file hides."""
    try:
        definitions = {d.slug: d for d in read_file(config.storage.path)}
    except sqlite3.Error as exc:
        return [f"{config.storage.path}: cannot read the API-created monitors: {exc}"]
    return [
        f"{config.path}: monitors.{slug}: also created through the API; the file's"
        " monitor wins and the API's is not watched (`heartbeatd export` shows it)"
        for slug in shadowed(config, definitions)
    ]


def daemon_checks(config: Config) -> list[str]:
    """What [self] and [alerts] make heartbeatd tell about itself, in words;
    nothing while they are at their defaults."""
    alerts, selfping = config.alerts, config.selfping
    if alerts == AlertsConfig(alerts.give_up_after, alerts.send_timeout) and selfping == (
        SelfPingConfig()
    ):
        return []
    to = ", ".join(alerts.channels) if alerts.channels is not None else "every channel"
    silence = format_duration(alerts.silence) if alerts.silence else "off"
    lines = [
        "",
        "heartbeatd itself",
        f"  downtime alert: after {format_duration(alerts.gap_notice)}; silence alert: {silence};"
        f" to {to}",
    ]
    if selfping.ping_url is None:
        lines.append("  self-ping: off")
    else:
        # Scheme and host only: the path usually holds the check's key.
        url = urlsplit(selfping.ping_url.reveal())
        lines.append(
            f"  self-ping: every {format_duration(selfping.every)} to {url.scheme}://{url.hostname}/…,"
            f" outbox stuck after {format_duration(selfping.stuck_after)}"
        )
    return lines


@click.command(name="reload")
@config_option
@click.option(
    "--pid",
    # Never 0, -1 (a process group, everyone) or 1 (init).
    type=click.IntRange(min=2),
    default=None,
    help="The daemon's process id (under systemd: $MAINPID). Default: from its status file.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply the file even if it removes more monitors than [server] reload_max_removed.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the daemon's answer.",
)
def reload_command(config_path: str, pid: int | None, force: bool, timeout: float) -> None:
    """Make the running daemon reload its config, and wait for the outcome.

    Sends SIGHUP and waits until the daemon has applied the file (exit 0) or
    rejected it (exit 2, with its errors). Exit 1 when no daemon answers.
    """
    # The running daemon's database, where it writes how each reload went:
    # from /proc when the pid is known, as the file (maybe broken) may not say.
    database = (find_open_database(pid) if pid else None) or find_database(config_path)
    if database is None:
        _reload_unlocatable(config_path, pid)
    status_path = reload_status_path(database)
    force_path = force_request_path(database)
    try:
        # The generation first, then the force request: a reload numbered
        # higher that took the request (ours, or one started by someone else
        # a moment later) began after this command and read the file as it is.
        before = read_reload_status(status_path)
        if force:
            request_forced_reload(force_path)
        if pid is None:
            if before is None:
                _no_answer(f"no heartbeatd runs with {config_path}: no {status_path}")
            pid = before.pid
            _check_is_the_daemon(pid, database, status_path)
        # A status another process left: this daemon's first reload is number 1.
        generation = before.generation if before is not None and before.pid == pid else 0
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            _no_answer(f"heartbeatd (pid {pid}) is not running")
        except PermissionError:
            _no_answer(f"not allowed to signal heartbeatd (pid {pid}): run as its user or root")
        outcome = asyncio.run(_await_reload(status_path, pid, generation, force, timeout))
    except OSError as exc:
        _no_answer(f"cannot ask heartbeatd to reload: {exc}")
    finally:
        if force:
            # Taken by the daemon if it got that far; not left for a later reload.
            with contextlib.suppress(FileNotFoundError):
                force_path.unlink()
    _report_reload(config_path, outcome)


def _check_is_the_daemon(pid: int, database: Path, status_path: Path) -> None:
    """Exit unless `pid` is alive and has `database` open.

    A status left by a daemon that was killed names a pid that may since
    belong to another process, which SIGHUP would likely end.
    """
    if not _is_running(pid):
        _no_answer(f"heartbeatd (pid {pid}) is not running")
    found = find_open_database(pid)
    # /proc shows paths with symlinks resolved (DynamicUser's /var/lib/private).
    if found is not None and found == database.resolve():
        return
    _no_answer(
        f"process {pid} named in {status_path} is not heartbeatd with this database"
        " (left from an earlier run?); give --pid"
    )


def _no_answer(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(EXIT_NO_ANSWER)


def _reload_unlocatable(config_path: str, pid: int | None) -> NoReturn:
    """A file that is not even TOML names no database, so there is no status
    to wait for: its errors are reported from here."""
    try:
        load_config(config_path)
    except ConfigError as exc:
        if pid is not None:
            # The daemon rejects it too; let it count and log the attempt.
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGHUP)
        for line in exc.problems:
            click.echo(line, err=True)
        click.echo("heartbeatd keeps running its previous config", err=True)
        sys.exit(EXIT_CONFIG)
    _no_answer(f"cannot find the database {config_path} names; give --pid")


async def _await_reload(
    status_path: Path, pid: int, generation: int, force: bool, timeout: float
) -> ReloadStatus:
    """The first finished reload numbered above `generation` (and forced, with
    --force): one begun after the signal, so it read the file as it is now.

    A signal has no reply channel; the status file is the answer, and it
    comes within a second or two, so it is looked at a few times a second.
    """
    clock = Clock()
    deadline = clock.monotonic() + timeout
    while True:
        status = read_reload_status(status_path)
        if (
            status is not None
            and status.pid == pid
            and status.generation > generation
            and status.is_done
            and (status.forced or not force)
        ):
            return status
        if not _is_running(pid):
            _no_answer(f"heartbeatd (pid {pid}) exited during the reload; see its log")
        if clock.monotonic() > deadline:
            _no_answer(
                f"heartbeatd (pid {pid}) did not report the reload within {timeout:g}s;"
                " its log says why (journalctl -u heartbeatd)"
            )
        await clock.sleep(RELOAD_POLL)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A process that exited but was not yet reaped (a zombie) still takes
    # signal 0; its state in /proc says "Z".
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def _report_reload(config_path: str, status: ReloadStatus) -> None:
    if status.state == APPLIED:
        click.echo(
            f"{config_path}: reloaded, {humanize.count(status.monitors, 'monitor')}"
            f" ({status.added} added,"
            f" {status.removed} removed, {status.changed} changed)"
        )
        return
    for line in status.errors:
        click.echo(line, err=True)
    click.echo("heartbeatd keeps running its previous config", err=True)
    sys.exit(EXIT_CONFIG)
