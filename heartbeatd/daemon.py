"""The daemon's lifecycle: startup() -> main_loop() -> shutdown().

No signal handling here: the CLI turns SIGTERM/SIGINT into `stop` and SIGHUP
into `reload`, so tests can run the whole daemon in-process with events.
What it asks of the process is in process.py, the reload's counters and status
file in reloading.py, the alive record and retention in housekeeping.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from heartbeatd import __version__, humanize
from heartbeatd.clock import Clock
from heartbeatd.config import Config, load_config
from heartbeatd.config.files import gc_paused
from heartbeatd.engine import Engine
from heartbeatd.gaps import notice_downtime, notice_jump
from heartbeatd.housekeeping import housekeeping, report_downtime
from heartbeatd.lockfile import DatabaseLock
from heartbeatd.looplag import LoopLag
from heartbeatd.outbox import Outbox
from heartbeatd.process import (
    LISTEN_BACKLOG,
    bind_all,
    close_all,
    raise_fd_limit,
    release_memory,
    return_big_blocks,
)
from heartbeatd.provision import Provisioner, merge
from heartbeatd.reloading import (
    Reloads,
    count_reload,
    needs_restart,
    plan_file_reload,
    report_reload,
    some,
)
from heartbeatd.selfping import SelfPing
from heartbeatd.silence import SilenceWatch
from heartbeatd.store import Store, StoreError
from heartbeatd.systemd import (
    RELOADING,
    STARTED,
    Notifier,
    ReloadStatus,
    force_request_path,
    take_forced_reload,
    watchdog_interval,
)
from heartbeatd.tables import ConfigError
from heartbeatd.ticking import tick_forever
from heartbeatd.web import make_app

log = logging.getLogger(__name__)

# The ticker runs every second; a health check older than this is a stalled loop.
STALL_AFTER = 10.0
# Bounds on shutdown (DESIGN: exit within 5 s of SIGTERM).
HTTP_DRAIN = 2.0
DELIVERY_DRAIN = 1.5
# /healthz answers 503 when the database takes longer than this to take a write.
HEALTH_WRITE_TIMEOUT = 5.0
# aiohttp closes a connection that has sat this long without a whole request
# (its default is an hour). From aiohttp 3.14.4 the timer runs from the moment
# a connection opens, so it also cuts off a client that never finishes its
# headers (slowloris). 75 s is nginx's client keep-alive default and outlasts
# nginx's upstream keep-alive (60 s), so a proxy in front closes idle ones first.
KEEPALIVE_TIMEOUT = 75.0


class Daemon:
    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        stop: asyncio.Event,
        reload: asyncio.Event,
        *,
        notifier: Notifier | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.stop = stop
        self.reload = reload
        self.notifier = notifier or Notifier()
        self.reloads = Reloads()
        # The event loop's stall meter, shown in /metrics.
        self.loop_lag = LoopLag(clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_tick = clock.monotonic()
        self._outbox_stop = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        await self.startup()
        try:
            await self.main_loop()
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        # The config and the states of 100,000 monitors are a million objects
        # and no cycles. Each automatic collection on the way would walk them
        # again, and the first one after a pause all of them; the collector
        # stays off until they are frozen (release_memory) and out of its way.
        with gc_paused():
            await self._start()

    async def _start(self) -> None:
        # Raises ConfigError before anything is opened: a bad file at start-up
        # is the CLI's to report.
        self.config: Config = load_config(self.path)
        raise_fd_limit()
        return_big_blocks()
        storage = self.config.storage
        # The ports first: a port in use is the commonest start-up failure,
        # and must not leave the database locked, opened or migrated by a
        # daemon that then exits. Until the server starts, the kernel queues
        # connections on these sockets.
        sockets = await bind_all(self.config.server.listen)
        try:
            # Before anything is written: a second daemon on this database
            # would run every deadline again and send every alert twice.
            self.lock = DatabaseLock.acquire(storage.path)
        except BaseException:
            close_all(sockets)
            raise
        try:
            self.store = await Store.open(
                storage.path, synchronous=storage.synchronous, clock=self.clock
            )
        except BaseException:
            close_all(sockets)
            self.lock.release()
            raise
        try:
            await report_downtime(self.store, self.clock)
            await notice_downtime(self.store, self.config, self.clock.now())
            released = await self.store.release_claims()
            if released:
                log.warning("alerts interrupted mid-send will be sent again count=%d", released)
            # The file's monitors plus those created through the API (provision.py).
            definitions = await Provisioner.load(self.store)
            self.config = merge(self.config, definitions)
            self.engine = Engine(self.config, self.store)
            self.provisioner = Provisioner(self.engine, definitions)
            await self.engine.recover(self.clock.now())
            # What the config and the states leave is long-lived: frozen.
            release_memory(collect=False)
            self.outbox = Outbox(
                self.store,
                self.clock,
                channels=self.config.channels,
                monitors=self.config.monitors,
                give_up_after=self.config.alerts.give_up_after,
                send_timeout=self.config.alerts.send_timeout,
            )
            self.engine.on_alert = self.outbox.wake
            self.silence = SilenceWatch(
                self.engine, self.clock, lambda: self.config, self.outbox.wake
            )
            self.engine.on_ping = self.silence.pinged
            app = make_app(
                self.engine,
                self.clock,
                health=self.health,
                outbox=self.outbox,
                reloads=self.reloads,
                loop_lag=self.loop_lag,
                provisioner=self.provisioner,
            )
            self.runner = web.AppRunner(
                app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=HTTP_DRAIN,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
            )
            await self.runner.setup()
            for sock in sockets:
                site = web.SockSite(self.runner, sock, backlog=LISTEN_BACKLOG)
                await site.start()
        except BaseException:
            # The runner's cleanup closes the sockets it serves; these are the rest.
            close_all(sockets)
            await self.store.close()
            self.lock.release()
            raise
        self._spawn(self._ticker(), "ticker")
        self._spawn(
            housekeeping(self.store, self.clock, lambda: self.config.storage), "housekeeping"
        )
        self._spawn(self.outbox.run(self._outbox_stop), "outbox")
        self._spawn(self.loop_lag.run(), "loop-lag")
        self._spawn(self.silence.run(), "silence")
        if self.config.selfping.ping_url is not None:
            selfping = SelfPing(
                self.store, self.clock, lambda: self.config.selfping, lambda: self._last_tick
            )
            self._spawn(selfping.run(), "selfping")
        interval = watchdog_interval()
        if interval:
            self._spawn(self._watchdog(interval), "watchdog")
        listen = ", ".join(self.config.server.listen)
        log.info(
            "started version=%s monitors=%d listen=%s db=%s",
            __version__,
            len(self.config.monitors),
            listen,
            storage.path,
        )
        self._start_reload_status()
        self.notifier.ready(self._status_line())

    async def main_loop(self) -> None:
        while not self.stop.is_set():
            stop = asyncio.ensure_future(self.stop.wait())
            reload = asyncio.ensure_future(self.reload.wait())
            try:
                await asyncio.wait([stop, reload], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                reload.cancel()
            if self.reload.is_set() and not self.stop.is_set():
                self.reload.clear()
                await self.apply_reload()

    async def shutdown(self) -> None:
        self.notifier.stopping("stopping")
        log.info("stopping")
        # 1. Stop accepting connections; let in-flight pings finish (bounded).
        await self.runner.cleanup()
        # 2. Stop the ticker, housekeeping and watchdog.
        for task in self._tasks:
            if task.get_name() != "outbox":
                task.cancel()
        # 3. Give deliveries already under way a bounded moment; pending
        #    alerts stay in the outbox for the next start.
        self._outbox_stop.set()
        await self.clock.wait(self._tasks, DELIVERY_DRAIN)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # 4. Flush queued writes and close the database.
        with contextlib.suppress(StoreError):
            await self.store.set_meta("last_alive", self.clock.now().isoformat())
        await self.store.close()
        self.lock.release()
        log.info("stopped")

    # -- reload -------------------------------------------------------------------

    async def apply_reload(self) -> None:
        """Load the file again and swap it in, or keep the running config.

        Never raises: whatever the file holds, the daemon stays up.
        """
        self.notifier.reloading(int(self.clock.monotonic() * 1_000_000))
        reloads = self.reloads
        reloads.last_at = self.clock.now()
        reloads.generation += 1
        # Taken before the file is read: a request made later waits for the
        # next reload, which its SIGHUP will start.
        forced = take_forced_reload(force_request_path(self.store.path))
        try:
            report_reload(
                self.clock,
                self.store.path,
                ReloadStatus(
                    os.getpid(),
                    reloads.generation,
                    RELOADING,
                    forced,
                    monitors=len(self.config.monitors),
                ),
            )
            await self._reload(forced)
        except Exception as exc:
            # load_config words every problem with a file as a ConfigError;
            # anything else is a bug, and must still not end the daemon.
            log.error("reload failed: %r", exc, exc_info=True)
            error = f"{self.path}: reload failed: {exc!r} (a bug in heartbeatd; see its log)"
            self._reload_done(forced, errors=[error])
        self.notifier.ready(self._status_line())

    async def _reload(self, forced: bool) -> None:
        try:
            # Parsing 100,000 monitors takes a second or two: in a thread, so
            # the loop answers pings meanwhile. The running config stays in use
            # until the new one is whole; a SIGHUP meanwhile sets `reload`
            # again, and main_loop reloads once more after this one.
            from_file = await asyncio.to_thread(load_config, self.path, self.config)
        except ConfigError as exc:
            self._reload_rejected(forced, exc)
            return
        # Every write to the API monitors holds this lock: none can land
        # between the merge and the swap, while the comparison runs in a thread.
        async with self.provisioner.lock:
            # Merging and comparing 100,000 monitors takes longer than a ping
            # should wait: in a thread too. Both configs are immutable.
            new, plan, problem = await asyncio.to_thread(
                plan_file_reload,
                self.engine.config,
                from_file,
                dict(self.provisioner.definitions),
                list(self.engine.states),
                forced,
            )
            if problem is not None:
                self._reload_rejected(forced, ConfigError([problem]))
                return
            for what in needs_restart(self.config, new):
                log.warning("reload cannot change %s; restart heartbeatd to apply it", what)
            diff = self.engine.apply_config(new, self.clock.now(), plan)
        self._reload_swapped(new, forced, diff)

    def _reload_rejected(self, forced: bool, exc: ConfigError) -> None:
        for line in exc.problems:
            log.error("reload rejected, keeping the running config: %s", line)
        self._reload_done(forced, errors=exc.problems)

    def _reload_swapped(self, new: Config, forced: bool, diff: dict[str, list[str]]) -> None:
        self.outbox.set_channels(new.channels, new.monitors)
        self.config = new
        self.silence.config_changed()
        log.info(
            "config reloaded monitors=%d added=%s removed=%s changed=%s forced=%s",
            len(new.monitors),
            some(diff["added"]),
            some(diff["removed"]),
            some(diff["changed"]),
            "yes" if forced else "no",
        )
        self._reload_done(forced, diff=diff)
        release_memory()

    def _reload_done(
        self,
        forced: bool,
        *,
        errors: list[str] | None = None,
        diff: dict[str, list[str]] | None = None,
    ) -> None:
        status = count_reload(
            self.reloads, forced, len(self.config.monitors), errors=errors, diff=diff
        )
        report_reload(self.clock, self.store.path, status)

    def _start_reload_status(self) -> None:
        # A --force left by a `heartbeatd reload` that never saw its reload
        # must not carry over to a reload of this run.
        if take_forced_reload(force_request_path(self.store.path)):
            log.info("dropped a forced reload request made before this start")
        report_reload(
            self.clock,
            self.store.path,
            ReloadStatus(os.getpid(), 0, STARTED, monitors=len(self.config.monitors)),
        )

    # -- background tasks ---------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _ticker(self) -> None:
        def ticked() -> None:
            # Progress: the watchdog and /healthz see a loop that ticks.
            self._last_tick = self.clock.monotonic()

        await tick_forever(self.engine, self.clock, jumped=self._clock_jumped, ticked=ticked)

    def _clock_jumped(self, wall: datetime, now: datetime, drift: float) -> None:
        if drift > 0:
            log.warning("wall clock jumped forward seconds=%d; deadlines get grace", drift)
            notice_jump(self.store, self.config, self.engine.states, wall, now, self.outbox.wake)
            self.engine.forgive(now)
        else:
            log.warning("wall clock jumped back seconds=%d", -drift)
        self.outbox.clock_stepped(drift)

    async def _watchdog(self, interval: float) -> None:
        while True:
            # Only a loop that still ticks is alive; a stalled ticker lets
            # systemd's watchdog restart us.
            if self.clock.monotonic() - self._last_tick < STALL_AFTER:
                self.notifier.watchdog()
            await self.clock.sleep(interval)

    # -- health -------------------------------------------------------------------

    async def health(self) -> str | None:
        stalled = self.clock.monotonic() - self._last_tick
        if stalled > STALL_AFTER:
            return f"event loop stalled: no tick for {stalled:.0f}s"
        try:
            await self.clock.wait_for(
                self.store.set_meta("healthz", self.clock.now().isoformat()), HEALTH_WRITE_TIMEOUT
            )
        except asyncio.TimeoutError:
            # (Its text is empty: the reason is said here.)
            return f"database not writable: no answer within {HEALTH_WRITE_TIMEOUT:g}s"
        except StoreError as exc:
            return f"database not writable: {exc}"
        return None

    def _status_line(self) -> str:
        return f"watching {humanize.count(len(self.config.monitors), 'monitor')}"


async def run(
    path: str | Path,
    clock: Clock,
    stop: asyncio.Event,
    reload: asyncio.Event,
    *,
    notifier: Notifier | None = None,
) -> None:
    await Daemon(path, clock, stop, reload, notifier=notifier).run()
