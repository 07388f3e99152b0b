"""How late the event loop runs what is due: the daemon's own stall meter.

Every ping, deadline and alert waits while one callback holds the loop, so a
stall is the figure that matters for a surface (a /metrics scrape, a page).
A task sleeps `interval` seconds on the injected Clock, again and again; the
time it wakes up past its due time is how long the loop was busy elsewhere.
A stall shorter than `interval` can hide between two wake-ups (it is counted
only in part), which is why the interval is short.
"""

from __future__ import annotations

import logging

from heartbeatd.clock import Clock

log = logging.getLogger(__name__)

# 20 wake-ups a second: 0.4 % of a core on a busy 2-core machine (50 cost
# 1 %, against an idle budget of 1 %); a stall is missed by at most this much.
INTERVAL = 0.05
# A stall this long is logged: pings waited at least that much.
WARN_ABOVE = 0.1


class LoopLag:
    """The last and the worst lag seen, and stalls past `warn_above` counted."""

    def __init__(
        self, clock: Clock, *, interval: float = INTERVAL, warn_above: float = WARN_ABOVE
    ) -> None:
        self.clock = clock
        self.interval = interval
        self.warn_above = warn_above
        self.last = 0.0
        self.worst = 0.0
        self.stalls = 0

    def reset_worst(self) -> float:
        """The worst lag so far, which starts again from zero."""
        worst, self.worst = self.worst, 0.0
        return worst

    async def run(self) -> None:
        """Measures until cancelled."""
        while True:
            due = self.clock.monotonic() + self.interval
            await self.clock.sleep(self.interval)
            self.note(max(0.0, self.clock.monotonic() - due))

    def note(self, lag: float) -> None:
        self.last = lag
        self.worst = max(self.worst, lag)
        if lag >= self.warn_above:
            self.stalls += 1
            log.warning("event loop stalled seconds=%.3f", lag)
