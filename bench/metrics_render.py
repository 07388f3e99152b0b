"""/metrics at N monitors, three ways, in one process: what each costs the loop.

    python bench/metrics_render.py --monitors 100000

  one piece:   render_metrics in one call on the loop (how it was): the stall
               is the whole render.
  sliced:      render_pieces with the loop let go every slices.SLICE seconds
               of work (what /metrics does): the worst slice, and the total.
  thread:      render_metrics in a worker thread: the loop is not blocked,
               but holds the GIL only part of the time; the stall meter
               (looplag.LoopLag, 5 ms) measures what the loop sees.

Then the CPU of one whole page (time.process_time, the best of three):
the figure to compare across machines and runs, where wall times on a
shared machine are not.

The engine is real (config parsed, states recovered on a temporary SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from pathlib import Path

from heartbeatd import metrics
from heartbeatd.clock import Clock
from heartbeatd.config import load_config
from heartbeatd.engine import Engine
from heartbeatd.looplag import LoopLag
from heartbeatd.slices import SLICE
from heartbeatd.store import Store
from heartbeatd.web.scrape import _Table


def snapshot(engine: Engine, per_monitor: bool = True) -> metrics.Snapshot:
    return metrics.Snapshot(
        monitors=_Table(engine.config, engine.states, Clock().now()),
        pings_by_kind={},
        alerts_sent={},
        alerts_failed={},
        version="bench",
        python="bench",
        per_monitor=per_monitor,
    )


async def probe_while(clock: Clock, work) -> tuple[float, float]:
    lag = LoopLag(clock, interval=0.005, warn_above=1e9)
    task = asyncio.ensure_future(lag.run())
    await clock.sleep(0.02)
    lag.reset_worst()
    t0 = time.perf_counter()
    await work()
    took = time.perf_counter() - t0
    # Let the meter wake up once more: it notes a stall when it next runs.
    await clock.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return lag.worst, took


async def main(n: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hb-metrics-"))
    path = workdir / "hb.toml"
    path.write_text(
        '[storage]\npath = "hb.db"\nsynchronous = "normal"\n'
        + "".join(f'[monitors.m{i:06d}]\nperiod = "1h"\n' for i in range(n))
    )
    clock = Clock()
    config = load_config(path)
    store = await Store.open(config.storage.path, synchronous="normal", clock=clock)
    engine = Engine(config, store)
    await engine.recover(clock.now())
    print(f"{n} monitors")

    async def one_piece() -> None:
        metrics.render_metrics(snapshot(engine))

    async def sliced() -> None:
        worst = 0.0
        slices = 0
        t = time.perf_counter()
        for _ in metrics.render_pieces(snapshot(engine)):
            now = time.perf_counter()
            if now - t >= SLICE:
                worst = max(worst, now - t)
                slices += 1
                await clock.sleep(0)
                t = time.perf_counter()
        print(f"  sliced: {slices} slices, worst {worst * 1000:.1f} ms")

    async def thread() -> None:
        await asyncio.to_thread(metrics.render_metrics, snapshot(engine))

    async def aggregate() -> None:
        for _ in metrics.render_pieces(snapshot(engine, per_monitor=False)):
            await clock.sleep(0)

    for name, work in (
        ("one piece", one_piece),
        ("sliced", sliced),
        ("thread", thread),
        ("per_monitor=false", aggregate),
    ):
        worst, took = await probe_while(clock, work)
        print(f"{name:<18} total {took * 1000:7.0f} ms   worst loop stall {worst * 1000:6.1f} ms")
    for per_monitor in (True, False):
        cpu = []
        for _ in range(3):
            t0 = time.process_time()
            size = sum(len(p) for p in metrics.render_pieces(snapshot(engine, per_monitor)))
            cpu.append(time.process_time() - t0)
        print(
            f"per_monitor={str(per_monitor).lower():<5}  page {size / 1e6:5.1f} MB, "
            f"CPU {min(cpu):.3f} s (best of 3, no waits)"
        )
    await store.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--monitors", type=int, default=100_000)
    asyncio.run(main(p.parse_args().monitors))
