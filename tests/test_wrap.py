"""`heartbeatd exec`: real processes against a real local ping server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from heartbeatd.clock import Clock, FakeClock
from heartbeatd.wrap import (
    FORWARDED_SIGNALS,
    Action,
    ExecOptions,
    Job,
    OutputTail,
    build_url,
    run_wrapped,
)
from tests.harness import advance_until_done
from tests.samples import NOW

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


class InstantClock(Clock):
    """A clock whose sleeps and timeouts end at once; it remembers how long it
    was asked to wait."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def monotonic(self) -> float:
        # Its sleeps pass time, as far as deadlines go.
        return super().monotonic() + sum(self.slept)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)

    async def wait(self, fs, timeout, return_when=asyncio.ALL_COMPLETED):
        self.slept.append(timeout)
        return await super().wait(fs, 0, return_when)


@dataclass
class Recorded:
    method: str
    slug: str
    kind: str
    rid: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PingServer:
    """A ping endpoint that records every request and answers as scripted."""

    url: str = ""
    body_limit: str | None = "10000"
    monitors: set[str] = field(default_factory=lambda: {"backup"})
    # Statuses to answer before answering normally, one per request.
    script: deque[int] = field(default_factory=deque)
    # Requests to leave unanswered (the client times out), one per request.
    hang: int = 0
    pings: list[Recorded] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        slug = request.match_info["slug"]
        self.pings.append(
            Recorded(
                request.method,
                slug,
                # A plain success ping has no action segment.
                request.match_info.get("kind", "success"),
                request.query.get("rid", ""),
                body,
                request.headers.get("Content-Type", ""),
                dict(request.headers),
            )
        )
        if self.hang:
            self.hang -= 1
            await asyncio.Event().wait()
        headers = {"Ping-Body-Limit": self.body_limit} if self.body_limit is not None else {}
        if self.script:
            return web.Response(status=self.script.popleft(), text="no", headers=headers)
        if slug not in self.monitors:
            return web.Response(status=404, text="not found", headers=headers)
        return web.Response(text="OK", headers=headers)

    def kinds(self) -> list[str]:
        return [p.kind for p in self.pings]


@pytest.fixture
async def ping_server(aiohttp_server) -> PingServer:
    state = PingServer()
    app = web.Application()
    app.router.add_route("*", "/ping/{slug}", state.handle)
    app.router.add_route("*", "/ping/{slug}/{kind}", state.handle)
    server = await aiohttp_server(app)
    state.url = str(server.make_url("/ping/backup"))
    return state


@pytest.fixture
def clock() -> InstantClock:
    return InstantClock()


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: bytes


async def wrap(argv: list[str], url: str, clock: Clock, **opts) -> Run:
    out, err = io.BytesIO(), io.BytesIO()
    code = await run_wrapped(argv, ExecOptions(url=url, **opts), clock, stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_it_pings_start_then_success_with_the_output(ping_server, clock):
    run = await wrap(["sh", "-c", "echo hello; exit 0"], ping_server.url, clock)

    assert run.code == 0
    assert run.stdout == b"hello\n"
    start, finish = ping_server.pings
    assert (start.method, start.kind, start.body) == ("GET", "start", b"")
    assert (finish.method, finish.kind, finish.body) == ("POST", "0", b"hello\n")
    assert finish.content_type.startswith("text/plain")
    assert start.rid == finish.rid == str(uuid.UUID(start.rid))


async def test_it_uses_a_fresh_rid_for_each_run(ping_server, clock):
    await wrap(["true"], ping_server.url, clock)
    await wrap(["true"], ping_server.url, clock)

    assert len({p.rid for p in ping_server.pings}) == 2


async def test_it_reports_the_exit_status_and_exits_with_it(ping_server, clock):
    run = await wrap(["sh", "-c", "echo oops >&2; exit 3"], ping_server.url, clock)

    assert run.code == 3
    assert run.stderr == b"oops\n"
    assert ping_server.kinds() == ["start", "3"]
    assert ping_server.pings[1].body == b"oops\n"


async def test_it_passes_both_streams_through_untouched(ping_server, clock):
    script = (
        "import sys\n"
        "sys.stdout.buffer.write(b'out1\\n\\xff\\x00'); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(b'err1\\n'); sys.stderr.flush()\n"
        "sys.stdout.buffer.write(b'out2\\n'); sys.stdout.flush()\n"
    )
    run = await wrap([PY, "-c", script], ping_server.url, clock)

    assert run.stdout == b"out1\n\xff\x00out2\n"
    assert run.stderr == b"err1\n"
    # The tail holds both streams, each in order; where stderr's chunk lands
    # among stdout's is whatever arrived first.
    body = ping_server.pings[1].body
    assert body in (
        b"err1\nout1\n\xff\x00out2\n",
        b"out1\n\xff\x00err1\nout2\n",
        b"out1\n\xff\x00out2\nerr1\n",
    )


async def test_it_writes_to_file_descriptors(ping_server, clock, tmp_path):
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        code = await run_wrapped(
            ["sh", "-c", "echo to-out; echo to-err >&2"],
            ExecOptions(url=ping_server.url),
            clock,
            stdout=out.fileno(),
            stderr=err.fileno(),
        )

    assert code == 0
    assert out_path.read_bytes() == b"to-out\n"
    assert err_path.read_bytes() == b"to-err\n"


async def test_it_keeps_capturing_when_its_stdout_is_closed(ping_server, clock):
    read_end, write_end = os.pipe()
    os.close(read_end)
    err = io.BytesIO()
    try:
        code = await run_wrapped(
            ["sh", "-c", "echo one; echo two"],
            ExecOptions(url=ping_server.url),
            clock,
            stdout=write_end,
            stderr=err,
        )
    finally:
        os.close(write_end)

    assert code == 0
    assert err.getvalue() == b"heartbeatd exec: stopped copying the job's stdout: Broken pipe\n"
    assert ping_server.pings[1].body == b"one\ntwo\n"


async def test_it_sends_only_the_last_bytes_the_server_accepts(ping_server, clock):
    ping_server.body_limit = "100"
    script = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096)"
    run = await wrap([PY, "-c", script], ping_server.url, clock)

    everything = bytes(range(256)) * 4096
    assert run.stdout == everything
    assert ping_server.pings[1].body == everything[-100:]


@pytest.mark.parametrize(
    "header, expected",
    [(None, 10000), ("garbage", 10000), ("-5", 10000), ("0", 0), ("20000", 20000)],
    ids=["absent", "invalid", "negative", "zero", "larger"],
)
async def test_it_falls_back_to_the_default_tail_without_a_usable_limit(
    ping_server, clock, header, expected
):
    ping_server.body_limit = header
    script = "import sys; sys.stdout.write('x' * 30000)"
    await wrap([PY, "-c", script], ping_server.url, clock)

    assert len(ping_server.pings[1].body) == expected


@pytest.mark.parametrize(
    "limit, chunks, expected",
    [
        (5, [b"abc"], b"abc"),
        (5, [b"abc", b"defg"], b"cdefg"),
        (5, [b"0123456789"], b"56789"),
        (5, [b"x"] * 1000 + [b"end"], b"xxend"),
        (0, [b"anything"], b""),
    ],
    ids=["short", "across-chunks", "one-big-chunk", "many-small", "zero"],
)
def test_it_keeps_only_the_last_n_bytes(limit, chunks, expected):
    tail = OutputTail(limit)
    for chunk in chunks:
        tail.feed(chunk)

    assert tail.value() == expected


async def test_it_reports_a_missing_command_as_127(ping_server, clock):
    run = await wrap(["no-such-command-hb"], ping_server.url, clock)

    message = b"heartbeatd exec: cannot run 'no-such-command-hb': No such file or directory"
    assert run.code == 127
    assert run.stderr == message + b"\n"
    assert ping_server.kinds() == ["start", "fail"]
    assert ping_server.pings[1].body == message
    assert ping_server.pings[0].rid == ping_server.pings[1].rid


async def test_it_reports_a_file_it_cannot_execute_as_126(ping_server, clock, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)

    run = await wrap([str(script)], ping_server.url, clock)

    message = f"heartbeatd exec: cannot run '{script}': Permission denied".encode()
    assert run.code == 126
    assert run.stderr == message + b"\n"
    assert ping_server.kinds() == ["start", "fail"]
    assert ping_server.pings[1].body == message


async def test_it_retries_a_ping_on_server_errors_with_backoff(ping_server, clock):
    ping_server.script.extend([503, 503])
    run = await wrap(["true"], ping_server.url, clock)

    assert run.code == 0
    assert run.stderr == b""
    assert ping_server.kinds() == ["start", "start", "start", "0"]
    assert len({p.rid for p in ping_server.pings}) == 1
    assert clock.slept == [1.0, 2.0]


async def test_it_retries_a_ping_that_times_out_on_the_clock(ping_server):
    ping_server.hang = 1
    clock = FakeClock(NOW)
    # 30 s per attempt on the clock; the test moves it, so no real wait.
    task = asyncio.ensure_future(
        wrap(["true"], ping_server.url, clock, timeout=30, ping_timeout=60)
    )

    await advance_until_done(clock, task, step=0.5)

    run = task.result()
    assert (run.code, run.stderr) == (0, b"")
    assert ping_server.kinds() == ["start", "start", "0"]


async def test_it_gives_up_on_a_server_error_after_the_retries(ping_server, clock):
    ping_server.script.extend([500] * 3)
    run = await wrap(["true"], ping_server.url, clock)

    host = ping_server.url.split("/")[2]
    assert run.code == 0
    assert (
        run.stderr
        == f"heartbeatd exec: could not reach {host}: HTTP 500 Internal Server Error\n".encode()
    )
    # 1 + 2 s of backoff; the next 4 s would pass the 5 s --ping-timeout.
    assert ping_server.kinds() == ["start"] * 3 + ["0"]
    assert clock.slept == [1.0, 2.0]


async def test_it_runs_the_job_when_the_server_is_down(clock):
    port = closed_port()
    run = await wrap(
        ["sh", "-c", "echo ran; exit 5"], f"http://127.0.0.1:{port}/ping/backup", clock
    )

    assert run.code == 5
    assert run.stdout == b"ran\n"
    assert (
        run.stderr
        == f"heartbeatd exec: could not reach 127.0.0.1:{port}: connection refused\n".encode()
    )
    # Start and finish ping were each tried 3 times, within the 5 s --ping-timeout.
    assert clock.slept == [1.0, 2.0] * 2


async def test_all_attempts_of_a_ping_fit_in_the_ping_timeout(ping_server, clock):
    ping_server.script.extend([500] * 8)
    run = await wrap(["true"], ping_server.url, clock, ping_timeout=2)

    assert run.code == 0
    assert ping_server.kinds() == ["start", "start", "0", "0"]
    assert clock.slept == [1.0, 1.0]


async def test_it_does_not_retry_an_unknown_monitor_and_names_it(ping_server, clock):
    url = ping_server.url.replace("/ping/backup", "/ping/nope")
    run = await wrap(["sh", "-c", "exit 0"], url, clock)

    assert run.code == 0
    assert run.stderr == f"heartbeatd exec: unknown monitor {url}\n".encode()
    assert ping_server.kinds() == ["start", "0"]
    assert clock.slept == []


async def test_an_unknown_monitor_message_hides_the_ping_key(ping_server, clock):
    url = ping_server.url.replace("/ping/backup", "/ping/secret-key-1234/nope")
    run = await wrap(["true"], url, clock)

    shown = url.replace("secret-key-1234", "<ping_key>")
    assert run.stderr == f"heartbeatd exec: unknown monitor {shown}\n".encode()


async def test_it_reports_a_job_killed_by_a_signal_as_128_plus_the_signal(ping_server, clock):
    run = await wrap(["sh", "-c", "echo bye; kill -TERM $$"], ping_server.url, clock)

    assert run.code == 143
    assert ping_server.kinds() == ["start", "143"]
    assert ping_server.pings[1].body == b"bye\n"


async def test_it_does_not_wait_for_background_processes_holding_the_output(ping_server, clock):
    script = "(sleep 3; echo late) & echo main; exit 0"
    run = await asyncio.wait_for(wrap(["sh", "-c", script], ping_server.url, clock), timeout=2.5)

    assert run.code == 0
    assert run.stdout == b"main\n"
    assert ping_server.pings[1].body == b"main\n"
    assert clock.slept == [2.0]


async def test_it_keeps_a_ping_url_query_and_strips_a_trailing_slash(ping_server, clock):
    await wrap(["true"], ping_server.url + "/?create=1", clock)

    assert ping_server.kinds() == ["start", "0"]


async def start_wrapper(job: list[str], url: str, *options: str) -> asyncio.subprocess.Process:
    """`heartbeatd exec` as its own process, so that it can receive signals."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        PY, "-m", "heartbeatd", "exec", *options, "--url", url, "--", *job,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip


CATCHES_TERM = (
    "import signal, sys\n"
    "def stop(sig, frame):\n"
    "    print('got', signal.Signals(sig).name, flush=True); sys.exit(7)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "signal.signal(signal.SIGHUP, stop)\n"
    "print('ready', flush=True)\n"
    # Wait for the forwarded signal; SIGALRM ends a job that never gets one.
    "signal.alarm(30)\n"
    "signal.pause()\n"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
async def test_it_forwards_signals_to_the_job_and_waits_for_it(ping_server, sig):
    wrapper = await start_wrapper([PY, "-c", CATCHES_TERM], ping_server.url)
    assert await asyncio.wait_for(wrapper.stdout.readline(), 10) == b"ready\n"

    wrapper.send_signal(sig)

    rest = await asyncio.wait_for(wrapper.stdout.read(), 10)
    assert await wrapper.wait() == 7
    assert rest == f"got {sig.name}\n".encode()
    assert ping_server.kinds() == ["start", "7"]
    assert ping_server.pings[1].body == f"ready\ngot {sig.name}\n".encode()


async def test_it_exits_143_when_a_forwarded_sigterm_kills_the_job(ping_server):
    wait = "import signal; print('ready', flush=True); signal.alarm(30); signal.pause()"
    job = [PY, "-c", wait]
    wrapper = await start_wrapper(job, ping_server.url)
    assert await asyncio.wait_for(wrapper.stdout.readline(), 10) == b"ready\n"

    wrapper.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(wrapper.wait(), 10) == 143
    assert ping_server.kinds() == ["start", "143"]


async def test_it_lets_the_caller_forward_signals_while_the_job_runs(ping_server, clock):
    handlers = {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS}
    seen: list[str] = []

    @contextlib.contextmanager
    def while_running(job: Job) -> Iterator[None]:
        # The wrapper leaves the process's signal handlers to its caller (the CLI).
        assert {sig: signal.getsignal(sig) for sig in FORWARDED_SIGNALS} == handlers
        seen.append("running")
        job.forward(signal.SIGTERM)
        yield
        seen.append("ended")

    out, err = io.BytesIO(), io.BytesIO()
    code = await run_wrapped(
        ["sleep", "30"],
        ExecOptions(url=ping_server.url),
        clock,
        stdout=out,
        stderr=err,
        while_running=while_running,
    )

    assert code == 143
    assert seen == ["running", "ended"]
    assert ping_server.kinds() == ["start", "143"]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {"slug": "nightly-backup", "server": "http://127.0.0.1:8080"},
            "http://127.0.0.1:8080/ping/nightly-backup",
        ),
        (
            {"slug": "nightly-backup", "server": "https://hb.example.com/hb/"},
            "https://hb.example.com/hb/ping/nightly-backup",
        ),
        (
            {"slug": "nightly-backup", "server": "http://127.0.0.1:8080", "ping_key": "k3y"},
            "http://127.0.0.1:8080/ping/k3y/nightly-backup",
        ),
        (
            {"url": "https://hb.example.com/ping/nightly-backup/"},
            "https://hb.example.com/ping/nightly-backup",
        ),
        (
            {"env_url": "https://hb.example.com/ping/from-env"},
            "https://hb.example.com/ping/from-env",
        ),
        (
            {"slug": "a", "server": "http://h", "env_url": "https://hb.example.com/ping/from-env"},
            "http://h/ping/a",
        ),
    ],
    ids=["slug+server", "server-with-prefix", "slug+server+ping_key", "url", "env", "options-win"],
)
def test_it_builds_the_ping_url(kwargs, expected):
    args = {"url": None, "slug": None, "server": None, "ping_key": None, **kwargs}

    assert build_url(**args) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {},
            "no monitor given: use --url URL (or HEARTBEATD_URL), or --slug SLUG with --server URL",
        ),
        (
            {"url": "http://h/ping/a", "slug": "a", "server": "http://h"},
            "give either --url or --slug with --server, not both",
        ),
        ({"slug": "a"}, "--slug and --server go together; give both"),
        ({"server": "http://h"}, "--slug and --server go together; give both"),
        (
            {"url": "http://h/ping/a", "ping_key": "k"},
            "--ping-key goes with --slug and --server; with --url, put it in the URL",
        ),
        (
            {"url": "hb.example.com/ping/k3y/a"},
            "--url must start with http:// or https://, got scheme ''",
        ),
        (
            {"slug": "a", "server": "ftp://h"},
            "--server must start with http:// or https://, got scheme 'ftp'",
        ),
        ({"slug": "a/b", "server": "http://h"}, "--slug must be a monitor's slug, got 'a/b'"),
    ],
    ids=[
        "neither",
        "both",
        "slug-only",
        "server-only",
        "key-with-url",
        "no-scheme",
        "bad-scheme",
        "bad-slug",
    ],
)
def test_it_rejects_an_unclear_monitor(kwargs, message):
    args = {"url": None, "slug": None, "server": None, "ping_key": None, **kwargs}

    with pytest.raises(ValueError) as info:
        build_url(**args)

    assert str(info.value) == message


# -- the real command against a real server: wall-clock bounds ---------------------------


async def run_exec(*args: str, **extra_env: str) -> tuple[int, str, float, float]:
    """`heartbeatd exec ARGS` as its own process: its exit status, stderr, and
    the seconds until the job started and until the wrapper exited."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra_env}
    started = Clock().monotonic()
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "heartbeatd", "exec", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    await proc.stdout.readline()
    job_started = Clock().monotonic() - started
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, err.decode(), job_started, Clock().monotonic() - started


JOB = ["--", "sh", "-c", "echo started; exit 3"]


async def test_exec_names_an_unknown_monitor_and_exits_with_the_jobs_status(ping_server):
    url = ping_server.url.replace("/ping/backup", "/ping/nope")

    code, err, _, took = await run_exec("--url", url, *JOB)

    assert (code, err) == (3, f"heartbeatd exec: unknown monitor {url}\n")
    assert took < 5 + 2


async def baseline(ping_server) -> tuple[float, float]:
    """The same exec against a server that answers at once: Python's start-up
    and the machine's load, which the bounds below add to the ping timeout."""
    hang, ping_server.hang = ping_server.hang, 0
    code, _, job_started, took = await run_exec("--url", ping_server.url, *JOB)
    ping_server.hang = hang
    assert code == 3
    return job_started, took


# What a run may take beyond the baseline and the ping timeout: scheduling noise.
SLACK = 1.5


async def test_exec_against_a_closed_port_delays_the_job_at_most_the_ping_timeout(ping_server):
    url = f"http://127.0.0.1:{closed_port()}/ping/backup"
    base_started, base_took = await baseline(ping_server)

    code, err, job_started, took = await run_exec("--ping-timeout", "2", "--url", url, *JOB)

    assert code == 3
    assert err == f"heartbeatd exec: could not reach {url.split('/')[2]}: connection refused\n"
    assert job_started < base_started + 2 + SLACK
    assert took < base_took + 2 * 2 + SLACK


async def test_exec_against_a_server_that_never_answers_gives_up_at_the_ping_timeout(
    ping_server,
):
    base_started, base_took = await baseline(ping_server)
    ping_server.hang = 100

    code, err, job_started, took = await run_exec(
        "--ping-timeout", "1", "--url", ping_server.url, *JOB
    )

    host = ping_server.url.split("/")[2]
    assert code == 3
    assert err == f"heartbeatd exec: could not reach {host}: timed out after 1s\n"
    assert job_started < base_started + 1 + SLACK
    assert took < base_took + 2 * 1 + SLACK


# -- runitor's options: which pings, what they carry, what is shown, loops ----------


async def test_it_sends_no_start_ping_when_told(ping_server, clock):
    run = await wrap(["sh", "-c", "echo hi"], ping_server.url, clock, start_ping=False)

    assert run.code == 0
    assert ping_server.kinds() == ["0"]
    # Without the start ping's answer, the tail is the default size.
    assert ping_server.pings[0].body == b"hi\n"


async def test_it_sends_no_output_when_told(ping_server, clock):
    run = await wrap(["sh", "-c", "echo secret; exit 2"], ping_server.url, clock, send_output=False)

    assert run.stdout == b"secret\n"
    finish = ping_server.pings[1]
    assert (finish.method, finish.kind, finish.body) == ("GET", "2", b"")


@pytest.mark.parametrize(
    "script, options, kind",
    [
        ("exit 0", {}, "0"),
        ("exit 0", {"on_success": Action.SUCCESS}, "success"),
        ("exit 0", {"on_success": Action.LOG}, "log"),
        ("exit 0", {"on_success": Action.FAIL}, "fail"),
        ("exit 3", {}, "3"),
        ("exit 3", {"on_nonzero_exit": Action.FAIL}, "fail"),
        ("exit 3", {"on_nonzero_exit": Action.LOG}, "log"),
        ("exit 3", {"on_nonzero_exit": Action.SUCCESS}, "success"),
    ],
    ids=["default-0", "success", "log", "fail", "default-3", "nz-fail", "nz-log", "nz-success"],
)
async def test_the_on_options_choose_the_finishing_ping(ping_server, clock, script, options, kind):
    run = await wrap(["sh", "-c", f"echo out; {script}"], ping_server.url, clock, **options)

    assert run.code == int(script.split()[1])
    assert ping_server.kinds() == ["start", kind]
    assert ping_server.pings[1].body == b"out\n"
    assert ping_server.pings[0].rid == ping_server.pings[1].rid


@pytest.mark.parametrize(
    "action, kind", [(Action.FAIL, "fail"), (Action.EXIT_CODE, "127"), (Action.LOG, "log")]
)
async def test_on_exec_fail_chooses_the_ping_of_a_command_that_cannot_run(
    ping_server, clock, action, kind
):
    run = await wrap(["no-such-command-hb"], ping_server.url, clock, on_exec_fail=action)

    assert run.code == 127
    assert ping_server.kinds() == ["start", kind]


async def test_it_sends_the_extra_headers_with_every_ping(ping_server, clock):
    headers = (("X-Host", "web1"), ("Authorization", "Bearer t0k"))
    await wrap(["true"], ping_server.url, clock, headers=headers)

    for ping in ping_server.pings:
        assert (ping.headers["X-Host"], ping.headers["Authorization"]) == ("web1", "Bearer t0k")


async def test_quiet_hides_stdout_but_still_reports_it(ping_server, clock):
    script = "echo out; echo err >&2"
    run = await wrap(["sh", "-c", script], ping_server.url, clock, copy_stdout=False)

    assert (run.stdout, run.stderr) == (b"", b"err\n")
    assert ping_server.pings[1].body == b"out\nerr\n"


async def test_silent_shows_nothing_not_even_an_unreachable_server(clock):
    url = f"http://127.0.0.1:{closed_port()}/ping/backup"
    run = await wrap(
        ["sh", "-c", "echo out; echo err >&2; exit 4"],
        url,
        clock,
        copy_stdout=False,
        copy_stderr=False,
        warnings=False,
    )

    assert (run.code, run.stdout, run.stderr) == (4, b"", b"")


async def test_every_runs_the_job_again_until_a_signal_ends_a_run(ping_server, clock, tmp_path):
    runs: list[Job] = []
    # Runs 1 and 2 end at once; run 3 waits for the signal.
    count = tmp_path / "count"
    script = (
        f"n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; echo run $n;"
        " if [ $n -ge 3 ]; then exec sleep 30; fi"
    )

    @contextlib.contextmanager
    def while_running(job: Job) -> Iterator[None]:
        runs.append(job)
        if len(runs) == 3:
            # As the CLI does on SIGTERM: passed on to the job, and the loop ends.
            job.forward(signal.SIGTERM)
        yield

    out, err = io.BytesIO(), io.BytesIO()
    code = await run_wrapped(
        ["sh", "-c", script],
        ExecOptions(url=ping_server.url, every=600.0),
        clock,
        stdout=out,
        stderr=err,
        while_running=while_running,
    )

    assert code == 143
    assert len(runs) == 3
    # Run 3 may get the signal before it prints.
    assert out.getvalue() in (b"run 1\nrun 2\n", b"run 1\nrun 2\nrun 3\n")
    assert ping_server.kinds() == ["start", "0", "start", "0", "start", "143"]
    rids = [p.rid for p in ping_server.pings]
    assert rids[0] == rids[1] != rids[2] == rids[3] != rids[4] == rids[5]
    # Between runs, what is left of the 600 s (the clock also records the 2 s
    # grace for output after a job, when its pipes are not closed yet).
    waits = [s for s in clock.slept if s != 2.0]
    assert len(waits) == 2
    assert all(500 < s <= 600 for s in waits)


async def test_exec_takes_the_monitor_as_a_url_before_the_dashes(ping_server):
    code, err, _, _ = await run_exec(ping_server.url, *JOB)

    assert (code, err) == (3, "")
    assert ping_server.kinds() == ["start", "3"]


async def test_exec_takes_a_slug_with_the_server_from_the_environment(ping_server):
    server = ping_server.url.removesuffix("/ping/backup")

    code, err, _, _ = await run_exec("backup", "--no-start-ping", *JOB, HEARTBEATD_SERVER=server)

    assert (code, err) == (3, "")
    assert ping_server.kinds() == ["3"]


async def test_exec_keeps_options_after_the_dashes_for_the_job(ping_server):
    # --quiet after -- is the job's argument, not ours.
    code, _, _, _ = await run_exec(ping_server.url, "--", "sh", "-c", 'echo "$1"', "x", "--quiet")

    assert code == 0
    assert ping_server.pings[1].body == b"--quiet\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["a", "b", "--", "true"], "one monitor before --, got 'a b'"),
        (["--url", "http://h/ping/a", "a", "--", "true"], "give the monitor once"),
        (["a", "--"], "no command given: put it after --"),
        (["--header", "nocolon", "--url", "http://h/ping/a", "--", "true"], "expected NAME:VALUE"),
        (["--every", "soon", "--url", "http://h/ping/a", "--", "true"], "--every"),
        (["--on-success", "maybe", "--url", "http://h/ping/a", "--", "true"], "--on-success"),
    ],
    ids=["two-monitors", "monitor-and-url", "no-command", "bad-header", "bad-every", "bad-action"],
)
def test_exec_refuses_unclear_arguments_before_running_anything(args, message):
    from click.testing import CliRunner

    from heartbeatd.cli import main

    result = CliRunner().invoke(main, ["exec", *args], env={"HEARTBEATD_SERVER": "http://h"})

    assert result.exit_code == 2
    assert message in result.output


async def test_exec_every_ends_its_loop_when_sigterm_ends_a_run(ping_server):
    wrapper = await start_wrapper([PY, "-c", CATCHES_TERM], ping_server.url, "--every", "1h")
    assert await asyncio.wait_for(wrapper.stdout.readline(), 10) == b"ready\n"

    wrapper.send_signal(signal.SIGTERM)

    # The run ends with the job's 7, and no second run starts.
    assert await asyncio.wait_for(wrapper.wait(), 10) == 7
    assert ping_server.kinds() == ["start", "7"]
