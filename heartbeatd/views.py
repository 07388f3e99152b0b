"""One monitor as every surface shows it (MonitorView): the API's monitor
object, the status page, /metrics and `heartbeatd status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeatd.model import AlertState, Reason, Status
from heartbeatd.times import isoformat, parse_isoformat


@dataclass(frozen=True)
class MonitorView:
    """One monitor as every surface shows it: the API's monitor object
    (DESIGN §6), the status page, /metrics and `heartbeatd status`.

    Times are UTC to the second, as the API publishes them, so a view read
    back from its JSON is the same view.
    """

    slug: str
    name: str
    description: str
    status: Status
    # Why it went down (or came back); None before the first flip.
    reason: Reason | None
    # In words: "every 1h", "cron 0 2 * * * (Europe/Riga)".
    schedule: str
    # Seconds.
    grace: int
    # Set while a run is in progress.
    started_at: datetime | None
    last_ping: datetime | None
    last_success: datetime | None
    last_exit_status: int | None
    expected_at: datetime | None
    # When it went down while down, when it will go down otherwise.
    down_at: datetime | None
    n_pings: int
    # Seconds the last measured run took.
    last_duration: float | None
    channels: tuple[str, ...]
    uuid: str | None = None
    # The URL a job pings: by uuid if it has one, else by slug; None when a
    # slug URL would show [server] ping_key, the secret that guards it.
    ping_url: str | None = None
    tags: tuple[str, ...] = ()
    # "file" (declared in the config file) or "api" (created at run time).
    source: str = "file"
    # What a human has been told (quiet/alerting), and why an alert is held now.
    alert: AlertState = AlertState.QUIET
    held_by: str | None = None
    snoozed_until: datetime | None = None
    snooze_reason: str = ""
    # The maintenance window open over it now, and when that one ends.
    maintenance: str | None = None
    maintenance_until: datetime | None = None
    # Who acknowledged the current incident, when, and their note.
    acked_at: datetime | None = None
    acked_by: str = ""
    ack_note: str = ""

    @property
    def is_held(self) -> bool:
        """Whether its alerts are held now: a hold, a snooze or a window."""
        return bool(self.held_by or self.snoozed_until or self.maintenance)

    def to_json(self) -> dict[str, Any]:
        """The API's monitor object; its keys and their order are the contract."""
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "status": self.status.value,
            "reason": self.reason.value if self.reason else None,
            "schedule": self.schedule,
            "grace": self.grace,
            "started_at": isoformat(self.started_at),
            "last_ping": isoformat(self.last_ping),
            "last_success": isoformat(self.last_success),
            "last_exit_status": self.last_exit_status,
            "expected_at": isoformat(self.expected_at),
            "down_at": isoformat(self.down_at),
            "n_pings": self.n_pings,
            "last_duration": self.last_duration,
            "channels": list(self.channels),
            "uuid": self.uuid,
            "ping_url": self.ping_url,
            "tags": list(self.tags),
            "source": self.source,
            "alert": self.alert.value,
            "held_by": self.held_by,
            "snoozed_until": isoformat(self.snoozed_until),
            "snooze_reason": self.snooze_reason,
            "maintenance": self.maintenance,
            "maintenance_until": isoformat(self.maintenance_until),
            "acked_at": isoformat(self.acked_at),
            "acked_by": self.acked_by,
            "ack_note": self.ack_note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorView:
        """A view from the API's JSON. The keys DESIGN §6 promises must be
        there; the others may be missing (a daemon of another version)."""
        reason = data.get("reason")
        return cls(
            slug=data["slug"],
            name=data["name"],
            description=data.get("description", ""),
            status=Status(data["status"]),
            reason=Reason(reason) if reason is not None else None,
            schedule=data.get("schedule", ""),
            grace=data.get("grace", 0),
            started_at=parse_isoformat(data["started_at"]),
            last_ping=parse_isoformat(data["last_ping"]),
            last_success=parse_isoformat(data.get("last_success")),
            last_exit_status=data.get("last_exit_status"),
            expected_at=parse_isoformat(data["expected_at"]),
            down_at=parse_isoformat(data["down_at"]),
            n_pings=data["n_pings"],
            last_duration=data["last_duration"],
            channels=tuple(data.get("channels", ())),
            uuid=data.get("uuid"),
            ping_url=data.get("ping_url"),
            tags=tuple(data.get("tags", ())),
            source=data.get("source", "file"),
            alert=AlertState(data.get("alert", AlertState.QUIET.value)),
            held_by=data.get("held_by"),
            snoozed_until=parse_isoformat(data.get("snoozed_until")),
            snooze_reason=data.get("snooze_reason", ""),
            maintenance=data.get("maintenance"),
            maintenance_until=parse_isoformat(data.get("maintenance_until")),
            acked_at=parse_isoformat(data.get("acked_at")),
            acked_by=data.get("acked_by", ""),
            ack_note=data.get("ack_note", ""),
        )
