"""`heartbeatd exec`: run a job and report its start, end and output."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import click

from heartbeatd import wrap


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
            # Only the main thread can handle signals. Logged as "heartbeatd.cli",
            # as before the command modules were split out of it.
            logging.getLogger("heartbeatd.cli").warning(
                "event=no_signal_forwarding signal=%s error=%s", sig.name, exc
            )
            break
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
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
