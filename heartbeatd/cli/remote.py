"""The commands that talk to a running daemon through its API: status,
pause, resume and history, and how they find and log in to it."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import click

from heartbeatd import humanize
from heartbeatd.cli.app import (
    DEFAULT_CONFIG,
    EXIT_CONFIG,
    EXIT_DOWN,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    read_config,
)
from heartbeatd.clock import Clock
from heartbeatd.durations import format_duration
from heartbeatd.model import Status
from heartbeatd.times import isoformat
from heartbeatd.views import MonitorView

if TYPE_CHECKING:
    from heartbeatd.client import DaemonAPI


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


def _ask(api: DaemonAPI, path: str, method: str = "GET", body: Any = None) -> Any:
    from heartbeatd.client import ClientError, call

    try:
        return call(api, path, method=method, body=body)
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


def _every_monitor(api: DaemonAPI, tag: str | None = None) -> list[Any]:
    """Every monitor (with `tag`), a page of 1000 at a time, following the
    API's cursor (a daemon that answers without one answered all of them)."""
    monitors: list[Any] = []
    query = {"limit": "1000"} | ({"tag": tag} if tag else {})
    while True:
        answer = _ask(api, "/api/v1/monitors?" + urlencode(query))
        monitors.extend(answer["monitors"])
        cursor = answer.get("next_cursor")
        if not cursor:
            return monitors
        query["cursor"] = cursor


@click.command()
@daemon_options
@click.option("-v", "--verbose", is_flag=True, help="Also show each monitor's uuid and tags.")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Only monitors carrying TAG (repeat it: monitors carrying every one).",
)
def status(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    verbose: bool,
    tags: tuple[str, ...],
) -> None:
    """Show every monitor (or those with --tag); exit 1 when any shown is down."""
    api = _connect(config_path, url, token_file, user, password_file)
    # The daemon filters by the first tag; a daemon older than tags does
    # not, so every tag is checked here too.
    answer = _every_monitor(api, tags[0] if tags else None)
    monitors = [MonitorView.from_json(m) for m in answer]
    monitors = [m for m in monitors if set(tags) <= set(m.tags)]
    now = Clock().now()
    rows = [["MONITOR", "STATUS", "LAST PING", "NEXT EXPECTED"]]
    for m in monitors:
        status_text = m.status.value + (" (running)" if m.started_at else "")
        if m.held_by:
            status_text += f" (held by {m.held_by})"
        slug = m.slug + (" (api)" if m.source == "api" else "")
        rows.append([slug, status_text, _age(m.last_ping, now), _next(m, now)])
        if verbose:
            rows[-1] += [m.uuid or "-", ",".join(m.tags) or "-"]
    if verbose:
        rows[0] += ["UUID", "TAGS"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if any(m.status is Status.DOWN for m in monitors):
        sys.exit(EXIT_DOWN)


@click.command()
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
    _change(_connect(config_path, url, token_file, user, password_file), slug, "pause")


@click.command()
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
    _change(_connect(config_path, url, token_file, user, password_file), slug, "resume")


def _change(api: DaemonAPI, slug: str, action: str) -> None:
    """POST the write API's `action` for `slug` and print the status it answers."""
    result = _ask(api, f"/api/v1/monitors/{slug}/{action}", method="POST")
    click.echo(f"{slug}: {result['status']}")


@click.command()
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
        held = f" held by {f['held_by']}" if f.get("held_by") else ""
        click.echo(f"  {f['at']}  {f['old']} -> {f['new']}  ({f['reason']}){held}")


def _targets(api: DaemonAPI, slug: str | None, tag: str | None) -> list[str]:
    """The slug given, or every monitor carrying the tag (exactly one of them)."""
    if (slug is None) == (tag is None):
        click.echo("give a monitor's SLUG or --tag TAG (not both)", err=True)
        sys.exit(EXIT_CONFIG)
    if slug is not None:
        return [slug]
    answer = _ask(api, "/api/v1/monitors")["monitors"]
    slugs = [m["slug"] for m in answer if tag in m.get("tags", ())]
    if not slugs:
        click.echo(f'no monitor carries the tag "{tag}"', err=True)
        sys.exit(EXIT_REFUSED)
    return slugs


@click.command()
@daemon_options
@click.option("--for", "for_", required=True, help='How long, e.g. "2h" or "30m".')
@click.option("--reason", default="", help="Why, shown on the page and in the API.")
@click.option("--tag", default=None, metavar="TAG", help="Every monitor carrying TAG.")
@click.argument("slug", required=False)
def snooze(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    for_: str,
    reason: str,
    tag: str | None,
    slug: str | None,
) -> None:
    """Hold the down alerts and reminders of a monitor (or of every monitor
    with --tag) for a while."""
    api = _connect(config_path, url, token_file, user, password_file)
    body = {"for": for_, "reason": reason}
    for one in _targets(api, slug, tag):
        result = _ask(api, f"/api/v1/monitors/{one}/snooze", method="POST", body=body)
        click.echo(f"{one}: snoozed until {result['snoozed_until']}")


@click.command()
@daemon_options
@click.option("--tag", default=None, metavar="TAG", help="Every monitor carrying TAG.")
@click.argument("slug", required=False)
def unsnooze(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    tag: str | None,
    slug: str | None,
) -> None:
    """End a snooze now; a down alert it held goes out."""
    api = _connect(config_path, url, token_file, user, password_file)
    for one in _targets(api, slug, tag):
        result = _ask(api, f"/api/v1/monitors/{one}/unsnooze", method="POST")
        click.echo(f"{one}: {result['status']}, alert {result['alert']}")


@click.command()
@daemon_options
@click.option("--note", default="", help="Shown on the page and in the API with the ack.")
@click.option("--by", default=None, help="Who acknowledges (default: user@host).")
@click.argument("slug")
def ack(
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    user: str | None,
    password_file: Path | None,
    note: str,
    by: str | None,
    slug: str,
) -> None:
    """Acknowledge a monitor's incident: its reminders and escalations stop
    until the next incident."""
    import getpass
    import socket

    api = _connect(config_path, url, token_file, user, password_file)
    who = by if by is not None else f"{getpass.getuser()}@{socket.gethostname()}"
    body = {"note": note, "by": who}
    result = _ask(api, f"/api/v1/monitors/{slug}/ack", method="POST", body=body)
    click.echo(f"{slug}: acknowledged at {result['acked_at']} by {result['acked_by']}")
