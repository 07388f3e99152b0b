"""The silence alert: no ping of any kind for [alerts] silence, while
monitors were expected.

When every job goes quiet at once, the jobs are rarely all broken: more
often their pings cannot reach heartbeatd (a proxy, DNS, a TLS certificate,
a firewall). The monitors still go down one by one as usual; this one alert
says what they have in common, once, until a ping arrives again. That pings
resumed is logged, not alerted: the monitors' own `up` alerts say so.

A timer through the Clock: it sleeps until the silence would be long enough,
and if a ping came meanwhile, until the new end. No per-ping wake-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from heartbeatd import humanize
from heartbeatd.alerts import daemon_alert
from heartbeatd.announce import daemon_alerts
from heartbeatd.clock import Clock
from heartbeatd.config import Config
from heartbeatd.engine import Engine
from heartbeatd.model import AlertEvent, Status
from heartbeatd.store import StoreError
from heartbeatd.times import isoformat

log = logging.getLogger(__name__)

# Monitors named in the alert; the count says how many more there are.
LISTED = 20
# After the store failed to take the alert, try again this much later.
STORE_RETRY = 10.0


class SilenceWatch:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], Config],
        on_alert: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._on_alert = on_alert
        # Until the first ping, the silence counts from start-up.
        self._last_mono = clock.monotonic()
        self._pinged = False
        # True from the alert until the next ping.
        self.silent = False
        self._wake = asyncio.Event()

    def pinged(self) -> None:
        """A ping of any kind arrived (the engine's on_ping)."""
        # Only the time, on every ping: the timer looks at it when it ends.
        self._last_mono = self._clock.monotonic()
        self._pinged = True
        if self.silent:
            self.silent = False
            log.info("pings resumed after a silence")
            self._wake.set()

    def config_changed(self) -> None:
        """A reload may have turned the alert on, off, or changed its length."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            wait = self._next_wait()
            if wait is None:
                await self._wake.wait()
                continue
            if wait > 0:
                await self._sleep(wait)
                continue
            try:
                await self._alert()
            except StoreError as exc:
                log.error("silence alert not stored error=%s", exc)
                await self._sleep(STORE_RETRY)

    def _next_wait(self) -> float | None:
        """Seconds until the silence is long enough (<= 0: it is now); None:
        nothing to wait for but a ping or a reload."""
        after = self._config().alerts.silence
        if after is None or self.silent:
            return None
        silent_for = self._clock.monotonic() - self._last_mono
        if silent_for < after:
            return after - silent_for
        if not self._expected():
            # Nothing was due: silence is no news. Look again once the
            # earliest monitor is due, or after another `after`.
            return self._until_next_expected(after)
        return 0.0

    def _expected(self) -> list[str]:
        now = self._clock.now()
        config = self._config()
        return sorted(
            slug
            for slug, state in self._engine.states.items()
            if slug in config.monitors
            and state.status is not Status.PAUSED
            and state.expected_at is not None
            and state.expected_at <= now
        )

    def _until_next_expected(self, after: float) -> float:
        now = self._clock.now()
        due = [
            (state.expected_at - now).total_seconds()
            for state in self._engine.states.values()
            if state.expected_at is not None and state.expected_at > now
        ]
        return min([after, *due])

    async def _sleep(self, seconds: float) -> None:
        waiting = asyncio.ensure_future(self._wake.wait())
        try:
            await self._clock.wait({waiting}, seconds)
        finally:
            waiting.cancel()

    async def _alert(self) -> None:
        expected = self._expected()
        now = self._clock.now()
        silent_for = self._clock.monotonic() - self._last_mono
        # None: no ping since start-up.
        since = now - timedelta(seconds=silent_for) if self._pinged else None
        config = self._config()
        count = len(expected)
        monitors = "1 monitor" if count == 1 else f"{count} monitors"
        length = humanize.duration(_whole_minutes(silent_for))
        text = (
            f"no pings for {length}; {monitors} expected: the jobs may be fine but cannot"
            " reach heartbeatd — check the proxy, DNS, TLS, firewall"
        )
        alert = daemon_alert(
            AlertEvent.SILENCE,
            since=since,
            at=now,
            monitors=tuple(expected[:LISTED]),
            count=count,
            url=config.server.base_url,
            text=text,
        )
        alerts = daemon_alerts(config, alert)
        await self._engine.store.queue_daemon_event(alerts)
        self.silent = True
        self._on_alert()
        log.warning(
            "silence no_pings_since=%s seconds=%d expected=%d channels=%d",
            isoformat(since) or "start",
            silent_for,
            count,
            len(alerts),
        )


def _whole_minutes(seconds: float) -> float:
    # "15 min", not "15 min 1 s": the timer fires a moment after the mark.
    return seconds // 60 * 60 if seconds >= 60 else seconds
