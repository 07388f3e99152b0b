"""The daemon's lifecycle: startup() -> main_loop() -> shutdown().

No signal handling here: the CLI turns SIGTERM/SIGINT into `stop` and SIGHUP
into `reload`, so tests can run the whole daemon in-process with events.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import resource
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from heartbeatd import __version__, humanize
from heartbeatd.addresses import split_address
from heartbeatd.clock import Clock
from heartbeatd.config import Config, load_config, reload_problem
from heartbeatd.durations import format_duration
from heartbeatd.engine import Engine
from heartbeatd.lockfile import DatabaseLock
from heartbeatd.outbox import Outbox
from heartbeatd.store import Store, StoreError
from heartbeatd.systemd import (
    APPLIED,
    REJECTED,
    RELOADING,
    STARTED,
    Notifier,
    ReloadStatus,
    force_request_path,
    reload_status_path,
    take_forced_reload,
    watchdog_interval,
    write_reload_status,
)
from heartbeatd.tables import ConfigError
from heartbeatd.times import isoformat, parse_isoformat
from heartbeatd.web import make_app

log = logging.getLogger(__name__)

# A wall clock that moves this much more (or less) than the monotonic clock
# between two ticks was stepped (NTP, a suspended VM, a hand-set date).
CLOCK_JUMP = 30.0
# How often the daemon records that it is alive, to tell later how long it was down.
ALIVE_EVERY = 30.0
TRIM_EVERY = 600.0
# The ticker wakes when the wheel's next slot comes due, and at least this often:
# the heartbeat that clock-jump detection, health and the watchdog rely on, and
# the bound on how late it notices a deadline a ping moved earlier meanwhile.
TICK_EVERY = 1.0
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


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one: every connection is a
    file descriptor, and the usual soft limit (1024) is a few idle clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            # E.g. a seccomp filter that refuses setrlimit (systemd's @resources).
            log.warning("open files limit not raised limit=%d hard=%d error=%s", soft, hard, exc)
            return
    log.debug("open files limit=%d", resource.getrlimit(resource.RLIMIT_NOFILE)[0])


# glibc's mallopt() parameter, and the size from which a block gets a mapping
# of its own, returned to the system as soon as it is freed.
M_MMAP_THRESHOLD = -3
BIG_BLOCK = 1024 * 1024


def return_big_blocks() -> None:
    """Map every block of 1 MiB or more on its own (glibc only).

    A ping body of up to 10 MiB passes through a few such blocks (the read
    buffer, its text, SQLite's record) and is freed once stored. By default
    glibc raises its threshold after the first one is freed, so later bodies
    come from the heap and stay resident: tens of MB kept for nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, BIG_BLOCK)


@dataclass
class Reloads:
    ok: int = 0
    failed: int = 0
    last_at: datetime | None = None
    last_ok: bool = True
    # Reloads begun since start: `heartbeatd reload` waits for a higher one.
    generation: int = 0


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
        sockets = await _bind_all(self.config.server.listen)
        try:
            # Before anything is written: a second daemon on this database
            # would run every deadline again and send every alert twice.
            self.lock = DatabaseLock.acquire(storage.path)
        except BaseException:
            _close_all(sockets)
            raise
        try:
            self.store = await Store.open(
                storage.path, synchronous=storage.synchronous, clock=self.clock
            )
        except BaseException:
            _close_all(sockets)
            self.lock.release()
            raise
        try:
            await self._report_downtime()
            released = await self.store.release_claims()
            if released:
                log.warning("alerts interrupted mid-send will be sent again count=%d", released)
            self.engine = Engine(self.config, self.store)
            await self.engine.recover(self.clock.now())
            # Parsing the config and loading states leave much garbage behind.
            release_memory()
            self.outbox = Outbox(
                self.store,
                self.clock,
                channels=self.config.channels,
                monitors=self.config.monitors,
                give_up_after=self.config.alerts.give_up_after,
                send_timeout=self.config.alerts.send_timeout,
            )
            self.engine.on_alert = self.outbox.wake
            app = make_app(
                self.engine,
                self.clock,
                health=self.health,
                outbox=self.outbox,
                reloads=self.reloads,
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
            _close_all(sockets)
            await self.store.close()
            self.lock.release()
            raise
        self._spawn(self._ticker(), "ticker")
        self._spawn(self._housekeeping(), "housekeeping")
        self._spawn(self.outbox.run(self._outbox_stop), "outbox")
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
            self._report_reload(
                ReloadStatus(
                    os.getpid(),
                    reloads.generation,
                    RELOADING,
                    forced,
                    monitors=len(self.config.monitors),
                )
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
            new = await asyncio.to_thread(load_config, self.path, self.config)
            problem = None if forced else reload_problem(self.config, new)
            if problem is not None:
                raise ConfigError([problem])
        except ConfigError as exc:
            for line in exc.problems:
                log.error("reload rejected, keeping the running config: %s", line)
            self._reload_done(forced, errors=exc.problems)
            return
        for what in _needs_restart(self.config, new):
            log.warning("reload cannot change %s; restart heartbeatd to apply it", what)
        diff = self.engine.apply_config(new, self.clock.now())
        self.outbox.set_channels(new.channels, new.monitors)
        self.config = new
        log.info(
            "config reloaded monitors=%d added=%s removed=%s changed=%s forced=%s",
            len(new.monitors),
            _some(diff["added"]),
            _some(diff["removed"]),
            _some(diff["changed"]),
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
        reloads = self.reloads
        if errors:
            reloads.failed += 1
            reloads.last_ok = False
        else:
            reloads.ok += 1
            reloads.last_ok = True
        diff = diff or {}
        self._report_reload(
            ReloadStatus(
                os.getpid(),
                reloads.generation,
                REJECTED if errors else APPLIED,
                forced,
                monitors=len(self.config.monitors),
                added=len(diff.get("added", ())),
                removed=len(diff.get("removed", ())),
                changed=len(diff.get("changed", ())),
                errors=tuple(errors or ()),
            )
        )

    def _start_reload_status(self) -> None:
        # A --force left by a `heartbeatd reload` that never saw its reload
        # must not carry over to a reload of this run.
        if take_forced_reload(force_request_path(self.store.path)):
            log.info("dropped a forced reload request made before this start")
        self._report_reload(
            ReloadStatus(os.getpid(), 0, STARTED, monitors=len(self.config.monitors))
        )

    def _report_reload(self, status: ReloadStatus) -> None:
        at = isoformat(self.clock.now()) or ""
        path = reload_status_path(self.store.path)
        try:
            write_reload_status(path, replace(status, at=at))
        except OSError as exc:
            # `heartbeatd reload` then times out and points at this log.
            log.error("cannot write the reload status path=%s error=%s", path, exc)

    # -- background tasks ---------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _ticker(self) -> None:
        wall, mono = self.clock.now(), self.clock.monotonic()
        while True:
            now, now_mono = self.clock.now(), self.clock.monotonic()
            drift = (now - wall).total_seconds() - (now_mono - mono)
            if drift > CLOCK_JUMP:
                log.warning("wall clock jumped forward seconds=%d; deadlines get grace", drift)
                self.engine.forgive(now)
                self.outbox.clock_stepped(drift)
            elif drift < -CLOCK_JUMP:
                log.warning("wall clock jumped back seconds=%d", -drift)
                self.outbox.clock_stepped(drift)
            wall, mono = now, now_mono
            self.engine.tick(now)
            self._last_tick = now_mono
            # Sleep until the wheel's next slot comes due, or for the heartbeat.
            # A slot the tick left due (the state machine kept a passed
            # deadline) waits for the heartbeat rather than spinning. Waking a
            # hair early (the loop's clock vs the wall clock) only costs an
            # empty tick and a short second sleep, never a missed slot.
            due = self.engine.wheel.next_due()
            delay = TICK_EVERY
            if due is not None and due > now.timestamp():
                delay = min(due - now.timestamp(), TICK_EVERY)
            await self.clock.sleep(delay)

    async def _housekeeping(self) -> None:
        since_trim = TRIM_EVERY - 30.0
        while True:
            try:
                await self.store.set_meta("last_alive", self.clock.now().isoformat())
                if since_trim >= TRIM_EVERY:
                    since_trim = 0.0
                    await self._trim()
            except StoreError as exc:
                log.error("housekeeping failed error=%s", exc)
            await self.clock.sleep(ALIVE_EVERY)
            since_trim += ALIVE_EVERY

    async def _trim(self) -> None:
        """Retention: old pings, flips and finished alerts, in short transactions
        on the writer's thread, so pings in between wait for one batch at most."""
        storage = self.config.storage
        pings = await self.store.trim_pings(storage.ping_history)
        flips = await self.store.prune_flips(storage.flip_history)
        before = self.clock.now() - timedelta(seconds=storage.outbox_retention)
        alerts = await self.store.prune_outbox(before)
        if pings or flips or alerts:
            log.info("old history trimmed pings=%d flips=%d alerts=%d", pings, flips, alerts)

    async def _watchdog(self, interval: float) -> None:
        while True:
            # Only a loop that still ticks is alive; a stalled ticker lets
            # systemd's watchdog restart us.
            if self.clock.monotonic() - self._last_tick < STALL_AFTER:
                self.notifier.watchdog()
            await self.clock.sleep(interval)

    async def _report_downtime(self) -> None:
        last = parse_isoformat(await self.store.get_meta("last_alive"))
        if last is None:
            return
        gap = self.clock.now() - last
        if gap > timedelta(seconds=2 * ALIVE_EVERY):
            log.warning(
                "heartbeatd itself was not running for about %s (last alive %s); "
                "deadlines that passed meanwhile get their grace period again",
                format_duration(gap.total_seconds()),
                isoformat(last),
            )

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


# Cron jobs fire on the minute, all at once: a short listen backlog would
# drop their connection attempts for a second.
LISTEN_BACKLOG = 1024


async def _bind_all(listen: tuple[str, ...]) -> list[socket.socket]:
    """Listening sockets for every [server] listen address, all or none.

    An error reads as aiohttp's own did: "error while attempting to bind on
    address ('127.0.0.1', 8080): address already in use".
    """
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []
    try:
        for address in listen:
            host, port = split_address(address)
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            # One socket per distinct address ("localhost" may give ::1 and 127.0.0.1).
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    # Else [::]:8080 also takes 0.0.0.0:8080 from another listen line.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(addr)
                except OSError as exc:
                    reason = (exc.strerror or str(exc)).lower()
                    message = f"error while attempting to bind on address {addr!r}: {reason}"
                    raise OSError(exc.errno, message) from None
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
    except BaseException:
        _close_all(sockets)
        raise
    return sockets


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def _needs_restart(old: Config, new: Config) -> list[str]:
    changed = []
    if old.server.listen != new.server.listen:
        changed.append("server.listen")
    if old.storage.path != new.storage.path:
        changed.append("storage.path")
    if old.storage.synchronous != new.storage.synchronous:
        changed.append("storage.synchronous")
    return changed


def _some(slugs: list[str], most: int = 10) -> str:
    """A log field listing slugs: "-" for none, the first ten and a count after."""
    if not slugs:
        return "-"
    shown = ",".join(slugs[:most])
    return shown if len(slugs) <= most else f"{shown},(+{len(slugs) - most} more)"


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc only).

    Without malloc_trim, memory freed after a big config load stays in the
    process and RSS only ever ratchets up across reloads. What is left is the
    config and the states, long-lived: frozen, so the collector stops walking
    a million objects again and again.
    """
    gc.collect()
    gc.freeze()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


async def run(
    path: str | Path,
    clock: Clock,
    stop: asyncio.Event,
    reload: asyncio.Event,
    *,
    notifier: Notifier | None = None,
) -> None:
    await Daemon(path, clock, stop, reload, notifier=notifier).run()
