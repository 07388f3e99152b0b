"""heartbeatd with 100,000 monitors: start-up, memory, idle CPU, reload, alert lag.

Phases (each with its own heartbeatd subprocess pinned to core 0; this
process runs on core 1):

  A. empty database: start-up time (spawn -> first /healthz 200, and READY=1
     on a NOTIFY_SOCKET this script binds), RSS (VmRSS) after start-up, idle
     CPU over --idle seconds (utime+stime deltas of /proc/<pid>/stat, % of one
     core), SIGHUP reload time (RELOADING=1 -> READY=1, and SIGHUP -> the
     "config reloaded" log line), the worst latency of pings sent during the
     reload, SIGTERM -> exit.
  B. the same with --rows ping rows (default 1,000,000) written into the
     pings table with sqlite3 executemany after phase A created the schema,
     spread evenly over the monitors. Also the CPU of the first ping trim,
     which housekeeping runs about 30 s after start-up.
  C. alert lag: the same 100,000 monitors, of which --hot (default 1,000)
     have period --hot-period (default 10s), grace 1s and a `webhook` channel
     pointing at an aiohttp receiver in this process. Right after a whole
     second, the hot monitors are pinged once each (so their deadlines fall in
     one second), then we wait for the alerts. Only down alerts that carry a
     `last_ping` count: on a slow start-up the hot monitors' first deadline
     (never pinged: start-up + period + grace) can pass before the burst, and
     those alerts say nothing about the lag. For each alert:
       lag vs deadline = receive time - (stored ping time + period + grace),
         the ping time read from the pings table (microseconds);
       lag vs down_at  = receive time - the body's `down_at`, which has
         second precision (truncated), so it overstates the lag by the
         deadline's fraction of a second;
       lag vs wheel slot = receive time - the deadline rounded up to the
         timer wheel's slot (heartbeatd.wheel.SLOTS_PER_SECOND; whole seconds
         before it existed), so this is the processing part.

  D. surfaces (bench/surfaces.py): a pinger alone, then the same pinger while
     /metrics is scraped every second and the status page and the API list
     are loaded; the worst event-loop stall measured inside the daemon, ping
     p50/p99 both ways, each surface's response time, RSS after, start-up.

Usage:

    python bench/scale.py                      # all phases, 100,000 monitors
    python bench/scale.py --phases A,C --idle 10
    python bench/scale.py --monitors 5000 --rows 50000 --idle 5   # a quick try
    python bench/scale.py --loop uvloop        # needs uvloop importable
    python bench/scale.py --cprofile /tmp/scale  # phase A/B daemons under
        # cProfile: writes /tmp/scale-A.prof, /tmp/scale-B.prof (start-up +
        # reloads + idle); read with python -m pstats

Targets printed in the summary: start-up <= 3 s, RSS <= 200 MB, idle CPU <=
1 %, reload <= 2 s, alert lag p99 <= 1 s.

All traffic goes to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    Daemon,
    NotifySocket,
    count_rows,
    free_port,
    http_get,
    percentile,
    proc_cpu_seconds,
    proc_rss_mb,
    proc_uses_uvloop,
    write_config,
)
from surfaces import run_surfaces_phase

DAEMON_CORE = 0
BENCH_CORE = 1
TARGETS = {
    "start-up (s)": 3.0,
    "RSS (MB)": 200.0,
    "idle CPU (% of a core)": 1.0,
    "reload (s)": 2.0,
    "alert lag p99 (s)": 1.0,
    "worst loop stall in window (s)": 0.05,
    "ping p99 during / idle": 2.0,
    "RSS after surfaces (MB)": 200.0,
}


def slug(i: int) -> str:
    return f"m{i:06d}"


def hot_slug(i: int) -> str:
    return f"hot{i:05d}"


@dataclass
class PhaseResult:
    name: str
    values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def say(text: str) -> None:
    print(text, flush=True)


# -- phases A and B --------------------------------------------------------------------


def measure_idle(pid: int, seconds: float) -> tuple[float, float, list[float]]:
    """(mean % of a core, worst 1 s %, per-second %) over `seconds`."""
    samples = []
    cpu0 = last = proc_cpu_seconds(pid)
    t0 = tick = time.monotonic()
    for _ in range(math.ceil(seconds)):
        time.sleep(max(0.0, tick + 1.0 - time.monotonic()))
        tick = time.monotonic()
        now = proc_cpu_seconds(pid)
        samples.append(100 * (now - last))
        last = now
    total = 100 * (last - cpu0) / (time.monotonic() - t0)
    return total, max(samples, default=0.0), samples


def reload_once(daemon: Daemon, notify: NotifySocket, port: int, ping_slug: str) -> dict:
    """SIGHUP and time it; a thread pings meanwhile to see what a reload costs a client."""
    n_msgs, n_lines = len(notify.messages), len(daemon.lines)
    worst = [0.0]
    failures = [0]
    done = threading.Event()

    def pinger() -> None:
        end = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < end:
            t0 = time.monotonic()
            try:
                status = http_get(port, f"/ping/{ping_slug}", timeout=30)
            except OSError:
                status = 0
            worst[0] = max(worst[0], time.monotonic() - t0)
            if status != 200:
                failures[0] += 1
            time.sleep(0.02)

    thread = threading.Thread(target=pinger, daemon=True)
    thread.start()
    time.sleep(0.1)
    sent = time.monotonic()
    os.kill(daemon.pid, signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", n_msgs, 60)
    ready = notify.wait_for("READY=1", n_msgs, 60)
    logged = daemon.wait_log("config reloaded", n_lines, 60)
    time.sleep(0.2)
    done.set()
    thread.join(65)
    out = {
        "sighup_to_ready": (ready.at - sent) if ready else float("nan"),
        "reloading_to_ready": (ready.at - reloading.at) if ready and reloading else float("nan"),
        "sighup_to_log": (logged.at - sent) if logged else float("nan"),
        "worst_ping": worst[0],
        "ping_failures": failures[0],
    }
    return out


def run_phase(
    name: str,
    args: argparse.Namespace,
    workdir: Path,
    config: Path,
    port: int,
    *,
    trim_window: bool,
) -> PhaseResult:
    result = PhaseResult(name)
    notify = NotifySocket(workdir / f"notify-{name}.sock")
    cprofile = Path(f"{args.cprofile}-{name}.prof") if args.cprofile else None
    daemon = Daemon(
        config=config,
        workdir=workdir,
        loop=args.loop,
        cores=(DAEMON_CORE,),
        notify=notify,
        cprofile=cprofile,
    )
    try:
        daemon.start()
        healthy = daemon.wait_healthy(port, timeout=300)
        # CPU (user + system) the daemon used to get there: steadier than
        # the wall time on a shared machine, where other work takes the core.
        cpu_to_healthy = proc_cpu_seconds(daemon.pid)
        ready = notify.wait_for("READY=1", 0, 10)
        result.values["start-up (s)"] = healthy
        result.values["start-up CPU to /healthz (s)"] = cpu_to_healthy
        if ready:
            result.values["spawn -> READY=1 (s)"] = ready.at - daemon.spawned_at
        loaded = daemon.first_log("monitors loaded")
        if loaded:
            result.values["spawn -> 'monitors loaded' log (s)"] = loaded.at - daemon.spawned_at
        result.values["RSS after start-up (MB)"] = proc_rss_mb(daemon.pid)
        result.notes.append("loop: " + ("uvloop" if proc_uses_uvloop(daemon.pid) else "asyncio"))
        t_healthy = time.monotonic()
        # Housekeeping's first ping trim runs ~30 s after start-up (TRIM_EVERY - 30);
        # with many rows, keep it out of the idle window and measure it on its own.
        idle = min(args.idle, 27.0) if trim_window else args.idle
        say(f"[{name}] pid={daemon.pid} healthy after {healthy:.2f}s; idle for {idle:g}s")
        mean, worst, _ = measure_idle(daemon.pid, idle)
        result.notes.append(f"idle window {idle:g}s")
        result.values["idle CPU (% of a core)"] = mean
        result.values["idle CPU worst 1 s (%)"] = worst
        if trim_window:
            left = max(0.0, 45.0 - (time.monotonic() - t_healthy))
            if left:
                say(f"[{name}] watching the first ping trim for {left:.0f}s")
                cpu0 = proc_cpu_seconds(daemon.pid)
                _, worst_trim, _ = measure_idle(daemon.pid, left)
                result.values["CPU s while first trim runs (~30-45 s)"] = (
                    proc_cpu_seconds(daemon.pid) - cpu0
                )
                result.values["worst 1 s CPU during trim (%)"] = worst_trim
        reloads = []
        for i in range(args.reloads):
            r = reload_once(daemon, notify, port, slug(0))
            reloads.append(r)
            say(
                f"[{name}] reload {i + 1}: SIGHUP->READY {r['sighup_to_ready']:.2f}s, "
                f"RELOADING->READY {r['reloading_to_ready']:.2f}s, "
                f"SIGHUP->log {r['sighup_to_log']:.2f}s, "
                f"worst ping meanwhile {r['worst_ping'] * 1000:.0f} ms "
                f"({r['ping_failures']} failed)"
            )
        if reloads:
            result.values["reload (s)"] = max(r["sighup_to_ready"] for r in reloads)
            result.values["reload RELOADING->READY (s)"] = max(
                r["reloading_to_ready"] for r in reloads
            )
            result.values["worst ping latency during reload (s)"] = max(
                r["worst_ping"] for r in reloads
            )
            result.values["RSS after reloads (MB)"] = proc_rss_mb(daemon.pid)
    finally:
        code, took = daemon.stop(timeout=60)
        notify.close()
    result.values["SIGTERM -> exit (s)"] = took
    result.notes.append(f"exit code {code}")
    return result


def prefill(db: Path, monitors: int, rows: int) -> float:
    """Write `rows` pings spread over the monitors, straight into SQLite."""
    t0 = time.monotonic()
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    per = max(1, rows // monitors)
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA synchronous = normal")
        batch = []
        written = 0
        for k in range(rows):
            i = k % monitors
            at = base + timedelta(seconds=k // monitors * 3600 + i % 3600)
            batch.append(
                (
                    slug(i),
                    at.isoformat(timespec="microseconds"),
                    "success",
                    None,
                    None,
                    "GET",
                    "127.0.0.1",
                    "curl/8.5.0",
                    "",
                    0,
                    None,
                )
            )
            if len(batch) >= 100_000:
                conn.executemany(INSERT_PING, batch)
                written += len(batch)
                batch = []
        if batch:
            conn.executemany(INSERT_PING, batch)
        conn.commit()
    finally:
        conn.close()
    say(f"prefilled {rows} ping rows ({per} per monitor) in {time.monotonic() - t0:.1f}s")
    return time.monotonic() - t0


INSERT_PING = (
    "INSERT INTO pings (monitor, at, kind, exit_status, rid, method, remote_addr, user_agent,"
    " body, truncated, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# -- phase C: alert lag ------------------------------------------------------------------


async def alert_lag(args: argparse.Namespace, workdir: Path) -> PhaseResult:
    import aiohttp
    from aiohttp import web

    result = PhaseResult("C")
    received: dict[str, tuple[float, dict]] = {}
    duplicates = 0
    unpinged = 0
    all_in = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal duplicates, unpinged
        at = time.time()
        body = await request.json()
        if body.get("event") == "down" and not body.get("last_ping"):
            unpinged += 1
        elif body.get("event") == "down":
            if body["monitor"] in received:
                duplicates += 1
            else:
                received[body["monitor"]] = (at, body)
            if len(received) >= args.hot:
                all_in.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()

    db = workdir / "lag.db"
    port = free_port()
    config = workdir / "lag.toml"
    cold = args.monitors - args.hot
    monitors = [(hot_slug(i), _hot_options(args)) for i in range(args.hot)]
    monitors += [(slug(i), {"period": "1h"}) for i in range(cold)]
    write_config(
        config,
        port=port,
        db=db,
        monitors=monitors,
        synchronous=args.synchronous,
        channels={"hook": {"type": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook"}},
    )
    daemon = Daemon(config=config, workdir=workdir, loop=args.loop, cores=(DAEMON_CORE,))
    try:
        daemon.start()
        healthy = await asyncio.to_thread(daemon.wait_healthy, port, 300)
        say(
            f"[C] {args.hot} hot + {cold} cold monitors; healthy after {healthy:.2f}s; "
            f"pinging the hot ones just after a whole second"
        )
        # Start the burst right after a second boundary so all pings share one second.
        await asyncio.sleep(1.02 - time.time() % 1.0)
        t_burst = time.time()
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            sem = asyncio.Semaphore(64)

            async def ping(i: int) -> int:
                async with sem, session.get(f"http://127.0.0.1:{port}/ping/{hot_slug(i)}") as r:
                    await r.read()
                    return r.status

            statuses = await asyncio.gather(*(ping(i) for i in range(args.hot)))
        burst = time.time() - t_burst
        bad = sum(1 for s in statuses if s != 200)
        say(f"[C] {args.hot} pings in {burst:.2f}s ({bad} not 200); waiting for alerts")
        wait = args.hot_period + 1 + args.alert_timeout
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_in.wait(), wait)
        await asyncio.sleep(1.0)  # late duplicates
        ping_at = _ping_times(db)
    finally:
        await asyncio.to_thread(daemon.stop, 60)
        await runner.cleanup()

    offset = args.hot_period + 1
    slots = _wheel_slots_per_second()
    lag_deadline, lag_down_at, lag_slot, fractions, down_at_wrong = [], [], [], [], 0
    for mon, (at, body) in received.items():
        deadline = ping_at[mon] + offset
        lag_deadline.append(at - deadline)
        # The wheel fires a deadline at the next slot boundary.
        lag_slot.append(at - math.ceil(deadline * slots) / slots)
        down_at = datetime.fromisoformat(body["down_at"].replace("Z", "+00:00")).timestamp()
        lag_down_at.append(at - down_at)
        fractions.append(deadline % 1.0)
        if int(deadline) != int(down_at):
            down_at_wrong += 1
    lag_deadline.sort()
    lag_down_at.sort()
    lag_slot.sort()
    secs = {int(ping_at[h] + offset) for h in ping_at}
    result.notes.append(
        f"{len(received)}/{args.hot} down alerts received, {duplicates} duplicates; "
        f"deadlines fall in {len(secs)} distinct second(s); ping burst {burst:.2f}s; "
        f"wheel slot {1 / slots:g}s"
    )
    if unpinged:
        result.notes.append(f"{unpinged} down alerts of never-pinged monitors ignored")
    if down_at_wrong:
        result.notes.append(f"{down_at_wrong} alerts whose down_at second != the deadline's")
    labelled = (
        ("vs deadline", lag_deadline),
        ("vs down_at", lag_down_at),
        ("vs wheel slot", lag_slot),
    )
    for label, lags in labelled:
        for q in (50, 99):
            result.values[f"alert lag p{q} {label} (s)"] = percentile(lags, q)
        result.values[f"alert lag max {label} (s)"] = lags[-1] if lags else float("nan")
    result.values["alert lag p99 (s)"] = percentile(lag_deadline, 99)
    result.values["alert lag min vs deadline (s)"] = lag_deadline[0] if lag_deadline else math.nan
    if fractions:
        result.values["mean deadline fraction of a second (s)"] = sum(fractions) / len(fractions)
    if len(received) < args.hot:
        result.values["alert lag p99 (s)"] = float("inf")
        result.notes.append("missing alerts count as infinite lag")
    return result


def _wheel_slots_per_second() -> int:
    """The slot size of the heartbeatd the daemon runs (the same import path)."""
    from heartbeatd import wheel

    return getattr(wheel, "SLOTS_PER_SECOND", 1)


def _hot_options(args: argparse.Namespace) -> dict:
    return {"period": f"{args.hot_period}s", "grace": "1s", "channels": ["hook"]}


def _ping_times(db: Path) -> dict[str, float]:
    uri = db.absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        rows = conn.execute("SELECT monitor, max(at) FROM pings GROUP BY monitor").fetchall()
    return {mon: datetime.fromisoformat(at).timestamp() for mon, at in rows}


# -- main ----------------------------------------------------------------------------


def print_summary(results: list[PhaseResult]) -> None:
    say("")
    say("=" * 78)
    for r in results:
        say(f"phase {r.name}: " + "; ".join(r.notes))
        for key, value in r.values.items():
            say(f"  {key:<48} {value:10.3f}")
    say("")
    say(f"{'target':<26} {'limit':>7}  {'measured':<36} verdict")
    say("-" * 78)
    for key, limit in TARGETS.items():
        for r in results:
            if key in r.values:
                value = r.values[key]
                verdict = "met" if value <= limit else "MISSED"
                label = f"{value:.3f} (phase {r.name})"
                say(f"{key:<26} {limit:>7g}  {label:<36} {verdict}")
        if key == "RSS (MB)":
            for r in results:
                for sub in ("RSS after start-up (MB)", "RSS after reloads (MB)"):
                    if sub in r.values:
                        value = r.values[sub]
                        verdict = "met" if value <= limit else "MISSED"
                        label = f"{value:.1f} ({sub[4:-5]}, phase {r.name})"
                        say(f"{key:<26} {limit:>7g}  {label:<36} {verdict}")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--monitors", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=1_000_000, help="ping rows for phase B")
    p.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU sampling")
    p.add_argument("--reloads", type=int, default=3)
    p.add_argument("--hot", type=int, default=1000, help="monitors expiring at once (C)")
    p.add_argument("--hot-period", type=int, default=10, help="their period in seconds")
    p.add_argument("--alert-timeout", type=float, default=60, help="extra wait for alerts")
    p.add_argument("--surface-seconds", type=float, default=20, help="each window of D")
    p.add_argument(
        "--surfaces", default="page,api", help="D: also load these once (page, api, or none)"
    )
    p.add_argument("--phases", default="A,B,C,D")
    p.add_argument("--synchronous", choices=("full", "normal", "extra"), default="full")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    p.add_argument("--cprofile", help="path prefix: run phase A/B daemons under cProfile")
    p.add_argument("--dir", help="work directory (default: a new temp dir, removed after)")
    args = p.parse_args()
    phases = set(args.phases.split(","))
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {BENCH_CORE})

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="hb-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"work dir {workdir}; {args.monitors} monitors; synchronous={args.synchronous}")
    results = []
    db = workdir / "heartbeatd.db"
    port = free_port()
    config = workdir / "heartbeatd.toml"
    t0 = time.monotonic()
    write_config(
        config,
        port=port,
        db=db,
        monitors=((slug(i), {"period": "1h"}) for i in range(args.monitors)),
        synchronous=args.synchronous,
        ping_history=100,
    )
    say(
        f"config written in {time.monotonic() - t0:.1f}s "
        f"({config.stat().st_size / 1e6:.1f} MB, period 1h, grace 5m, ping_history 100)"
    )
    if "A" in phases or "B" in phases:
        results.append(run_phase("A", args, workdir, config, port, trim_window=False))
    if "B" in phases:
        if count_rows(db, "monitors") == 0:
            raise SystemExit("phase B needs phase A's schema and states")
        prefill(db, args.monitors, args.rows)
        results.append(run_phase("B", args, workdir, config, port, trim_window=True))
    if "C" in phases:
        results.append(asyncio.run(alert_lag(args, workdir)))
    if "D" in phases:
        results.append(PhaseResult("D"))
        run_surfaces_phase(config, workdir, port, args, results[-1])
    print_summary(results)
    if not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
