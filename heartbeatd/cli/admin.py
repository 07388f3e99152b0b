"""One-off tools for the admin: send a test alert, hash a password for
[web.users], verify a database file."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import click

from heartbeatd.cli.app import DEFAULT_CONFIG, config_option, read_config, setup_logging
from heartbeatd.clock import Clock
from heartbeatd.config import Config


@click.command(name="test-alert")
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

    from heartbeatd.alerts import Alert
    from heartbeatd.channels import CHANNEL_TYPES
    from heartbeatd.channels.base import DeliveryError, SendContext
    from heartbeatd.model import AlertEvent, Reason, Status

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


@click.command(name="verify-db")
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


@click.command(name="hash-password")
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
