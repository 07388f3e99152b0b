"""The `command` channel: run a program per alert, without a shell.

The alert comes as HEARTBEATD_* environment variables and as the JSON of
DESIGN §5 on stdin. Exit status 0 means delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from heartbeatd.alerts import Alert
from heartbeatd.channels.base import DeliveryError, ParseEnv, SendContext
from heartbeatd.tables import Table
from heartbeatd.times import isoformat

# How a program is started: asyncio.create_subprocess_exec's signature.
Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]

# Enough of the last stderr line to say what went wrong, not a log dump.
STDERR_CHARS = 200


@dataclass(frozen=True)
class Options:
    # argv; command[0] is an absolute path or a name looked up on PATH.
    command: tuple[str, ...]
    timeout: float = 30.0

    def __repr__(self) -> str:
        # Arguments may carry tokens ("--token", "…"): show the program only.
        more = f", …{len(self.command) - 1} more" if len(self.command) > 1 else ""
        program = repr(self.command[0]) if self.command else ""
        return f"Options(command=({program}{more}), timeout={self.timeout!r})"


def parse_options(table: Table, env: ParseEnv) -> Options:
    argv = _argv(table)
    timeout = table.duration("timeout", 30)
    return Options(command=argv, timeout=float(timeout))


def render(alert: Alert, opts: Options) -> tuple[dict[str, str], bytes]:
    """The environment variables (added to the daemon's own) and the stdin bytes."""
    env = {
        "HEARTBEATD_EVENT": alert.event.value,
        "HEARTBEATD_MONITOR": alert.monitor,
        "HEARTBEATD_NAME": alert.name,
        "HEARTBEATD_STATUS": alert.status.value,
        "HEARTBEATD_REASON": alert.reason.value,
        "HEARTBEATD_AT": isoformat(alert.at) or "",
        "HEARTBEATD_LAST_PING": isoformat(alert.last_ping) or "",
        "HEARTBEATD_EXPECTED_AT": isoformat(alert.expected_at) or "",
        "HEARTBEATD_DOWN_AT": isoformat(alert.down_at) or "",
        "HEARTBEATD_URL": alert.url,
    }
    return env, json.dumps(alert.to_json()).encode("utf-8")


async def send(
    alert: Alert,
    opts: Options,
    ctx: SendContext,
    *,
    spawn: Spawn = asyncio.create_subprocess_exec,
) -> None:
    """Run the command for `alert`; `spawn` starts it (the outbox uses the default)."""
    # Only the program is ever named: later arguments may hold tokens.
    where = f"command {opts.command[0]}"
    extra, stdin = render(alert, opts)
    try:
        proc = await spawn(
            *opts.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **extra},
            # Its own process group, so a timeout kills the children of a script too.
            start_new_session=True,
        )
    except FileNotFoundError:
        raise DeliveryError(f"{where}: not found", permanent=True) from None
    except PermissionError:
        raise DeliveryError(
            f"{where}: not executable (permission denied)", permanent=True
        ) from None
    except OSError as exc:
        raise DeliveryError(f"{where}: cannot start ({exc.strerror})", permanent=False) from None
    try:
        stderr = await ctx.clock.wait_for(_talk(proc, stdin), opts.timeout)
    except asyncio.TimeoutError:
        _kill(proc)
        await proc.wait()
        message = f"{where}: timed out after {opts.timeout:g}s, killed"
        raise DeliveryError(message, permanent=False) from None
    except BaseException:
        # Cancelled (the daemon is stopping): leave no process behind.
        _kill(proc)
        raise
    if proc.returncode == 0:
        return
    raise DeliveryError(f"{where}: {_outcome(proc.returncode)}{_last_line(stderr)}")


async def _talk(proc: asyncio.subprocess.Process, data: bytes) -> bytes:
    """Write the alert to the command's stdin while reading its stderr; the
    exit status decides, so a command that ignores its input is fine."""
    feed = asyncio.ensure_future(_feed(proc, data))
    assert proc.stderr is not None
    try:
        stderr = await proc.stderr.read()
        await proc.wait()
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
    return stderr


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command exited, or closed its stdin, without reading it
    except RuntimeError:
        pass  # the same under uvloop, which reports a closed pipe this way


def _argv(table: Table) -> tuple[str, ...]:
    value = table.raw("command")
    if value is None:
        return ()
    hint = 'like ["/usr/local/bin/notify", "--urgent"] (it runs without a shell)'
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        table.error("command", f"expected a list of strings {hint}")
        return ()
    if not value or not value[0]:
        table.error("command", f"needs at least the program to run, {hint}")
        return ()
    program = value[0]
    if "/" in program and not os.path.isabs(program):
        table.error(
            "command",
            f'"{program}" must be an absolute path or a program name looked up on PATH',
        )
        return ()
    return tuple(value)


def _kill(proc: asyncio.subprocess.Process) -> None:
    # ProcessLookupError: it ended on its own meanwhile, nothing to kill.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _outcome(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _last_line(stderr: bytes | None) -> str:
    lines = [line.strip() for line in (stderr or b"").decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    return ": " + lines[-1][:STDERR_CHARS]
