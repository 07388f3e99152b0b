"""What a channel sends: an Alert (a monitor's, a group's, or one about
heartbeatd itself), and its JSON, the webhook body of DESIGN §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeatd.model import DAEMON, DAEMON_EVENTS, AlertEvent, Reason, Status
from heartbeatd.times import isoformat, parse_isoformat


@dataclass(frozen=True)
class Alert:
    """What a channel sends. `to_json()` is the webhook body of DESIGN §5."""

    event: AlertEvent
    monitor: str
    name: str
    status: Status
    reason: Reason
    at: datetime
    last_ping: datetime | None = None
    expected_at: datetime | None = None
    down_at: datetime | None = None
    url: str = ""
    body: str = ""
    # Seconds the monitor was down, on an `up` alert.
    downtime: float | None = None
    exit_status: int | None = None
    # Seconds: the run's measured duration, and what it was held against
    # (ran_too_short: the minimum; anomaly: the median of recent runs).
    duration: float | None = None
    median: float | None = None
    min_runtime: float | None = None
    # Daemon events: since when (the gap's start, the last ping), and the
    # monitors concerned (deadlines moved, monitors expected); `at` is the end.
    since: datetime | None = None
    monitors: tuple[str, ...] = ()
    # How many monitors are concerned: `monitors` may list only some of them.
    count: int = 0
    # A daemon event's message in words (its `body` stays empty: that is a
    # job's output, which the channels show as such).
    note: str = ""

    # A down alert the policy held: what held it ("dependency:vps-web1") and
    # since when; it was held until `at`.
    held_by: str | None = None
    held_since: datetime | None = None
    # The incident's acknowledgement link, on down, reminder and escalation
    # alerts of an incident not acknowledged yet.
    ack_url: str = ""
    # The alerts of a group (event `group`), each with its usual object.
    members: tuple[Alert, ...] = ()

    @classmethod
    def group(cls, members: tuple[Alert, ...]) -> Alert:
        """One alert standing for `members`, as the outbox sends a group."""
        first = members[0]
        return cls(
            event=AlertEvent.GROUP,
            monitor=",".join(dict.fromkeys(m.monitor for m in members)),
            name=f"{len(members)} alerts",
            status=first.status,
            reason=first.reason,
            at=max(m.at for m in members),
            members=members,
        )

    @property
    def is_daemon_event(self) -> bool:
        return self.event in DAEMON_EVENTS

    def to_json(self) -> dict[str, Any]:
        if self.is_daemon_event:
            return {
                "event": self.event.value,
                "from": isoformat(self.since),
                "to": isoformat(self.at),
                # As in every alert's JSON: when it was raised.
                "at": isoformat(self.at),
                "count": self.count,
                "monitors": list(self.monitors),
                "url": self.url,
                "text": self.note,
            }
        if self.event is AlertEvent.GROUP:
            return {"event": "group", "alerts": [m.to_json() for m in self.members]}
        out = self._base_json() | self._run_json()
        if self.held_by is not None:
            # Only on held alerts: every other payload stays as it was.
            out["held_by"] = self.held_by
            out["held_since"] = isoformat(self.held_since)
        if self.ack_url:
            out["ack_url"] = self.ack_url
        return out

    def _run_json(self) -> dict[str, Any]:
        # Only alerts about a run's length carry these: payloads of the other
        # events stay as they were.
        extra = {"duration": self.duration, "median": self.median, "min_runtime": self.min_runtime}
        return {key: value for key, value in extra.items() if value is not None}

    def _base_json(self) -> dict[str, Any]:
        return {
            "event": self.event.value,
            "monitor": self.monitor,
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason.value,
            "at": isoformat(self.at),
            "last_ping": isoformat(self.last_ping),
            "expected_at": isoformat(self.expected_at),
            "down_at": isoformat(self.down_at),
            "downtime": self.downtime,
            "exit_status": self.exit_status,
            "url": self.url,
            "body": self.body,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        if data["event"] == AlertEvent.GROUP.value:
            return cls.group(tuple(cls.from_json(a) for a in data["alerts"]))
        event = AlertEvent(data["event"])
        if event in DAEMON_EVENTS:
            return daemon_alert(
                event,
                since=parse_isoformat(data.get("from")),
                at=parse_isoformat(data["to"]),
                monitors=tuple(data.get("monitors", ())),
                count=data.get("count", 0),
                url=data.get("url", ""),
                text=data.get("text", ""),
            )
        return cls(
            event=AlertEvent(data["event"]),
            monitor=data["monitor"],
            name=data["name"],
            status=Status(data["status"]),
            reason=Reason(data["reason"]),
            at=parse_isoformat(data["at"]),
            last_ping=parse_isoformat(data.get("last_ping")),
            expected_at=parse_isoformat(data.get("expected_at")),
            down_at=parse_isoformat(data.get("down_at")),
            url=data.get("url", ""),
            body=data.get("body", ""),
            downtime=data.get("downtime"),
            exit_status=data.get("exit_status"),
            duration=data.get("duration"),
            median=data.get("median"),
            min_runtime=data.get("min_runtime"),
            held_by=data.get("held_by"),
            held_since=parse_isoformat(data.get("held_since")),
            ack_url=data.get("ack_url", ""),
        )


def daemon_alert(
    event: AlertEvent,
    *,
    since: datetime | None,
    at: datetime,
    monitors: tuple[str, ...],
    count: int,
    url: str,
    text: str,
) -> Alert:
    """An alert about heartbeatd itself; `text` is its message in words."""
    return Alert(
        event=event,
        monitor=DAEMON,
        name="heartbeatd",
        status=Status.DOWN,
        reason=Reason.MISSED,
        at=at,
        url=url,
        since=since,
        monitors=monitors,
        count=count,
        note=text,
    )
