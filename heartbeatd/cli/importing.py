"""`heartbeatd import crontab|timers`: print monitors for the jobs a machine
already runs. Reads the user's files and never writes any."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from heartbeatd.durations import DurationError, parse_duration
from heartbeatd.importers import crontab, timers
from heartbeatd.importers.render import Slugs, comment
from heartbeatd.schedule import timezone_problem

# A crontab this big is no crontab; reading it all would only cost memory.
MAX_CRONTAB_BYTES = 16 << 20
DEFAULT_SERVER = "http://127.0.0.1:8080"


def local_timezone(root: Path) -> str:
    """The machine's zone (cron and systemd read schedules in it): Debian's
    /etc/timezone, else where /etc/localtime points; UTC if neither says."""
    try:
        name = (root / "etc/timezone").read_text(encoding="utf-8").strip()
        if name and timezone_problem(name) is None:
            return name
    except (OSError, UnicodeDecodeError):
        pass
    try:
        target = os.readlink(root / "etc/localtime")
    except OSError:
        return "UTC"
    _, marker, name = target.partition("zoneinfo/")
    return name if marker and timezone_problem(name) is None else "UTC"


def _check_prefix(prefix: str) -> str:
    try:
        Slugs(prefix)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--slug-prefix") from None
    return prefix


def _check_zone(zone: str | None, root: Path) -> str:
    if zone is None:
        return local_timezone(root)
    problem = timezone_problem(zone)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--timezone")
    return zone


@click.group(name="import")
def import_group() -> None:
    """Print monitors for the cron jobs and systemd timers a machine already runs."""


slug_prefix_option = click.option(
    "--slug-prefix", default="", help="Put this before every slug, e.g. the host name: web1-."
)
server_option = click.option(
    "--server",
    envvar="HEARTBEATD_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="heartbeatd's base URL, as the jobs reach it.",
)
timezone_option = click.option(
    "--timezone", default=None, help="Zone of the schedules (default: this machine's)."
)


@import_group.command(name="crontab")
@click.argument("file", default="-")
@click.option(
    "--system/--user",
    "system",
    default=None,
    help="System format, with a user column (default: for /etc/crontab and /etc/cron.d/*).",
)
@slug_prefix_option
@server_option
@timezone_option
@click.option(
    "--heartbeatd",
    "program",
    default=None,
    help="The heartbeatd the crontab runs (default: this one's path).",
)
@click.option(
    "--only",
    type=click.Choice(["toml", "crontab"]),
    default=None,
    help="Print only the monitors, or only the rewritten crontab.",
)
def import_crontab(
    file: str,
    system: bool | None,
    slug_prefix: str,
    server: str,
    timezone: str | None,
    program: str | None,
    only: str | None,
) -> None:
    """Print a monitor for each job of the crontab FILE (default: - for stdin),
    and the crontab again with each job wrapped in `heartbeatd exec`."""
    _check_prefix(slug_prefix)
    zone = _check_zone(timezone, Path("/"))
    try:
        if file == "-":
            data = sys.stdin.buffer.read(MAX_CRONTAB_BYTES + 1)
        else:
            with open(file, "rb") as handle:
                data = handle.read(MAX_CRONTAB_BYTES + 1)
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    if len(data) > MAX_CRONTAB_BYTES:
        raise click.ClickException(f"{file}: larger than 16 MiB, not a crontab")
    settings = crontab.Settings(
        timezone=zone,
        system=crontab.is_system_crontab(file) if system is None else system,
        slug_prefix=slug_prefix,
        program=program or shutil.which("heartbeatd") or "heartbeatd",
        server=server,
    )
    source = "stdin" if file == "-" else file
    # Undecodable bytes become U+FFFD, and such lines are left alone.
    result = crontab.import_crontab(data.decode("utf-8", errors="replace"), source, settings)
    if only == "crontab":
        click.echo(result.crontab, nl=False)
        return
    click.echo(result.toml, nl=False)
    if only is None:
        click.echo("")
        click.echo("# The crontab, each job wrapped (print it alone with --only crontab):")
        for line in result.crontab.rstrip("\n").split("\n"):
            click.echo(comment(line))


@import_group.command(name="timers")
@click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Read units under ROOT/etc/systemd/system, ROOT/lib/systemd/system, …",
)
@click.option("--all", "include_disabled", is_flag=True, help="Also timers that are not enabled.")
@slug_prefix_option
@server_option
@click.option("--ping-key", envvar="HEARTBEATD_PING_KEY", help="The [server] ping_key.")
@timezone_option
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="Grace for a run that starts on time; RandomizedDelaySec= is added.",
)
@click.option(
    "--only",
    type=click.Choice(["toml", "dropins"]),
    default=None,
    help="Print only the monitors, or only the drop-ins.",
)
def import_timers(
    root: Path,
    include_disabled: bool,
    slug_prefix: str,
    server: str,
    ping_key: str | None,
    timezone: str | None,
    grace: str,
    only: str | None,
) -> None:
    """Print a monitor for each systemd timer, and a drop-in per service that
    reports its start, success and failure."""
    _check_prefix(slug_prefix)
    try:
        grace_seconds = parse_duration(grace)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--grace") from None
    settings = timers.Settings(
        timezone=_check_zone(timezone, root),
        slug_prefix=slug_prefix,
        server=server,
        ping_key=ping_key,
        grace=grace_seconds,
        include_disabled=include_disabled,
    )
    result = timers.import_timers(root, settings)
    if only == "dropins":
        for item in result.dropins:
            click.echo(f"# ==> {item.path} <==")
            click.echo(item.text)
        return
    toml = result.toml
    if only == "toml":
        # The drop-ins are the comment block at the end.
        toml = toml.split("\n# Drop-ins that report", 1)[0].rstrip("\n") + "\n"
    click.echo(toml, nl=False)
