"""What the daemon's own chores cost the event loop at N monitors, in-process.

    python bench/loop_work.py --monitors 100000

A real Daemon (startup() on a real Clock, a temporary SQLite, a loopback
port). For each chore, the worst stall its own meter (looplag.LoopLag) saw,
and the time of the parts that run on the loop:

  reload        apply_reload() of the unchanged file: parse in a thread, then
                on the loop Engine.apply_config (the diff by slug), the outbox's
                channel swap, and release_memory (gc.collect + freeze + malloc_trim)
  trim          housekeeping.trim (pings, flips, outbox retention)
  every state new  each monitor pinged once (50 at a time): its state becomes
                a new object that start-up's gc.freeze() does not cover; the
                collector's longest pass by generation, and one full collect
  outbox count  the old GROUP BY over the whole outbox vs the pending count
                (with --outbox finished rows in the table)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from harness import free_port

from heartbeatd import process
from heartbeatd.clock import Clock
from heartbeatd.config import load_config
from heartbeatd.daemon import Daemon
from heartbeatd.housekeeping import trim
from heartbeatd.model import Ping, PingKind
from heartbeatd.reloadplan import plan_reload
from heartbeatd.systemd import Notifier


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hb-loop-work-"))
    path = workdir / "hb.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\n[storage]\npath = "hb.db"\n'
        + "".join(f'[monitors.m{i:06d}]\nperiod = "1h"\n' for i in range(args.monitors))
    )
    clock = Clock()
    daemon = Daemon(path, clock, asyncio.Event(), asyncio.Event(), notifier=Notifier(""))
    t0 = time.perf_counter()
    await daemon.startup()
    print(f"{args.monitors} monitors; startup() {time.perf_counter() - t0:.2f} s")
    lag = daemon.loop_lag
    # The longest garbage collection of each generation: it holds the GIL,
    # in whichever thread it runs.
    gc_worst = [0.0, 0.0, 0.0]
    gc_started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gen = info["generation"]
            gc_worst[gen] = max(gc_worst[gen], time.perf_counter() - gc_started[0])

    gc.callbacks.append(on_gc)
    await clock.sleep(0.5)
    lag.reset_worst()

    t0 = time.perf_counter()
    await daemon.apply_reload()
    took = time.perf_counter() - t0
    await clock.sleep(0.05)
    print(f"reload           total {ms(took)}  worst stall {ms(lag.reset_worst())}")
    print("  longest gc by generation: " + ", ".join(ms(t) for t in gc_worst))
    engine = daemon.engine
    t0 = time.perf_counter()
    new = await asyncio.to_thread(load_config, path, daemon.config)
    print(f"  load_config in a thread        {ms(time.perf_counter() - t0)}")
    t0 = time.perf_counter()
    plan = plan_reload(engine.config, new, list(engine.states))
    print(f"  plan_reload (in a thread)      {ms(time.perf_counter() - t0)}")
    t0 = time.perf_counter()
    engine.apply_config(new, clock.now(), plan)
    print(f"  apply_config with the plan     {ms(time.perf_counter() - t0)}")
    daemon.config = new
    t0 = time.perf_counter()
    daemon.outbox.set_channels(engine.config.channels, engine.config.monitors)
    print(f"  outbox.set_channels            {ms(time.perf_counter() - t0)}")
    t0 = time.perf_counter()
    process.release_memory()
    print(f"  release_memory                 {ms(time.perf_counter() - t0)}")
    await clock.sleep(0.05)

    lag.reset_worst()
    t0 = time.perf_counter()
    await trim(daemon.store, clock, daemon.config.storage)
    took = time.perf_counter() - t0
    await clock.sleep(0.05)
    print(f"trim             total {ms(took)}  worst stall {ms(lag.reset_worst())}")

    # Every monitor pinged once, 50 at a time: each state is replaced by a new
    # object that start-up's gc.freeze() does not cover, so the collector's
    # full passes walk them all again.
    lag.reset_worst()
    gc_worst[:] = [0.0, 0.0, 0.0]
    t0 = time.perf_counter()
    slugs = list(engine.config.monitors)
    for start in range(0, len(slugs), 50):
        await asyncio.gather(
            *(engine.handle_ping(slug, turnover_ping(clock)) for slug in slugs[start : start + 50])
        )
    took = time.perf_counter() - t0
    await clock.sleep(0.05)
    print(f"every state new  total {ms(took)}  worst stall {ms(lag.reset_worst())}")
    print("  longest gc by generation: " + ", ".join(ms(t) for t in gc_worst))
    t0 = time.perf_counter()
    gc.collect()
    print(f"  one full gc.collect() after  {ms(time.perf_counter() - t0)}")

    await asyncio.to_thread(fill_outbox, daemon.store.path, args.outbox)
    for name, read in (
        ("GROUP BY state", daemon.store.outbox_counts),
        ("pending only", daemon.store.outbox_pending),
    ):
        t0 = time.perf_counter()
        await read()
        print(f"outbox count ({args.outbox} rows) {name:<15} {ms(time.perf_counter() - t0)}")
    daemon.stop.set()
    await daemon.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)


def turnover_ping(clock: Clock) -> Ping:
    return Ping(
        kind=PingKind.SUCCESS,
        at=clock.now(),
        method="GET",
        remote_addr="127.0.0.1",
        user_agent="curl/8.5.0",
        body="",
    )


def fill_outbox(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO outbox (monitor, channel, event, payload, state, created_at,"
        " next_attempt_at, finished_at) VALUES (?, 'ops', 'down', '{}', 'sent', ?, ?, ?)",
        [("m000001", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z")]
        * rows,
    )
    db.commit()
    db.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--monitors", type=int, default=100_000)
    p.add_argument("--outbox", type=int, default=200_000)
    asyncio.run(main(p.parse_args()))
