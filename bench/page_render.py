"""The status page at N monitors, in one process: what each view costs to render.

Builds a config of N monitors (period 1h; a quarter with one of four tags,
every 50th named "... backup ..."), writes their states straight into a
fresh database (spread over down, late, new, up and paused) with a few flips
each, so every history strip on a page has something to draw, and opens the
daemon's store, engine and web app on it, served by aiohttp on loopback in
this process. Then each view is requested --repeat times:

    /  /?status=down  /?tag=db  /?q=backup  /?page=2  /?status=up&page=50
    /monitors/<a down monitor>

and for each it prints the median wall and CPU time of a whole request
(time.process_time: this process serves and reads, so it is the whole cost
and is not slowed by other processes on a busy machine), the same around
the handler alone (an aiohttp middleware; CPU of the loop's thread, median
and least: on a shared machine the least is the steadier figure), the page
size, and the worst event-loop stall seen meanwhile (looplag.LoopLag with a
2 ms interval, as the daemon measures itself; on a busy machine it also
counts the time the process waited for a core).

    python bench/page_render.py                      # 100,000 monitors
    python bench/page_render.py --monitors 20000 --repeat 3
    python bench/page_render.py --cprofile /tmp/page.prof   # then python -m pstats

Before/after: run it with PYTHONPATH pointing at an older checkout's tree
(e.g. `git archive <commit> | tar -x -C /tmp/old`, PYTHONPATH=/tmp/old).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from heartbeatd.clock import Clock
from heartbeatd.config import load_config
from heartbeatd.engine import Engine
from heartbeatd.looplag import LoopLag
from heartbeatd.process import release_memory
from heartbeatd.store import Store
from heartbeatd.web import make_app

TAGS = ("db", "web", "backup", "batch")
# Share of monitors in each status (the rest are up).
SHARES = {"down": 0.02, "late": 0.01, "new": 0.05, "paused": 0.02}
FLIPS_EACH = 4
PERIOD = 3600.0


def config_text(n: int, db: Path) -> str:
    lines = [f'[storage]\npath = "{db}"\n']
    for i in range(n):
        extra = ""
        if i % 4 == 0:
            extra += f'tags = ["{TAGS[(i // 4) % len(TAGS)]}"]\n'
        if i % 50 == 0:
            extra += f'name = "Nightly backup {i}"\n'
        lines.append(f'[monitors.m{i:06d}]\nperiod = "1h"\n{extra}')
    return "\n".join(lines)


def status_of(i: int) -> str:
    # Spread by a stride, not in blocks: every tag gets every status.
    x = (i * 7919 % 10_000) / 10_000
    for status, share in SHARES.items():
        if x < share:
            return status
        x -= share
    return "up"


def state_json(status: str, now: datetime) -> dict:
    ts = now.timestamp()
    if status == "new":
        return {}
    state: dict = {
        "status": status,
        "first_seen": ts - 40 * PERIOD,
        "last_ping": ts - 600,
        "last_success": ts - 600,
        "last_kind": "success",
        "expected_at": ts - 600 + PERIOD,
        "n_pings": 40,
        "last_duration": 0.4,
    }
    if status == "late":
        state["expected_at"] = ts - 60
    if status == "down":
        state.update(
            last_ping=ts - 2 * PERIOD, expected_at=ts - PERIOD, down_at=ts - 1800, reason="missed"
        )
    return state


def fill(db: Path, n: int, now: datetime) -> None:
    stored = now.strftime("%Y-%m-%dT%H:%M:%S")
    with sqlite3.connect(db) as conn:
        states, flips = [], []
        for i in range(n):
            slug, status = f"m{i:06d}", status_of(i)
            if status != "new":
                states.append((slug, json.dumps(state_json(status, now)), stored))
            if status in ("new", "paused"):
                continue
            # Down and back up now and then over the last day, so strips differ.
            for k in range(FLIPS_EACH):
                at = now - timedelta(hours=30 - 6 * k - (i % 5))
                old, new = ("up", "down") if k % 2 == 0 else ("down", "up")
                reason = "missed" if new == "down" else "recovered"
                flips.append((slug, at.isoformat(timespec="microseconds"), old, new, reason))
            if status == "down":
                at = now - timedelta(seconds=1800)
                flips.append((slug, at.isoformat(timespec="microseconds"), "up", "down", "missed"))
        conn.executemany("INSERT INTO monitors (slug, state, updated_at) VALUES (?, ?, ?)", states)
        conn.executemany(
            "INSERT INTO flips (monitor, at, old, new, reason) VALUES (?, ?, ?, ?, ?)", flips
        )


# Per request, measured around the handler: (wall, CPU of this thread). The
# client's reading happens after it returns; the database reads run on
# aiosqlite's thread and count in wall time only.
HANDLER: list[tuple[float, float]] = []


@web.middleware
async def server_side(request: web.Request, handler):
    w0, c0 = time.perf_counter(), time.thread_time()
    try:
        return await handler(request)
    finally:
        HANDLER.append((time.perf_counter() - w0, time.thread_time() - c0))


VIEWS = [
    "/",
    "/?status=down",
    "/?tag=db",
    "/?q=backup",
    "/?page=2",
    "/?status=up&page=50",
]


async def measure(
    client: TestClient, path: str, repeat: int, profile: cProfile.Profile | None
) -> dict[str, float]:
    clock = Clock()
    probe = LoopLag(clock, interval=0.002, warn_above=3600.0)
    task = asyncio.ensure_future(probe.run())
    walls, cpus, size = [], [], 0
    HANDLER.clear()
    try:
        await asyncio.sleep(0.01)
        probe.reset_worst()
        for _ in range(repeat):
            if profile is not None:
                profile.enable()
            w0, c0 = time.perf_counter(), time.process_time()
            resp = await client.get(path)
            body = await resp.read()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            if profile is not None:
                profile.disable()
            if resp.status != 200:
                raise SystemExit(f"GET {path}: {resp.status} {body[:200]!r}")
            size = len(body)
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return {
        "wall_ms": statistics.median(walls) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
        "handler_wall_ms": statistics.median(h[0] for h in HANDLER) * 1000,
        "handler_cpu_ms": statistics.median(h[1] for h in HANDLER) * 1000,
        "handler_cpu_min_ms": min(h[1] for h in HANDLER) * 1000,
        "kb": size / 1000,
        "stall_ms": probe.worst * 1000,
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hb-page-") as tmp:
        db = Path(tmp) / "hb.db"
        config_path = Path(tmp) / "heartbeatd.toml"
        config_path.write_text(config_text(args.monitors, db))
        clock = Clock()
        now = clock.now()
        t0 = time.perf_counter()
        # Store.open creates the schema; the rows go in before the engine reads them.
        store = await Store.open(db, synchronous="normal", clock=clock)
        await store.close()
        fill(db, args.monitors, now)
        config = load_config(config_path)
        store = await Store.open(db, synchronous="normal", clock=clock)
        try:
            engine = Engine(config, store)
            await engine.recover(clock.now())
            await store.flush()
            # As the daemon does after start-up: the config and states frozen,
            # so the collector does not walk them during a request.
            release_memory()

            async def healthy() -> None:
                return None

            counts = engine.roster.counts()
            print(
                f"{args.monitors:,} monitors ready in {time.perf_counter() - t0:.1f} s:"
                f" {', '.join(f'{n:,} {s.value}' for s, n in counts.items())}",
                flush=True,
            )
            down = engine.roster.page(status=next(iter(counts))).slugs[0]
            views = [*VIEWS, f"/monitors/{down}"]
            profile = cProfile.Profile() if args.cprofile else None
            app = make_app(engine, clock, health=healthy)
            app.middlewares.append(server_side)
            async with TestClient(TestServer(app)) as client:
                # One round first: templates compile, caches fill.
                for path in views:
                    await measure(client, path, 1, None)
                print(
                    f"{'':<26}{'- request -':>16}{'- handler -':>24}\n"
                    f"{'view':<26}{'wall ms':>8}{'cpu ms':>8}{'wall ms':>8}{'cpu ms':>8}"
                    f"{'min':>8}{'KB':>6}{'worst stall ms':>16}"
                )
                for path in views:
                    r = await measure(client, path, args.repeat, profile)
                    print(
                        f"{path:<26}{r['wall_ms']:>8.1f}{r['cpu_ms']:>8.1f}"
                        f"{r['handler_wall_ms']:>8.1f}{r['handler_cpu_ms']:>8.1f}"
                        f"{r['handler_cpu_min_ms']:>8.1f}"
                        f"{r['kb']:>6.0f}{r['stall_ms']:>16.1f}",
                        flush=True,
                    )
            if profile is not None:
                profile.dump_stats(args.cprofile)
                print(f"profile written to {args.cprofile}")
        finally:
            await store.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--monitors", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=7, help="requests per view (median shown)")
    p.add_argument("--cprofile", metavar="FILE", help="profile the measured requests into FILE")
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}", flush=True)
    asyncio.run(main(args))
