"""Ping throughput and latency of a real heartbeatd, and a durability check.

Starts `heartbeatd run` as a subprocess on a temporary config (N monitors,
period 1h, `ping_history` high enough that nothing is trimmed), pinned to core
0, waits for /healthz, then drives each scenario for a fixed time from a load
generator pinned to core 1. After the run it stops the daemon with SIGTERM and
compares `SELECT count(*) FROM pings` with the number of 200 answers.

Usage:

    python bench/ping_load.py                          # all scenarios, synchronous=full
    python bench/ping_load.py --synchronous normal
    python bench/ping_load.py --wrk                    # wrk rows too (Debian: apt-get install wrk)
    python bench/ping_load.py --wrk --no-python        # wrk only
    python bench/ping_load.py --loop asyncio           # hide uvloop from the daemon
    PYTHONPATH=/path/to/uvloop-site python bench/ping_load.py --loop uvloop
    python bench/ping_load.py --scenarios get-64 --duration 30 --hold 60
        # --hold: keep the daemon up N s after the run, e.g. to attach
        # `py-spy record --pid <pid>` (the pid is printed at start)

Scenarios: get-16, get-64 (GET /ping/<slug>), post-16, post-64 (POST with a
1 KiB body), the number being concurrent keep-alive connections.

Columns: pings/s counts 200 answers in the measured window (after a 1 s warm-up
for the Python generator); p50/p99/max are per-request latencies in ms;
errors are non-200 answers plus exceptions/socket errors; daemon% and gen% are
CPU time of the daemon (all threads) and the generator over the window, in % of
one core. A gen% near 100 means the generator, not the daemon, was the limit:
then trust the wrk rows. `stored` is the growth of the pings table during the
scenario (read-only count while the daemon runs).

After heartbeatd, the same scenarios run against a ceiling server (skip with
--no-ceiling): a minimal aiohttp handler that inserts the same ping row with
group commit (WAL, the same synchronous), on the same core; its stored count
is checked the same way, and the run ends with heartbeatd / ceiling, by
pings/s and by server CPU per answered ping.

All traffic goes to 127.0.0.1; every loop is bounded by --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Daemon,
    count_rows,
    free_port,
    percentile,
    proc_cpu_seconds,
    proc_uses_uvloop,
    uvloop_importable,
    write_config,
)

SCENARIOS = {
    "get-16": ("GET", 16, 0),
    "get-64": ("GET", 64, 0),
    "post-16": ("POST", 16, 1024),
    "post-64": ("POST", 64, 1024),
}
DAEMON_CORE = 0
LOAD_CORE = 1
WARMUP = 1.0


def slug(i: int) -> str:
    return f"m{i:05d}"


@dataclass
class Result:
    scenario: str
    generator: str
    conns: int
    ok_total: int  # every 200, warm-up included (for the durability check)
    ok: int  # 200s in the measured window
    seconds: float
    p50: float
    p99: float
    pmax: float
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)
    daemon_cpu: float = float("nan")
    gen_cpu: float = float("nan")
    stored: int = 0
    inflight_slack: int = 0  # answers wrk may have lost at its stop

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


# -- the Python load generator (runs in its own process) ----------------------------


async def generate(args: argparse.Namespace) -> dict[str, object]:
    import aiohttp

    urls = [f"http://127.0.0.1:{args.port}/ping/{slug(i)}" for i in range(args.monitors)]
    body = b"x" * args.body_size if args.body_size else None
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    ok_total = ok_measured = 0
    connector = aiohttp.TCPConnector(limit=args.conns)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal ok_total, ok_measured
        n = i
        while (t0 := time.perf_counter()) < deadline:
            url = urls[n % len(urls)]
            n += args.conns
            try:
                async with session.request(args.method, url, data=body) as resp:
                    await resp.read()
                    status = resp.status
            except Exception as exc:  # counted, not raised: it is what we measure
                errors[type(exc).__name__] += 1
                continue
            t1 = time.perf_counter()
            if status != 200:
                errors[f"HTTP {status}"] += 1
                continue
            ok_total += 1
            if t0 >= measure_from:
                ok_measured += 1
                latencies.append(t1 - t0)

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    # Tells the parent when the warm-up began, to time its CPU samples of the daemon.
    print("started", flush=True)
    start = time.perf_counter()
    measure_from = start + args.warmup
    deadline = measure_from + args.duration
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session, i) for i in range(args.conns)))
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - start
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    latencies.sort()
    return {
        "ok_total": ok_total,
        "ok": ok_measured,
        "seconds": args.duration,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "max": (latencies[-1] if latencies else float("nan")) * 1000,
        "errors": dict(errors),
        "cpu_pct": 100 * cpu / wall,
        "loop": type(asyncio.get_running_loop()).__module__,
    }


def loadgen_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="ping_load.py _loadgen")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--method", default="GET")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--body-size", type=int, default=0)
    p.add_argument("--monitors", type=int, default=100)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=WARMUP)
    p.add_argument("--core", type=int, default=LOAD_CORE)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(json.dumps(asyncio.run(generate(args))))


def run_python(
    name: str, port: int, monitors: int, duration: float, gen_uvloop: bool, pid: int
) -> Result:
    method, conns, body_size = SCENARIOS[name]
    cmd = [
        sys.executable,
        __file__,
        "_loadgen",
        f"--port={port}",
        f"--method={method}",
        f"--conns={conns}",
        f"--body-size={body_size}",
        f"--monitors={monitors}",
        f"--duration={duration}",
        f"--core={LOAD_CORE}",
    ]
    if gen_uvloop:
        cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "started", or "" if it died (then communicate() tells)
    # The daemon's CPU over the measured window only (after the warm-up).
    time.sleep(WARMUP)
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    time.sleep(duration)
    cpu1, t1 = proc_cpu_seconds(pid), time.monotonic()
    out, _ = proc.communicate(timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed with {proc.returncode}")
    data = json.loads(out)
    return Result(
        scenario=name,
        generator="python+uvloop" if gen_uvloop else "python",
        conns=conns,
        ok_total=data["ok_total"],
        ok=data["ok"],
        seconds=data["seconds"],
        p50=data["p50"],
        p99=data["p99"],
        pmax=data["max"],
        errors=sum(data["errors"].values()),
        error_kinds=data["errors"],
        daemon_cpu=100 * (cpu1 - cpu0) / (t1 - t0),
        gen_cpu=data["cpu_pct"],
    )


# -- wrk -----------------------------------------------------------------------------

WRK_LUA = """\
local n = 0
local monitors = {monitors}
local method = "{method}"
local body = {body}
local headers = {{}}
if body ~= nil then headers["Content-Type"] = "text/plain" end
request = function()
  n = n + 1
  return wrk.format(method, string.format("/ping/m%05d", n % monitors), headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d,'
    .. ' "write": %d, "timeout": %d, "p50": %d, "p99": %d, "max": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def run_wrk(
    name: str, port: int, monitors: int, duration: float, workdir: Path, pid: int
) -> Result:
    method, conns, body_size = SCENARIOS[name]
    script = workdir / f"{name}.lua"
    body = f'string.rep("x", {body_size})' if body_size else "nil"
    script.write_text(WRK_LUA.format(monitors=monitors, method=method, body=body))
    cmd = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{int(duration)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        preexec_fn=lambda: os.sched_setaffinity(0, {LOAD_CORE}),
        check=False,
    )
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1, t1 = proc_cpu_seconds(pid), time.monotonic()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(line[len("WRKJSON ") :])
    seconds = data["duration_us"] / 1e6
    # wrk counts status >= 400 in "status" errors; every other answer here is a 200.
    ok = data["requests"] - data["status"]
    kinds = {k: data[k] for k in ("status", "connect", "read", "write", "timeout") if data[k]}
    gen_cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return Result(
        scenario=name,
        generator="wrk",
        conns=conns,
        ok_total=ok,
        ok=ok,
        seconds=seconds,
        p50=data["p50"] / 1000,
        p99=data["p99"] / 1000,
        pmax=data["max"] / 1000,
        errors=sum(kinds.values()),
        error_kinds=kinds,
        daemon_cpu=100 * (cpu1 - cpu0) / (t1 - t0),
        gen_cpu=100 * gen_cpu / (t1 - t0),
        # Requests in flight when wrk stops may be committed but never counted.
        inflight_slack=conns,
    )


# -- the ceiling: a minimal aiohttp server with the same durability ----------------

CEILING_SCHEMA = """
CREATE TABLE IF NOT EXISTS pings (
    id INTEGER PRIMARY KEY, monitor TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    exit_status INTEGER, rid TEXT, method TEXT, remote_addr TEXT, user_agent TEXT,
    body TEXT, truncated INTEGER NOT NULL DEFAULT 0, duration REAL);
CREATE INDEX IF NOT EXISTS pings_monitor_id ON pings (monitor, id);
"""
CEILING_INSERT = (
    "INSERT INTO pings (monitor, at, kind, exit_status, rid, method, remote_addr, user_agent,"
    " body, truncated, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def ceiling_serve(port: int, db_path: str, synchronous: str) -> None:
    """What a ping must cost at least: answer 200 once the same ping row is
    committed (WAL, the same synchronous), many requests to a transaction."""
    import concurrent.futures
    import sqlite3
    from datetime import datetime, timezone

    from aiohttp import web

    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = wal")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.executescript(CEILING_SCHEMA)
    executor = concurrent.futures.ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    queued: list[tuple[tuple, asyncio.Future[None]]] = []
    wake = asyncio.Event()

    def commit(rows: list[tuple]) -> None:
        db.execute("BEGIN")
        db.executemany(CEILING_INSERT, rows)
        db.execute("COMMIT")

    async def writer() -> None:
        nonlocal queued
        while True:
            await wake.wait()
            wake.clear()
            batch, queued = queued, []
            if not batch:
                continue
            await loop.run_in_executor(executor, commit, [row for row, _ in batch])
            for _, fut in batch:
                fut.set_result(None)

    async def ping(request: web.Request) -> web.Response:
        body = (await request.read())[:10240].decode("utf-8", errors="replace")
        row = (
            request.match_info["slug"],
            datetime.now(timezone.utc).isoformat(),
            "success",
            None,
            None,
            request.method,
            request.remote,
            request.headers.get("User-Agent", "")[:200],
            body,
            0,
            None,
        )
        fut = loop.create_future()
        queued.append((row, fut))
        wake.set()
        await fut
        return web.Response(text="OK")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/ping/{slug}", ping)
    app.router.add_get("/healthz", healthz)
    task = asyncio.ensure_future(writer())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    task.cancel()
    db.close()


def ceiling_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="ping_load.py _ceiling")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--synchronous", default="full")
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args(argv)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(ceiling_serve(args.port, args.db, args.synchronous))


class Ceiling(Daemon):
    """The ceiling server as a subprocess, pinned and stopped as the daemon is."""

    ceiling_args: list[str]

    def start(self) -> None:
        cmd = [sys.executable, __file__, "_ceiling", *self.ceiling_args]
        if self.loop == "uvloop":
            cmd.append("--uvloop")
        cores = set(self.cores)
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()


# -- the run ---------------------------------------------------------------------------


def print_table(results: list[Result]) -> None:
    head = (
        f"{'scenario':<9} {'generator':<14} {'pings/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>7} {'daemon%':>8} {'gen%':>6} {'stored':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.scenario:<9} {r.generator:<14} {r.rate:>9.0f} {r.p50:>8.2f} {r.p99:>8.2f} "
            f"{r.pmax:>8.1f} {r.errors:>7} {r.daemon_cpu:>8.0f} {r.gen_cpu:>6.0f} {r.stored:>8}"
        )
        if r.error_kinds:
            print(f"{'':<9} errors: {r.error_kinds}")


def drive(
    names: list[str],
    port: int,
    db: Path,
    pid: int,
    args: argparse.Namespace,
    use_wrk: bool,
    workdir: Path,
) -> list[Result]:
    """Every scenario against the server on `port`, with its stored-row growth."""
    results: list[Result] = []
    stored = count_rows(db)
    for name in names:
        runs = []
        if not args.no_python:
            runs.append(
                lambda n=name: run_python(
                    n, port, args.monitors, args.duration, args.gen_uvloop, pid
                )
            )
        if use_wrk:
            runs.append(lambda n=name: run_wrk(n, port, args.monitors, args.duration, workdir, pid))
        for run in runs:
            result = run()
            # Let pings still in flight when the generator stopped commit,
            # so they count for this scenario, not the next.
            time.sleep(0.5)
            now_stored = count_rows(db)
            result.stored = now_stored - stored
            stored = now_stored
            results.append(result)
            print(
                f"  {result.scenario} ({result.generator}): {result.rate:.0f} pings/s",
                flush=True,
            )
    return results


def check_stored(db: Path, results: list[Result]) -> None:
    """Every 200 answered is a row in pings (wrk may lose answers in flight)."""
    answered = sum(r.ok_total for r in results)
    slack = sum(r.inflight_slack for r in results)
    in_db = count_rows(db)
    print(f"pings answered 200: {answered}")
    print(f"rows in pings:      {in_db}")
    diff = in_db - answered
    if diff == 0:
        verdict = "OK"
    elif 0 < diff <= slack:
        verdict = f"OK (+{diff} rows: requests in flight when wrk stopped, at most {slack})"
    else:
        verdict = f"MISMATCH ({diff:+d})"
    print(verdict)
    mismatched = [r for r in results if not 0 <= r.stored - r.ok_total <= r.inflight_slack]
    for r in mismatched:
        print(
            f"  per scenario: {r.scenario}/{r.generator} answered {r.ok_total}, stored {r.stored}"
        )


def run_ceiling(
    names: list[str], args: argparse.Namespace, use_wrk: bool, workdir: Path, loop_name: str
) -> list[Result]:
    """The same scenarios against the ceiling server, on the same cores."""
    db = workdir / "ceiling.db"
    port = free_port()
    loop = "uvloop" if loop_name == "uvloop" else "asyncio"
    server = Ceiling(config=db, workdir=workdir, loop=loop, cores=(DAEMON_CORE,))
    server.ceiling_args = [f"--port={port}", f"--db={db}", f"--synchronous={args.synchronous}"]
    print(f"\nceiling: minimal aiohttp + group commit, loop {loop}, synchronous={args.synchronous}")
    results: list[Result] = []
    try:
        server.start()
        server.wait_healthy(port)
        results = drive(names, port, db, server.pid, args, use_wrk, workdir)
        print()
        print_table(results)
    finally:
        server.stop()
    check_stored(db, results)
    return results


def print_ratios(daemon: list[Result], ceiling: list[Result]) -> None:
    # When fsync, not the CPU, is the limit (daemon% well under 100), the
    # rates follow the disk; the CPU each ping costs still compares the code.
    print("\nheartbeatd / ceiling, same generator, same run:")
    print(f"  {'scenario':<8} {'generator':<14} {'pings/s':>24}  {'CPU µs per ping':>26}")
    tops = {(r.scenario, r.generator): r for r in ceiling}
    for r in daemon:
        top = tops.get((r.scenario, r.generator))
        if top is not None and top.rate and r.rate:
            cpu, top_cpu = cpu_per_ping(r), cpu_per_ping(top)
            print(
                f"  {r.scenario:<8} {r.generator:<14} {r.rate:>6.0f} / {top.rate:>6.0f} = "
                f"{r.rate / top.rate:.2f}   {cpu:>5.0f} / {top_cpu:>5.0f} = {top_cpu / cpu:.2f}"
            )


def cpu_per_ping(r: Result) -> float:
    """Microseconds of the server's CPU (all threads) per answered ping."""
    return r.daemon_cpu / 100 / r.rate * 1e6


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_loadgen":
        loadgen_main(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_ceiling":
        ceiling_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--monitors", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    p.add_argument("--synchronous", choices=("full", "normal", "extra"), default="full")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    p.add_argument("--wrk", action="store_true", help="also run each scenario with wrk")
    p.add_argument("--no-python", action="store_true", help="skip the Python generator")
    p.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the daemon's loop: auto = uvloop when importable (as the CLI does)",
    )
    p.add_argument("--gen-uvloop", action="store_true", help="Python generator on uvloop")
    p.add_argument("--dir", help="work directory (default: a new temp dir, removed after)")
    p.add_argument("--hold", type=float, default=0, help="keep the daemon up N s after the run")
    p.add_argument("--no-ceiling", action="store_true", help="skip the minimal ceiling server")
    args = p.parse_args()
    names = [s for s in args.scenarios.split(",") if s]
    for name in names:
        if name not in SCENARIOS:
            p.error(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    use_wrk = args.wrk and shutil.which("wrk") is not None
    if args.wrk and not use_wrk:
        print("wrk is not installed (Debian: apt-get install wrk); Python generator only")
    if args.no_python and not use_wrk:
        p.error("--no-python needs wrk")
    if os.cpu_count() is None or os.cpu_count() < 2:
        print("warning: fewer than 2 cores; daemon and generator share a core")

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="hb-ping-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "heartbeatd.db"
    port = free_port()
    config = workdir / "heartbeatd.toml"
    write_config(
        config,
        port=port,
        db=db,
        monitors=((slug(i), {"period": "1h"}) for i in range(args.monitors)),
        synchronous=args.synchronous,
    )
    daemon = Daemon(config=config, workdir=workdir, loop=args.loop, cores=(DAEMON_CORE,))
    results: list[Result] = []
    loop_name = "?"
    try:
        daemon.start()
        ready = daemon.wait_healthy(port)
        loop_name = "uvloop" if proc_uses_uvloop(daemon.pid) else "asyncio (default loop)"
        print(
            f"heartbeatd pid={daemon.pid} ready in {ready:.2f}s on 127.0.0.1:{port}, "
            f"core {DAEMON_CORE}; loop: {loop_name}; synchronous={args.synchronous}; "
            f"monitors={args.monitors}; dir={workdir}"
        )
        print(
            f"generator on core {LOAD_CORE}; uvloop importable here: {uvloop_importable()}; "
            f"{args.duration:g}s per scenario"
        )
        print()
        results = drive(names, port, db, daemon.pid, args, use_wrk, workdir)
        print()
        print_table(results)
        if args.hold:
            print(f"\nholding the daemon (pid {daemon.pid}) for {args.hold:g}s", flush=True)
            time.sleep(args.hold)
    finally:
        code, took = daemon.stop()
    print(f"\ndaemon stopped: exit {code} after SIGTERM in {took:.2f}s")
    check_stored(db, results)
    if not args.no_ceiling:
        ceiling = run_ceiling(names, args, use_wrk, workdir, loop_name)
        print_ratios(results, ceiling)
    if not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
