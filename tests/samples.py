"""States, a flip and an alert shared by the store and outbox tests."""

from __future__ import annotations

from datetime import timedelta

from heartbeatd.model import Alert, AlertEvent, Flip, MonitorState, Reason, Status
from tests.conftest import NOW

UP = MonitorState(status=Status.UP, last_ping=NOW, last_success=NOW, n_pings=1)
DOWN = MonitorState(status=Status.DOWN, down_at=NOW, reason=Reason.MISSED)
DOWN_FLIP = Flip(
    at=NOW, old=Status.UP, new=Status.DOWN, reason=Reason.MISSED, event=AlertEvent.DOWN
)
DOWN_ALERT = Alert(
    event=AlertEvent.DOWN,
    monitor="backup",
    name="Nightly backup",
    status=Status.DOWN,
    reason=Reason.MISSED,
    at=NOW,
    last_ping=NOW - timedelta(days=1),
)
