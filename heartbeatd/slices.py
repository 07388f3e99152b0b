"""Long work on the event loop done a slice at a time, with the loop free between.

Work that walks every monitor (a /metrics scrape, the Healthchecks list of
checks, a tick in which thousands of deadlines pass) would hold the loop for
seconds at 100,000 monitors, and every ping would wait. Such work calls
`Slices.turn()` between two small pieces: after SLICE seconds of work it lets
the loop run whatever is due (pings, ticks, other requests) before going on.
"""

from __future__ import annotations

import time

from heartbeatd.clock import Clock

# A ping that comes in meanwhile waits for at most one slice and the piece
# that ends it.
SLICE = 0.0005


class Slices:
    def __init__(self, clock: Clock, seconds: float = SLICE) -> None:
        self._clock = clock
        self._seconds = seconds
        # perf_counter, not the Clock: this measures CPU work done on the
        # loop, no deadline of the domain, and a FakeClock would never end
        # a slice.
        self._until = time.perf_counter() + seconds
        self.turns = 0

    async def turn(self) -> None:
        """Let the loop go if this slice is used up; else return at once."""
        if time.perf_counter() < self._until:
            return
        self.turns += 1
        await self._clock.sleep(0)
        self._until = time.perf_counter() + self._seconds
