"""`heartbeatd exec`: run a job and report its start, output and exit status.

The wrapper sends `<url>/start?rid=…`, runs the command (no shell), copies its
stdout and stderr through as they arrive while keeping the last N bytes of the
combined output, and then POSTs that tail to `<url>/<exit status>?rid=…`.

Pings never block or fail the job: each ping is retried a bounded number of
times within `ping_timeout` seconds in all, and a ping that still fails costs
one warning line on stderr, never the job's exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from heartbeatd import __version__, pingurl
from heartbeatd.channels.base import describe_failure
from heartbeatd.clock import Clock
from heartbeatd.model import PingKind

PREFIX = "heartbeatd exec"
DEFAULT_TAIL = 10000
# Seconds before the first retry of a ping; doubles after each attempt (1, 2, 4, …).
FIRST_BACKOFF = 1.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
READ_SIZE = 65536
# Reads per readiness callback: a job that prints without pause must not
# starve the loop (signal forwarding runs on it too).
READS_PER_WAKEUP = 16
# After the job exited, what is left in its pipes is at most a pipe's capacity
# (64 KiB by default, 1 MiB at most unless raised); a background process that
# keeps printing must not keep us reading forever.
FINAL_READS = 64
# A background process the job started may hold its stdout open long after the
# job exited; wait this long for it, then report the job anyway.
DRAIN_GRACE = 2.0

Output = IO[Any] | int


class Action(str, Enum):
    """The ping an ending sends, as runitor's --on-* options name them."""

    # A plain success ping, whatever the exit status.
    SUCCESS = "success"
    # /fail: down at once.
    FAIL = "fail"
    # /log: recorded with its output, no change of status.
    LOG = "log"
    # /<exit status>: 0 is a success, anything else a failure.
    EXIT_CODE = "exit-code"


@dataclass(frozen=True)
class ExecOptions:
    # The monitor's ping URL, e.g. http://127.0.0.1:8080/ping/nightly-backup.
    url: str
    # Seconds one ping request may take.
    timeout: float = 10.0
    # Seconds one ping may take in all, retries and their backoff included:
    # the most the start ping can delay the job.
    ping_timeout: float = 5.0
    # Extra attempts per ping after the first, on 5xx, timeouts and connection errors.
    retries: int = 3
    # Bytes of output tail to send when the server does not say (Ping-Body-Limit).
    tail_default: int = DEFAULT_TAIL
    # Send `/start` before the job (it measures the run and arms max_runtime).
    start_ping: bool = True
    # Send the output's tail with the finishing ping.
    send_output: bool = True
    # Which ping each ending sends (see Action): a success, a non-zero exit
    # status, and a command that could not be run at all.
    on_success: Action = Action.EXIT_CODE
    on_nonzero_exit: Action = Action.EXIT_CODE
    on_exec_fail: Action = Action.FAIL
    # Extra request headers for every ping: (name, value).
    headers: tuple[tuple[str, str], ...] = ()
    # Copy the job's stdout / stderr to ours (the tail is captured either way).
    copy_stdout: bool = True
    copy_stderr: bool = True
    # Print our own warnings (an unreachable server) on stderr.
    warnings: bool = True
    # Seconds from one run's start to the next (--every); None runs it once.
    every: float | None = None


def build_url(
    *,
    url: str | None,
    slug: str | None,
    server: str | None,
    ping_key: str | None,
    env_url: str | None = None,
) -> str:
    """The monitor's ping URL from `--url`, or from `--slug`, `--server` and `--ping-key`.

    `env_url` (HEARTBEATD_URL) is used only when no option names the monitor, so
    options given on the command line win over the environment.
    """
    if url is not None and (slug is not None or server is not None):
        raise ValueError("give either --url or --slug with --server, not both")
    if url is None and slug is None and server is None:
        url = env_url
    if url is not None:
        if ping_key is not None:
            raise ValueError(
                "--ping-key goes with --slug and --server; with --url, put it in the URL"
            )
        return _check_http_url(url, "--url")
    if slug is None or server is None:
        if slug is None and server is None:
            raise ValueError(
                "no monitor given: use --url URL (or HEARTBEATD_URL),"
                " or --slug SLUG with --server URL"
            )
        raise ValueError("--slug and --server go together; give both")
    if not slug or "/" in slug:
        raise ValueError(f"--slug must be a monitor's slug, got {slug!r}")
    base = _check_http_url(server, "--server")
    # An empty --ping-key is no key, as in the environment of a cron job.
    target = pingurl.PingTarget(pingurl.By.SLUG, slug, ping_key=ping_key or None)
    return pingurl.build(base, target)


def _check_http_url(url: str, option: str) -> str:
    parts = urlsplit(url.strip())
    # Name only the scheme: the rest of a ping URL may hold a ping key.
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"{option} must start with http:// or https://, got scheme {parts.scheme!r}"
        )
    if not parts.hostname:
        raise ValueError(f"{option} has no host name")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


class OutputTail:
    """The last `limit` bytes of the job's output, in bounded memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        if self.limit <= 0:
            return
        self._buf += chunk[-self.limit :]
        excess = len(self._buf) - self.limit
        if excess > 0:
            # Deleting from the front of a bytearray is cheap (no copy of the rest).
            del self._buf[:excess]

    def value(self) -> bytes:
        return bytes(self._buf)


class _Sink:
    """Where copied output goes: a file descriptor or a binary (or text) file object."""

    def __init__(
        self, target: Output | None, on_error: Callable[[OSError], None] | None = None
    ) -> None:
        # None: show nothing (--quiet, --silent).
        if target is not None and not isinstance(target, int):
            target = getattr(target, "buffer", target)
        self._target = target
        self._on_error = on_error
        self._broken = False

    def write(self, data: bytes) -> None:
        if self._broken or self._target is None:
            return
        try:
            if isinstance(self._target, int):
                view = memoryview(data)
                while view:
                    view = view[os.write(self._target, view) :]
            else:
                self._target.write(data)
                self._target.flush()
        except OSError as exc:
            # A closed stdout (`| head`) must not kill the job or lose its tail:
            # stop copying to it and keep capturing.
            self._broken = True
            if self._on_error is not None:
                self._on_error(exc)


class _Pump:
    """Copies one of the job's output pipes to a sink and into the tail."""

    def __init__(self, fd: int, sink: _Sink, tail: OutputTail) -> None:
        self._fd = fd
        self._sink = sink
        self._tail = tail
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self.drain, READS_PER_WAKEUP)

    def drain(self, max_reads: int) -> None:
        for _ in range(max_reads):
            if self.done.done():
                return
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return
            if not chunk:
                self.close()
                return
            self._sink.write(chunk)
            self._tail.feed(chunk)

    def close(self) -> None:
        if not self.done.done():
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self.done.set_result(None)


class _Pinger:
    """Sends the pings of one run (one rid) with bounded retries."""

    def __init__(self, opts: ExecOptions, clock: Clock, warn: Callable[[str], None]) -> None:
        self._opts = opts
        self._clock = clock
        self._warn = warn
        self.rid = str(uuid.uuid4())
        parts = urlsplit(opts.url)
        self._host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self._shown_url = _hide_ping_key(opts.url)

    def new_run(self) -> None:
        """The next run (--every) is told apart from the last by its own rid."""
        self.rid = str(uuid.uuid4())

    async def send(
        self, kind: PingKind, exit_status: int | None = None, body: bytes | None = None
    ) -> Mapping[str, str] | None:
        """Send one ping; its response headers, or None (and a warning) if it failed."""
        url = pingurl.extend(self._opts.url, kind, exit_status, rid=self.rid)
        deadline = self._clock.monotonic() + self._opts.ping_timeout
        reason = f"timed out after {self._opts.ping_timeout:g}s"
        for attempt in range(self._opts.retries + 1):
            if attempt:
                backoff = FIRST_BACKOFF * 2 ** (attempt - 1)
                if self._clock.monotonic() + backoff >= deadline:
                    break
                await self._clock.sleep(backoff)
            left = min(self._opts.timeout, deadline - self._clock.monotonic())
            if left <= 0:
                break
            try:
                # Timed on the clock, not by aiohttp (which reads the loop's
                # time): the budget and the per-request limit are one clock.
                status, phrase, headers = await self._clock.wait_for(self._attempt(url, body), left)
            except asyncio.TimeoutError:
                reason = f"timed out after {min(self._opts.timeout, self._opts.ping_timeout):g}s"
                continue
            except aiohttp.ClientError as exc:
                reason = describe_failure(exc)
                continue
            if 200 <= status < 300:
                return headers
            if status == 404:
                # Reached, but it knows no such monitor: a wrong URL or slug.
                self._warn(f"unknown monitor {self._shown_url}")
                return None
            reason = f"HTTP {status} {phrase}".rstrip()
            if status < 500:
                # A 400 will not change by asking again.
                break
        self._warn(f"could not reach {self._host}: {reason}")
        return None

    async def _attempt(self, url: str, body: bytes | None) -> tuple[int, str, Mapping[str, str]]:
        # The clock bounds each attempt (see send); no second timer here.
        timeout = aiohttp.ClientTimeout(total=None)
        headers = {"User-Agent": f"heartbeatd-exec/{__version__}", **dict(self._opts.headers)}
        if body is not None:
            headers["Content-Type"] = "text/plain"
        # A fresh session per attempt: a job may run for hours, and a kept-alive
        # connection from the start ping would be stale by the time it ends.
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            method = "GET" if body is None else "POST"
            async with session.request(method, url, data=body) as resp:
                await resp.read()
                return resp.status, resp.reason or "", dict(resp.headers)


def _hide_ping_key(url: str) -> str:
    """The monitor's URL for a message: /ping/<key>/<slug> without the key."""
    parts = urlsplit(url)
    before, ping, rest = parts.path.partition("/ping/")
    segments = rest.split("/")
    if not ping or len(segments) < 2:
        return url
    path = before + ping + "/".join(["<ping_key>"] * (len(segments) - 1) + segments[-1:])
    return urlunsplit(parts._replace(path=path))


def _body_limit(headers: Mapping[str, str] | None, default: int) -> int:
    raw = headers.get("Ping-Body-Limit") if headers is not None else None
    try:
        limit = int(raw) if raw is not None else -1
    except ValueError:
        return default
    return limit if limit >= 0 else default


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
    err = _Sink(stderr if stderr is not None else sys.stderr)
    warned: set[str] = set()

    def warn(message: str) -> None:
        # The same failure twice (start and finish ping) is one line of news.
        if opts.warnings and message not in warned:
            warned.add(message)
            err.write(f"{PREFIX}: {message}\n".encode())

    out = _Sink(
        stdout if stdout is not None else sys.stdout,
        on_error=lambda exc: warn(f"stopped copying the job's stdout: {exc.strerror or exc}"),
    )
    # --quiet and --silent: what is not shown is still captured for the ping.
    job_out = out if opts.copy_stdout else _Sink(None)
    job_err = err if opts.copy_stderr else _Sink(None)
    pinger = _Pinger(opts, clock, warn)
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
    pinger: _Pinger,
    out: _Sink,
    err: _Sink,
    our_err: _Sink,
    while_running: WhileRunning,
) -> int:
    headers = await pinger.send(PingKind.START) if opts.start_ping else None
    limit = _body_limit(headers, opts.tail_default) if opts.send_output else 0
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


async def _finish(pinger: _Pinger, action: Action, code: int, body: bytes | None) -> None:
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
    out: _Sink,
    err: _Sink,
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
    pumps = [_Pump(out_r, out, tail), _Pump(err_r, err, tail)]
    try:
        with while_running(Job(proc)):
            returncode = await proc.wait()
        await _finish_reading(pumps, clock)
    finally:
        for pump in pumps:
            pump.close()
    return 128 - returncode if returncode < 0 else returncode


async def _finish_reading(pumps: list[_Pump], clock: Clock) -> None:
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
