"""Phase D of bench/scale.py: every surface at N monitors while pings go on.

One heartbeatd (core 0). On core 1:
  1. a pinger thread sends GET /ping/<slug> back to back on one keep-alive
     connection for --surface-seconds: the idle latencies;
  2. the same again, while curl scrapes /metrics once a second and loads
     the status page `/` and `GET /api/v1/monitors` once each (curl, a
     process of its own, so reading 60 MB does not slow the pinger's GIL);
  3. /metrics once more, for the daemon's own stall meter.
Between 1 and 2, /metrics is scraped alone three times: the daemon's CPU
(utime+stime) and the response time of one scrape, medians.

The worst event-loop stall is measured inside the daemon (looplag.LoopLag):
`heartbeatd_loop_lag_max_seconds` read before and after the window (a max
since start-up), and the "event loop stalled seconds=" lines (>= 100 ms)
logged during the window.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import Daemon, percentile, proc_cpu_seconds, proc_rss_mb

# --surfaces: what is loaded once during the window, beside the /metrics scrapes.
SURFACES = {"page": "/", "api": "/api/v1/monitors"}


@dataclass
class Window:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0


def ping_until(port: int, slugs: list[str], stop: threading.Event, into: Window) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    try:
        while not stop.is_set():
            path = f"/ping/{slugs[n % len(slugs)]}"
            n += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            if ok:
                into.latencies.append(time.perf_counter() - t0)
            else:
                into.failures += 1
    finally:
        conn.close()


def curl(port: int, path: str) -> tuple[float, int, int]:
    """(seconds, status, bytes) of one GET by curl."""
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{time_total} %{http_code} %{size_download}",
            "--max-time",
            "120",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=130,
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def scrape_every_second(port: int, stop: threading.Event, times: list[float]) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        took, status, _ = curl(port, "/metrics")
        if status == 200:
            times.append(took)
        stop.wait(max(0.0, t0 + 1.0 - time.monotonic()))


def lone_scrapes(pid: int, port: int, n: int = 3) -> dict[str, float]:
    """/metrics alone (no pings): the daemon's CPU per scrape (utime+stime of
    its /proc/<pid>/stat; the idle daemon adds under 1 %), the response time
    and size; the median of `n` scrapes."""
    cpu: list[float] = []
    wall: list[float] = []
    size = 0
    for _ in range(n):
        before = proc_cpu_seconds(pid)
        took, status, size = curl(port, "/metrics")
        cpu.append(proc_cpu_seconds(pid) - before)
        if status == 200:
            wall.append(took)
    cpu.sort()
    wall.sort()
    return {
        "/metrics alone: CPU per scrape (s)": cpu[len(cpu) // 2],
        "/metrics alone: response (s)": wall[len(wall) // 2] if wall else float("nan"),
        "/metrics alone: MB": size / 1e6,
    }


def lag_max(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    found = re.search(r"^heartbeatd_loop_lag_max_seconds (\S+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


def window(port: int, slugs: list[str], seconds: float, during=None) -> Window:
    stop = threading.Event()
    got = Window()
    pinger = threading.Thread(target=ping_until, args=(port, slugs, stop, got))
    pinger.start()
    t0 = time.monotonic()
    try:
        if during is not None:
            during()
        stop.wait(max(0.0, t0 + seconds - time.monotonic()))
    finally:
        stop.set()
        pinger.join(60)
    got.latencies.sort()
    return got


def surfaces(
    daemon: Daemon, port: int, slugs: list[str], seconds: float, paths: list[str]
) -> dict[str, float]:
    values: dict[str, float] = {}
    idle = window(port, slugs, seconds)
    values.update(lone_scrapes(daemon.pid, port))
    before = lag_max(port)
    lines_before = len(daemon.lines)
    scrapes: list[float] = []
    pages: dict[str, tuple[float, int, int]] = {}

    def load_surfaces() -> None:
        stop = threading.Event()
        scraper = threading.Thread(target=scrape_every_second, args=(port, stop, scrapes))
        scraper.start()
        try:
            for path in paths:
                pages[path] = curl(port, path)
            # Let the scrapes go on for the rest of the window.
            time.sleep(max(0.0, seconds - sum(p[0] for p in pages.values())))
        finally:
            stop.set()
            scraper.join(180)

    busy = window(port, slugs, seconds, load_surfaces)
    after = lag_max(port)
    stalls = [
        float(m.group(1))
        for line in daemon.lines[lines_before:]
        if (m := re.search(r"event loop stalled seconds=([0-9.]+)", line.text))
    ]
    for name, w in (("idle", idle), ("during scrapes", busy)):
        values[f"ping p50 {name} (ms)"] = percentile(w.latencies, 50) * 1000
        values[f"ping p99 {name} (ms)"] = percentile(w.latencies, 99) * 1000
        values[f"ping max {name} (ms)"] = (w.latencies[-1] if w.latencies else 0) * 1000
        values[f"pings {name}"] = len(w.latencies)
        values[f"ping failures {name}"] = w.failures
    values["ping p99 during / idle"] = (
        values["ping p99 during scrapes (ms)"] / values["ping p99 idle (ms)"]
    )
    values["/metrics scrapes"] = len(scrapes)
    if scrapes:
        values["/metrics worst response (s)"] = max(scrapes)
        values["/metrics median response (s)"] = sorted(scrapes)[len(scrapes) // 2]
    for path, (took, status, size) in pages.items():
        values[f"GET {path} (s)"] = took
        values[f"GET {path} (MB, status {status})"] = size / 1e6
    # The gauge is a max since start-up: a higher one after the window is
    # the window's; otherwise the window's worst was at most the old value.
    in_window = after if after > before else 0.0
    values["worst loop stall in window (s)"] = max([in_window, *stalls])
    values["loop lag max since start-up (s)"] = after
    values["stall log lines in window (>= 100 ms)"] = len(stalls)
    values["RSS after surfaces (MB)"] = proc_rss_mb(daemon.pid)
    return values


def run_surfaces_phase(config: Path, workdir: Path, port: int, args, result) -> None:
    daemon = Daemon(config=config, workdir=workdir, loop=args.loop, cores=(0,))
    try:
        daemon.start()
        result.values["start-up (s)"] = daemon.wait_healthy(port, timeout=300)
        result.values["RSS after start-up (MB)"] = proc_rss_mb(daemon.pid)
        slugs = [f"m{i:06d}" for i in range(0, args.monitors, max(1, args.monitors // 1000))]
        print(f"[D] healthy; {args.surface_seconds:g}s idle pings, then with surfaces", flush=True)
        paths = [SURFACES[name] for name in args.surfaces.split(",") if name in SURFACES]
        result.notes.append(f"metrics scraped every second; also loaded: {paths or 'nothing'}")
        result.values.update(surfaces(daemon, port, slugs, args.surface_seconds, paths))
    finally:
        code, _ = daemon.stop(timeout=60)
    result.notes.append(f"exit code {code}")
