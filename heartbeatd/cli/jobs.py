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
from heartbeatd.durations import DurationError, parse_duration


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


class _ExecCommand(click.Command):
    """`exec [OPTIONS] [MONITOR] -- COMMAND…`: what comes before `--` is ours
    (options and at most one monitor), what comes after is the job's, even
    when it looks like an option of ours."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta[_AFTER_DASHES] = len(args) - cut - 1
        return super().parse_args(ctx, args)


_AFTER_DASHES = "heartbeatd.exec.after_dashes"
_ACTIONS = click.Choice([a.value for a in wrap.Action])


def _header(value: str) -> tuple[str, str]:
    name, colon, rest = value.partition(":")
    name = name.strip()
    # A header name is a token (RFC 9110); a value is one line.
    if not colon or not name or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
        raise click.BadParameter(f"expected NAME:VALUE, got {value!r}", param_hint="--header")
    if any(c in rest for c in "\r\n\x00"):
        raise click.BadParameter("a header value must be one line", param_hint="--header")
    return name, rest.strip()


def _every(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(parse_duration(value))
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None


@click.command(name="exec", cls=_ExecCommand, context_settings={"ignore_unknown_options": True})
@click.option("--url", help="The monitor's ping URL (default: $HEARTBEATD_URL).")
@click.option("--slug", help="The monitor's slug (with --server).")
@click.option(
    "--server",
    envvar="HEARTBEATD_SERVER",
    help="heartbeatd's base URL, e.g. https://hb.example.com (default: $HEARTBEATD_SERVER).",
)
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
@click.option("--no-start-ping", is_flag=True, help="Send no /start before the job.")
@click.option("--no-output", is_flag=True, help="Send no output with the pings.")
@click.option(
    "--on-success",
    type=_ACTIONS,
    default="exit-code",
    show_default=True,
    help="The ping a job that exits 0 sends.",
)
@click.option(
    "--on-nonzero-exit",
    type=_ACTIONS,
    default="exit-code",
    show_default=True,
    help="The ping a job that exits non-zero sends.",
)
@click.option(
    "--on-exec-fail",
    type=_ACTIONS,
    default="fail",
    show_default=True,
    help="The ping sent when the command cannot be run at all.",
)
@click.option("--every", metavar="DURATION", help="Run the job again every DURATION, e.g. 5m.")
@click.option(
    "--header", "headers", multiple=True, metavar="NAME:VALUE", help="Send with every ping."
)
@click.option("--quiet", is_flag=True, help="Do not copy the job's stdout to ours.")
@click.option("--silent", is_flag=True, help="Copy neither stdout nor stderr; print no warnings.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_command(
    ctx: click.Context,
    url: str | None,
    slug: str | None,
    server: str | None,
    ping_key: str | None,
    timeout: float,
    ping_timeout: float,
    no_start_ping: bool,
    no_output: bool,
    on_success: str,
    on_nonzero_exit: str,
    on_exec_fail: str,
    every: str | None,
    headers: tuple[str, ...],
    quiet: bool,
    silent: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND, reporting its start, exit status and output to heartbeatd.

    Use it as: heartbeatd exec --url URL -- COMMAND ARGS..., or
    heartbeatd exec MONITOR -- COMMAND ARGS... where MONITOR is a ping URL or
    a slug (with --server or $HEARTBEATD_SERVER).
    """
    after = ctx.meta.get(_AFTER_DASHES)
    if after is not None and len(command) > after:
        before, command = command[: len(command) - after], command[len(command) - after :]
        if len(before) > 1:
            raise click.UsageError(f"one monitor before --, got {' '.join(before)!r}")
        if url is not None or slug is not None:
            raise click.UsageError("give the monitor once: as MONITOR, --url or --slug")
        if before[0].startswith(("http://", "https://")):
            url = before[0]
        else:
            slug = before[0]
    if not command:
        raise click.UsageError("no command given: put it after --")
    from_env = ctx.get_parameter_source("server") is click.core.ParameterSource.ENVIRONMENT
    try:
        target = wrap.build_url(
            url=url,
            slug=slug,
            # $HEARTBEATD_SERVER is only a default for a slug, never beside --url.
            server=server if slug is not None or not from_env else None,
            ping_key=ping_key,
            env_url=os.environ.get("HEARTBEATD_URL"),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    opts = wrap.ExecOptions(
        url=target,
        timeout=timeout,
        ping_timeout=ping_timeout,
        start_ping=not no_start_ping,
        send_output=not no_output,
        on_success=wrap.Action(on_success),
        on_nonzero_exit=wrap.Action(on_nonzero_exit),
        on_exec_fail=wrap.Action(on_exec_fail),
        headers=tuple(_header(h) for h in headers),
        copy_stdout=not (quiet or silent),
        copy_stderr=not silent,
        warnings=not silent,
        every=_every(every),
    )
    sys.exit(wrap.main(list(command), opts, while_running=_forwarding_signals))
