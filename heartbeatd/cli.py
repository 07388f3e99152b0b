"""The `heartbeatd` command. The only module that installs signal handlers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from heartbeatd import __version__, humanize, wrap
from heartbeatd.clock import Clock
from heartbeatd.config import Config, check_warnings, find_database, load_config, ping_urls
from heartbeatd.durations import format_duration
from heartbeatd.model import MonitorView, Status
from heartbeatd.systemd import (
    APPLIED,
    ReloadStatus,
    find_open_database,
    force_request_path,
    journal_logging,
    read_reload_status,
    reload_status_path,
    request_forced_reload,
)
from heartbeatd.tables import ConfigError
from heartbeatd.times import isoformat

if TYPE_CHECKING:
    from heartbeatd.client import DaemonAPI

DEFAULT_CONFIG = "/etc/heartbeatd/heartbeatd.toml"

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    envvar="HEARTBEATD_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    show_envvar=True,
    help="The TOML config file.",
)

# Exit codes of `heartbeatd check` / `run` for a bad config, as in the docs.
EXIT_CONFIG = 2
# `heartbeatd reload`: no daemon to ask, or no answer from it.
EXIT_NO_ANSWER = 1
# `status`, `history`, `pause`, `resume`: a monitor is down; nothing answers at
# the daemon's address; the daemon refused (401, 403, 404).
EXIT_DOWN = 1
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
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


class JournalFormatter(logging.Formatter):
    """No timestamps (journald adds them); a <N> syslog prefix sets the priority."""

    PRIORITY = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{self.PRIORITY.get(record.levelno, 6)}>"
        return prefix + super().format(record)


class ClientErrorFilter(logging.Filter):
    """aiohttp logs at error level, with a traceback, every request it cannot
    parse, and every body that fails to decode (bad gzip, a broken chunk),
    raised again when it reads what a handler left of the body, on any URL:
    any client could flood the journal. Such a record becomes one debug line,
    shown only with -v."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, (HttpProcessingError, RequestPayloadError)):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # aiohttp's messages span lines ("400, message:\n  Can not decode ...").
        record.msg, record.args = "bad request from a client: %s", (" ".join(str(exc).split()),)
        record.exc_info = record.exc_text = None
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if journal_logging():
        handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # aiohttp logs each unhandled error itself; keep its access log quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorFilter) for f in server_log.filters):
        server_log.addFilter(ClientErrorFilter())


def fail_config(exc: ConfigError) -> NoReturn:
    for line in exc.problems:
        click.echo(line, err=True)
    sys.exit(EXIT_CONFIG)


def read_config(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail_config(exc)


@click.group()
@click.version_option(__version__, prog_name="heartbeatd")
def main() -> None:
    """heartbeatd: a self-hosted dead man's switch for cron jobs and scripts."""


@main.command()
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


@main.command()
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
    warnings = check_warnings(config)
    if warnings:
        click.echo("")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command(name="reload")
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


def _next(monitor: MonitorView, now: datetime) -> str:
    """What to expect of a monitor: its next ping, or why none is awaited."""
    if monitor.status is Status.DOWN:
        return f"down since {isoformat(monitor.down_at) or '?'}"
    if monitor.status is Status.PAUSED:
        return "paused: until resumed or pinged"
    return _age(monitor.expected_at, now)


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return "in " + format_duration(-seconds)
    return format_duration(seconds) + " ago"


def daemon_options(command: Any) -> Any:
    """The options of the commands that only talk to a running daemon."""
    options = [
        click.option(
            "-c",
            "--config",
            "config_path",
            envvar="HEARTBEATD_CONFIG",
            default=None,
            show_envvar=True,
            help=f"The TOML config naming the daemon's address and API token"
            f" (default: {DEFAULT_CONFIG}; not read with --url alone).",
        ),
        click.option(
            "--url", default=None, help="The daemon's address (default: from [server] listen)."
        ),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A file holding the API token (default: the config's api_token_file).",
        ),
        click.option("--user", help="Log in as this [web.users] user (basic auth)."),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="The --user's password, on the file's first line"
            " (default: $HEARTBEATD_PASSWORD, else asked on the terminal).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _connect(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
) -> DaemonAPI:
    """The daemon to ask and how to log in: from the options, then the config.

    The config is read only when it is needed or named: with --url alone, a
    machine without /etc/heartbeatd can still ask a daemon elsewhere."""
    from heartbeatd.client import DaemonAPI, daemon_url

    config = None
    if config_path is None and url is None:
        if not os.path.exists(DEFAULT_CONFIG):
            click.echo(
                f"no config at {DEFAULT_CONFIG} (the default): give -c FILE or set"
                " HEARTBEATD_CONFIG, or reach the daemon with --url URL",
                err=True,
            )
            sys.exit(EXIT_CONFIG)
        config_path = DEFAULT_CONFIG
    if config_path is not None:
        config = read_config(config_path)
    if url is not None:
        base = url
    else:
        assert config is not None
        base = daemon_url(config)
    if user is not None:
        return DaemonAPI(base, DaemonAPI.basic(user, _password(user, password_file)))
    if token_file is not None:
        return DaemonAPI(base, DaemonAPI.bearer(_first_line(token_file, "--token-file")))
    if config is not None and config.server.api_token is not None:
        return DaemonAPI(base, DaemonAPI.bearer(config.server.api_token.reveal()))
    return DaemonAPI(base)


def _first_line(path: Path, option: str) -> str:
    try:
        with path.open(encoding="utf-8") as file:
            line = file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"{option} {path}: cannot read: {getattr(exc, 'strerror', exc)}", err=True)
        sys.exit(EXIT_CONFIG)
    if not line:
        click.echo(f"{option} {path}: the first line is empty", err=True)
        sys.exit(EXIT_CONFIG)
    return line


def _password(user: str, password_file: Path | None) -> str:
    if password_file is not None:
        return _first_line(password_file, "--password-file")
    from_env = os.environ.get("HEARTBEATD_PASSWORD")
    if from_env:
        return from_env
    if sys.stdin.isatty():
        return str(click.prompt(f"Password for {user}", hide_input=True))
    click.echo(
        f"no password for --user {user}: give --password-file FILE or set HEARTBEATD_PASSWORD",
        err=True,
    )
    sys.exit(EXIT_CONFIG)


def _ask(api: DaemonAPI, path: str, method: str = "GET") -> Any:
    from heartbeatd.client import ClientError, call

    try:
        return call(api, path, method=method)
    except ClientError as exc:
        click.echo(str(exc), err=True)
        if exc.status == 403 and method == "POST":
            click.echo(
                "to pause and resume: set [server] api_token_file (or add [web.users]) in the"
                " daemon's config, reload it, and give --token-file FILE (or --user NAME)",
                err=True,
            )
        if exc.status == 401 and api.authorization is None:
            click.echo(
                "to log in: give --user NAME, or --token-file FILE"
                " (or -c with the daemon's config)",
                err=True,
            )
        refused = exc.status is not None and 400 <= exc.status < 500
        sys.exit(EXIT_REFUSED if refused else EXIT_UNREACHABLE)


@main.command()
@daemon_options
@click.option("-v", "--verbose", is_flag=True, help="Also show each monitor's uuid.")
def status(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    verbose: bool,
) -> None:
    """Show every monitor; exit 1 when any is down."""
    api = _connect(config_path, url, token_file, user, password_file)
    answer = _ask(api, "/api/v1/monitors")["monitors"]
    monitors = [MonitorView.from_json(m) for m in answer]
    now = Clock().now()
    rows = [["MONITOR", "STATUS", "LAST PING", "NEXT EXPECTED"]]
    for m in monitors:
        status_text = m.status.value + (" (running)" if m.started_at else "")
        rows.append([m.slug, status_text, _age(m.last_ping, now), _next(m, now)])
        if verbose:
            rows[-1].append(m.uuid or "-")
    if verbose:
        rows[0].append("UUID")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if any(m.status is Status.DOWN for m in monitors):
        sys.exit(EXIT_DOWN)


@main.command()
@daemon_options
@click.argument("slug")
def pause(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    slug: str,
) -> None:
    """Pause a monitor: no alerts until it is resumed or pinged."""
    api = _connect(config_path, url, token_file, user, password_file)
    result = _ask(api, f"/api/v1/monitors/{slug}/pause", method="POST")
    click.echo(f"{slug}: {result['status']}")


@main.command()
@daemon_options
@click.argument("slug")
def resume(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    slug: str,
) -> None:
    """Resume a paused monitor."""
    api = _connect(config_path, url, token_file, user, password_file)
    result = _ask(api, f"/api/v1/monitors/{slug}/resume", method="POST")
    click.echo(f"{slug}: {result['status']}")


@main.command()
@daemon_options
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many pings and flips.",
)
@click.option("--body", is_flag=True, help="Show each ping's body (the job's output).")
@click.argument("slug")
def history(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    limit: int,
    body: bool,
    slug: str,
) -> None:
    """Recent pings and flips of a monitor."""
    api = _connect(config_path, url, token_file, user, password_file)
    # The API answers at least one of each; -n 0 asks for none.
    pings = _ask(api, f"/api/v1/monitors/{slug}/pings?limit={limit}")["pings"][:limit]
    flips = _ask(api, f"/api/v1/monitors/{slug}/flips?limit={limit}")["flips"][:limit]
    click.echo("PINGS")
    for p in pings:
        code = "" if p["exit_status"] is None else f" exit={p['exit_status']}"
        took = "" if p["duration"] is None else f"  took {humanize.duration(p['duration'])}"
        click.echo(f"  {p['at']}  {p['kind']:<7}{code}{took}  {p['remote_addr']}")
        if body and p["body"]:
            cut = " (cut at max_body)" if p["truncated"] else ""
            for line in (p["body"] + cut).splitlines():
                click.echo(f"      | {line}")
    click.echo("FLIPS")
    for f in flips:
        click.echo(f"  {f['at']}  {f['old']} -> {f['new']}  ({f['reason']})")


@contextlib.contextmanager
def _forwarding_signals(job: wrap.Job) -> Iterator[None]:
    """While the job runs, pass SIGTERM, SIGINT and SIGHUP on to it; exec
    keeps waiting for it and reports how it ended."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in wrap.FORWARDED_SIGNALS:
        try:
            loop.add_signal_handler(sig, job.forward, sig)
        except (RuntimeError, ValueError) as exc:
            # Only the main thread can handle signals.
            logging.getLogger(__name__).warning(
                "event=no_signal_forwarding signal=%s error=%s", sig.name, exc
            )
            break
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@main.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.option("--url", help="The monitor's ping URL (default: $HEARTBEATD_URL).")
@click.option("--slug", help="The monitor's slug (with --server).")
@click.option("--server", help="heartbeatd's base URL, e.g. https://hb.example.com.")
@click.option("--ping-key", envvar="HEARTBEATD_PING_KEY", help="The [server] ping_key.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds per ping request (within --ping-timeout).",
)
@click.option(
    "--ping-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds per ping in all, retries included: the most a ping delays the job.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    url: str | None,
    slug: str | None,
    server: str | None,
    ping_key: str | None,
    timeout: float,
    ping_timeout: float,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND, reporting its start, exit status and output to heartbeatd.

    Use it as: heartbeatd exec --url URL -- COMMAND ARGS...
    """
    try:
        target = wrap.build_url(
            url=url,
            slug=slug,
            server=server,
            ping_key=ping_key,
            env_url=os.environ.get("HEARTBEATD_URL"),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    opts = wrap.ExecOptions(url=target, timeout=timeout, ping_timeout=ping_timeout)
    sys.exit(wrap.main(list(command), opts, while_running=_forwarding_signals))


@main.command(name="test-alert")
@config_option
@click.argument("channel")
def test_alert(config_path: str, channel: str) -> None:
    """Send a test alert through CHANNEL and report the outcome."""
    config = read_config(config_path)
    if channel not in config.channels:
        known = ", ".join(config.channels) or "none"
        click.echo(f"no channel named {channel!r} (configured: {known})", err=True)
        sys.exit(2)
    setup_logging(False)
    error = asyncio.run(_send_test_alert(config, channel, Clock()))
    if error is None:
        click.echo(f"test alert sent through {channel}")
        return
    click.echo(f"test alert through {channel} failed: {error}", err=True)
    sys.exit(1)


async def _send_test_alert(config: Config, name: str, clock: Clock) -> str | None:
    """One real attempt through the channel; the classified error, or None."""
    import aiohttp

    from heartbeatd.channels import CHANNEL_TYPES
    from heartbeatd.channels.base import DeliveryError, SendContext
    from heartbeatd.model import Alert, AlertEvent, Reason, Status

    channel = config.channels[name]
    alert = Alert(
        event=AlertEvent.TEST,
        monitor="heartbeatd-test",
        name="heartbeatd test alert",
        status=Status.DOWN,
        reason=Reason.MISSED,
        at=clock.now(),
        url=config.server.base_url,
        body=f"A test alert from `heartbeatd test-alert {name}`: this channel works.",
    )
    timeout = float(config.alerts.send_timeout)
    async with aiohttp.ClientSession() as session:
        ctx = SendContext(session=session, timeout=timeout)
        try:
            await clock.wait_for(
                CHANNEL_TYPES[channel.type].send(alert, channel.options, ctx), timeout
            )
        except DeliveryError as exc:
            kind = "permanent" if exc.permanent else "temporary: the outbox would retry it"
            return f"{exc} ({kind})"
        except asyncio.TimeoutError:
            return f"no answer within {timeout:.0f}s (temporary: the outbox would retry it)"
    return None


@main.command(name="verify-db")
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="HEARTBEATD_CONFIG",
    default=None,
    show_envvar=True,
    help=f"The TOML config file naming the database (default: {DEFAULT_CONFIG}).",
)
@click.option("--db", "db_path", type=click.Path(path_type=Path), help="The database file.")
@click.option("--quick", is_flag=True, help="PRAGMA quick_check instead of integrity_check.")
def verify_db(config_path: str | None, db_path: Path | None, quick: bool) -> None:
    """Check a database file read-only; exit 1 with the reason when it fails.

    Safe while the daemon runs: it never migrates, writes or takes the lock.
    """
    from heartbeatd.store.verify import VerifyError, verify

    # --db wins over the config (which $HEARTBEATD_CONFIG may name unasked).
    if db_path is None:
        db_path = read_config(config_path or DEFAULT_CONFIG).storage.path
    try:
        report = verify(db_path, quick=quick)
    except VerifyError as exc:
        click.echo(f"FAILED {exc}", err=True)
        sys.exit(1)
    for line in report.lines():
        click.echo(line)


@main.command(name="hash-password")
@click.argument("user", required=False)
def hash_password(user: str | None) -> None:
    """Print a password hash for [web.users].

    Asks for the password twice (not echoed) on a terminal; otherwise reads
    one line from standard input. With USER, prints a whole `USER = "..."`
    line to paste under [web.users].
    """
    from heartbeatd.auth import hash_password as make_hash

    if user is not None and (not user or ":" in user):
        click.echo('a user name must not be empty or contain ":"', err=True)
        sys.exit(2)
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        click.echo("no password given", err=True)
        sys.exit(2)
    line = make_hash(password)
    if user is None:
        click.echo(line)
    else:
        # A bare TOML key when it can be one; a quoted one otherwise.
        key = user if re.fullmatch(r"[A-Za-z0-9_-]+", user) else json.dumps(user)
        click.echo(f'{key} = "{line}"')
