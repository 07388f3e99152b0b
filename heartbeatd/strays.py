"""Pings to a uuid or slug no monitor has: counted, and the last few kept.

A misconfigured client is otherwise invisible: many swallow the 404, and
runitor exits 0. The page, the API and /metrics show what is kept here.
Memory only: after a restart the count starts again at zero, as Prometheus
counters do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeatd.times import isoformat

# How many unknown pings are kept to be shown.
KEEP = 20
# Characters of the path kept: a client may send anything.
PATH_LIMIT = 200


@dataclass(frozen=True, slots=True)
class StrayPing:
    at: datetime
    method: str
    path: str
    remote_addr: str
    user_agent: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": isoformat(self.at),
            "method": self.method,
            "path": self.path,
            "remote_addr": self.remote_addr,
            "user_agent": self.user_agent,
        }


class StrayPings:
    def __init__(self, keep: int = KEEP) -> None:
        self.total = 0
        self._recent: deque[StrayPing] = deque(maxlen=keep)

    def record(self, ping: StrayPing) -> None:
        self.total += 1
        self._recent.append(ping)

    def recent(self) -> list[StrayPing]:
        """The kept pings, newest first."""
        return list(reversed(self._recent))
