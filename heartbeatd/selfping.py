"""The outbound self-heartbeat: [self] ping_url, every, stuck_after.

heartbeatd pings a check elsewhere (hc-ping.com, another heartbeatd, anything
speaking the Healthchecks protocol) every `every` while it is healthy, so
that something outside notices when it stops: the VPS lost, the process
stopped or hung. When it runs but is not healthy, it pings `<url>/fail` with
the reason as the body, and the other side alerts with the cause.

Healthy means all of:
- the database takes a write: a real one, through the store's writer;
- the event loop is not stalled: this loop's own timer fires on time;
- the timer wheel ticks: the daemon's ticker ran lately;
- the outbox is not stuck: no alert has been pending for `stuck_after`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from heartbeatd import humanize
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.channels.http import classify_status, fetch, host_of
from heartbeatd.clock import Clock
from heartbeatd.config import SelfPingConfig
from heartbeatd.store import Store, StoreError

log = logging.getLogger(__name__)

# One ping, and the health check's write, may take this long.
PING_TIMEOUT = 10.0
WRITE_TIMEOUT = 5.0
# A timer this late, or a ticker this quiet, is a stalled loop (the ticker
# runs every second; as the daemon's /healthz).
STALL_AFTER = 10.0


class SelfPing:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Callable[[], SelfPingConfig],
        last_tick: Callable[[], float],
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        # The running config's [self]: a reload's changes apply from the next ping.
        self._settings = settings
        # The monotonic time of the ticker's last tick.
        self._last_tick = last_tick
        self._session = session
        self._owns_session = session is None
        # The last health verdict (None: healthy) and whether the last ping
        # arrived, so only changes are logged.
        self._reason: str | None = None
        self._delivered = True

    async def run(self) -> None:
        """Ping every `every` seconds until cancelled."""
        try:
            lag = 0.0
            while True:
                await self.beat(lag)
                every = self._settings().every
                planned = self._clock.monotonic() + every
                await self._clock.sleep(every)
                # How late the timer fired: a loop blocked by something
                # (a long synchronous call, swapping) fires it late.
                lag = max(0.0, self._clock.monotonic() - planned)
        finally:
            if self._owns_session and self._session is not None:
                await self._session.close()

    async def beat(self, lag: float = 0.0) -> str | None:
        """Check health and ping (or /fail); the reason it is unhealthy, or None."""
        reason = await self.check(lag)
        if reason != self._reason:
            if reason is None:
                log.info("self check healthy again")
            else:
                log.warning("self check unhealthy reason=%s", _quoted(reason))
            self._reason = reason
        url = self._settings().ping_url
        if url is not None:
            await self._ping(url.reveal(), reason)
        return reason

    async def check(self, lag: float) -> str | None:
        """Why heartbeatd is not healthy, every reason at once; None if it is."""
        reasons = []
        if lag > STALL_AFTER:
            reasons.append(f"event loop stalled: a timer fired {lag:.0f}s late")
        quiet = self._clock.monotonic() - self._last_tick()
        if quiet > STALL_AFTER:
            reasons.append(f"timer wheel not ticking: no tick for {quiet:.0f}s")
        now = self._clock.now()
        try:
            await self._clock.wait_for(
                self._store.set_meta("self_check", now.isoformat()), WRITE_TIMEOUT
            )
        except asyncio.TimeoutError:
            reasons.append(f"database not writable: no answer within {WRITE_TIMEOUT:g}s")
        except StoreError as exc:
            reasons.append(f"database not writable: {exc}")
        try:
            oldest = await self._store.oldest_pending()
        except StoreError as exc:
            reasons.append(f"database not readable: {exc}")
        else:
            waited = (now - oldest).total_seconds() if oldest is not None else 0.0
            if waited > self._settings().stuck_after:
                reasons.append(
                    f"outbox stuck: an alert has been pending for {humanize.duration(waited)}"
                )
        return "; ".join(reasons) or None

    async def _ping(self, url: str, reason: str | None) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        ctx = SendContext(session=self._session, timeout=PING_TIMEOUT, clock=self._clock)
        try:
            if reason is None:
                status, _ = await fetch(ctx, "GET", url, what="self ping")
            else:
                # Healthchecks' protocol: /fail marks the check down; the
                # body is shown with it.
                fail = url.rstrip("/") + "/fail"
                status, _ = await fetch(
                    ctx,
                    "POST",
                    fail,
                    what="self ping",
                    data=reason.encode("utf-8"),
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
            error = classify_status(status, f"self ping to {host_of(url)}")
            if error is not None:
                raise error
        except DeliveryError as exc:
            if self._delivered:
                log.warning("self ping not delivered error=%s", exc)
            self._delivered = False
            return
        if not self._delivered:
            log.info("self ping delivered again")
        self._delivered = True


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
