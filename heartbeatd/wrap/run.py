"""Running the job (once, or again and again with --every) and reporting it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager

from heartbeatd import pingurl
from heartbeatd.clock import Clock
from heartbeatd.model import PingKind
from heartbeatd.wrap.options import Action, ExecOptions
from heartbeatd.wrap.output import Output, OutputTail, Pump, Sink
from heartbeatd.wrap.pinger import Pinger, body_limit

PREFIX = "heartbeatd exec"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# After the job exited, what is left in its pipes is at most a pipe's capacity
# (64 KiB by default, 1 MiB at most unless raised); a background process that
# keeps printing must not keep us reading forever.
FINAL_READS = 64
# A background process the job started may hold its stdout open long after the
# job exited; wait this long for it, then report the job anyway.
DRAIN_GRACE = 2.0


class Job:
    """The running command, as its caller sees it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        # Told of each forwarded signal: with --every, it ends the loop.
        self.on_forward: Callable[[int], None] = lambda sig: None

    def forward(self, sig: int) -> None:
        """Pass a signal we received on to the job; we go on waiting for its exit status."""
        self.on_forward(sig)
        # The job may have exited a moment ago; its exit status is on its way.
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(sig)


# Entered once the job has started and left once it has exited: where the CLI
# routes FORWARDED_SIGNALS to `Job.forward` (signal handlers are the CLI's).
WhileRunning = Callable[[Job], AbstractContextManager[None]]


def _do_nothing(job: Job) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


async def run_wrapped(
    argv: list[str],
    opts: ExecOptions,
    clock: Clock,
    *,
    stdout: Output | None = None,
    stderr: Output | None = None,
    while_running: WhileRunning = _do_nothing,
) -> int:
    """Run `argv` under the monitor at `opts.url`; the exit code to exit with.

    `stdout`/`stderr` receive the job's output (file descriptors or file
    objects; default: ours) and our warnings go to `stderr`. `while_running`
    wraps the job's lifetime, e.g. to forward signals to it.

    With `opts.every`, the job runs again every that many seconds from the
    start of the last run (a run that overran starts the next at once,
    skipping the ticks it missed) until a signal forwarded to it (SIGTERM,
    SIGINT, SIGHUP) ends a run; the exit code is then that run's.
    """
    if not argv:
        raise ValueError("no command given: put it after --")
    err = Sink(stderr if stderr is not None else sys.stderr)
    warned: set[str] = set()

    def warn(message: str) -> None:
        # The same failure twice (start and finish ping) is one line of news.
        if opts.warnings and message not in warned:
            warned.add(message)
            err.write(f"{PREFIX}: {message}\n".encode())

    out = Sink(
        stdout if stdout is not None else sys.stdout,
        on_error=lambda exc: warn(f"stopped copying the job's stdout: {exc.strerror or exc}"),
    )
    # --quiet and --silent: what is not shown is still captured for the ping.
    job_out = out if opts.copy_stdout else Sink(None)
    job_err = err if opts.copy_stderr else Sink(None)
    pinger = Pinger(opts, clock, warn)
    signalled: list[int] = []

    def watched(job: Job) -> AbstractContextManager[None]:
        job.on_forward = signalled.append
        return while_running(job)

    while True:
        started = clock.monotonic()
        code = await _run_once(argv, opts, clock, pinger, job_out, job_err, err, watched)
        if opts.every is None or signalled:
            return code
        # A run that took longer than --every starts the next one at once.
        elapsed = clock.monotonic() - started
        if elapsed < opts.every:
            await clock.sleep(opts.every - elapsed)
        pinger.new_run()


async def _run_once(
    argv: list[str],
    opts: ExecOptions,
    clock: Clock,
    pinger: Pinger,
    out: Sink,
    err: Sink,
    our_err: Sink,
    while_running: WhileRunning,
) -> int:
    headers = await pinger.send(PingKind.START) if opts.start_ping else None
    limit = body_limit(headers, opts.tail_default) if opts.send_output else 0
    tail = OutputTail(limit)
    try:
        code = await _run_job(argv, out, err, tail, clock, while_running)
    except OSError as exc:
        # The codes a shell uses: 127 not found, 126 found but not runnable.
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        message = f"{PREFIX}: cannot run {argv[0]!r}: {exc.strerror or exc}"
        # Said even when --silent: the job never ran, and nothing else will say so.
        our_err.write(f"{message}\n".encode())
        body = message.encode() if opts.send_output else None
        await _finish(pinger, opts.on_exec_fail, code, body)
        return code
    action = opts.on_success if code == 0 else opts.on_nonzero_exit
    await _finish(pinger, action, code, tail.value() if opts.send_output else None)
    return code


async def _finish(pinger: Pinger, action: Action, code: int, body: bytes | None) -> None:
    if action is Action.EXIT_CODE:
        await pinger.send(pingurl.exit_kind(code), code, body)
    elif action is Action.SUCCESS:
        await pinger.send(PingKind.SUCCESS, body=body)
    elif action is Action.FAIL:
        await pinger.send(PingKind.FAIL, body=body)
    else:
        await pinger.send(PingKind.LOG, body=body)


async def _run_job(
    argv: list[str],
    out: Sink,
    err: Sink,
    tail: OutputTail,
    clock: Clock,
    while_running: WhileRunning,
) -> int:
    """Run the job to its end, copying its output; its exit status (128+s if killed by s)."""
    # Our own pipes rather than asyncio's PIPE: after the job exits we can read
    # what is left without blocking, even if a background process holds them.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=out_w, stderr=err_w)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    pumps = [Pump(out_r, out, tail), Pump(err_r, err, tail)]
    try:
        with while_running(Job(proc)):
            returncode = await proc.wait()
        await _finish_reading(pumps, clock)
    finally:
        for pump in pumps:
            pump.close()
    return 128 - returncode if returncode < 0 else returncode


async def _finish_reading(pumps: list[Pump], clock: Clock) -> None:
    # Everything the job wrote before it exited is in the pipes now.
    for pump in pumps:
        pump.drain(FINAL_READS)
    pending = [pump.done for pump in pumps if not pump.done.done()]
    if not pending:
        return
    # Someone else (a process the job left running) still holds a pipe open.
    await clock.wait(pending, DRAIN_GRACE)


def main(argv: list[str], opts: ExecOptions, while_running: WhileRunning = _do_nothing) -> int:
    """Entry point for the CLI: run the job with the real clock; the exit code."""
    return asyncio.run(run_wrapped(argv, opts, Clock(), while_running=while_running))
