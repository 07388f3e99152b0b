"""heartbeatd's parts in the test's own loop, on a FakeClock.

`open_stack` builds config -> store -> engine as the daemon does, and
`Stack.app()` the web application on them; `start_daemon` runs the whole
daemon (startup only: the test drives it). Both take the test's FakeClock, so
a test moves time with `clock.advance()` and never sleeps for a deadline.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from heartbeatd.clock import FakeClock
from heartbeatd.config import Config, load_config
from heartbeatd.daemon import DELIVERY_DRAIN, Daemon
from heartbeatd.engine import Engine
from heartbeatd.store import Store
from heartbeatd.systemd import Notifier
from heartbeatd.web import make_app
from tests.harness.net import POLL

T = TypeVar("T")

# Real seconds within which something a clock step set off must end.
PROMPT = 5.0


async def healthy() -> None:
    """A health check that finds nothing wrong."""
    return None


@dataclass
class Stack:
    """A config file, its store and its engine (recovered), as the daemon builds them."""

    path: Path
    config: Config
    store: Store
    engine: Engine
    clock: FakeClock

    def app(self, **kwargs: Any) -> web.Application:
        """The daemon's web application on this engine (healthy unless `health=` says)."""
        kwargs.setdefault("health", healthy)
        return make_app(self.engine, self.clock, **kwargs)

    async def close(self) -> None:
        await self.store.close()


async def open_stack(path: Path, clock: FakeClock) -> Stack:
    config = load_config(path)
    store = await Store.open(
        config.storage.path, synchronous=config.storage.synchronous, clock=clock
    )
    try:
        engine = Engine(config, store)
        await engine.recover(clock.now())
    except BaseException:
        await store.close()
        raise
    return Stack(path, config, store, engine, clock)


# -- the whole daemon -------------------------------------------------------------------


async def start_daemon(path: Path, clock: FakeClock, *, notifier: Notifier | None = None) -> Daemon:
    """A daemon past startup(): listening, ticking and delivering on `clock`."""
    daemon = Daemon(
        path, clock, asyncio.Event(), asyncio.Event(), notifier=notifier or Notifier("")
    )
    await daemon.startup()
    return daemon


_stopped: weakref.WeakSet[Daemon] = weakref.WeakSet()


async def stop_daemon(daemon: Daemon, clock: FakeClock) -> None:
    """shutdown(), once; its bounded waits run on `clock`, which moves only if they must."""
    if daemon in _stopped:
        return
    _stopped.add(daemon)
    stopping = asyncio.ensure_future(daemon.shutdown())
    done, _ = await asyncio.wait({stopping}, timeout=POLL)
    if not done:
        # A delivery still under way: past the drain time it is cut.
        await advance_until_done(clock, stopping, DELIVERY_DRAIN)
    stopping.result()


async def settle(daemon: Daemon) -> None:
    """Let the daemon's tasks run what the last clock step woke up, and
    wait until what they wrote is committed."""
    for _ in range(20):
        await asyncio.sleep(0)
    await daemon.store.flush()


# -- moving the clock ----------------------------------------------------------------


async def advance_until_done(
    clock: FakeClock, task: asyncio.Future[T], step: float, *, within: float = PROMPT
) -> None:
    """Move `clock` by `step` until `task` ends, within `within` seconds of real time.

    A timeout set a moment after the first step still ends with the next one.
    """
    for _ in range(max(1, round(within / POLL))):
        clock.advance(step)
        done, _ = await asyncio.wait({task}, timeout=POLL)
        if done:
            return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise AssertionError(f"still running after {within:g}s of real time")
