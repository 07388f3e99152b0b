"""The nouns of heartbeatd: frozen values shared by every layer.

Enum values are the wire strings of the design contract (API, payloads, SQLite).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from heartbeatd.times import parse_stored


class Status(str, Enum):
    NEW = "new"
    UP = "up"
    LATE = "late"
    DOWN = "down"
    PAUSED = "paused"


class PingKind(str, Enum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"
    LOG = "log"
    # Recorded but changing nothing: a method other than [monitors] `methods`
    # allows, or a body that matches no keyword rule.
    IGNORED = "ignored"


class Reason(str, Enum):
    MISSED = "missed"
    FAILED = "failed"
    EXIT_STATUS = "exit_status"
    RAN_TOO_LONG = "ran_too_long"
    RECOVERED = "recovered"
    # A finish sooner after its /start than `min_runtime`.
    RAN_TOO_SHORT = "ran_too_short"
    # Of the notices that change no status (events `overlap` and `anomaly`).
    OVERLAP = "overlap"
    RUNTIME_ANOMALY = "runtime_anomaly"


class AlertEvent(str, Enum):
    DOWN = "down"
    UP = "up"
    REMINDER = "reminder"
    # Sent only by `heartbeatd test-alert`, never by a monitor.
    TEST = "test"
    # Notices that change no status: a run started while another was open,
    # and a run much longer or shorter than usual.
    OVERLAP = "overlap"
    ANOMALY = "anomaly"
    # About heartbeatd itself, not a monitor (DAEMON_EVENTS).
    DAEMON_GAP = "daemon_gap"
    SILENCE = "silence"
    # Opt-in per channel ([channels.x] events): the monitor went late (a
    # warning before down), and a flip whose alert the policy held.
    LATE = "late"
    HELD = "held"
    # The down alert, to a channel listed as {channel = "x", after = "30m"},
    # when the incident is still alerting and unacknowledged by then.
    ESCALATION = "escalation"
    # Several alerts to a channel with [channels.x] group_wait, in one message.
    GROUP = "group"


# Events about heartbeatd itself: their alerts name no monitor (`monitor` is
# DAEMON), and their status and reason are placeholders no channel shows.
DAEMON_EVENTS = frozenset({AlertEvent.DAEMON_GAP, AlertEvent.SILENCE})
# Not a valid slug, so it never names a monitor's line in the outbox.
DAEMON = "(heartbeatd)"


class AlertState(str, Enum):
    """What a human has been told (policy.py), apart from what `status` is."""

    QUIET = "quiet"
    ALERTING = "alerting"


class Secret:
    """A password, token or URL with a token in it. Prints as <secret>.

    Only `reveal()` gives the value, so a secret cannot end up in a log line, an
    exception or a repr by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Ping:
    """One ping as the web layer received it."""

    kind: PingKind
    at: datetime
    exit_status: int | None = None
    rid: str | None = None
    method: str = "GET"
    remote_addr: str = ""
    user_agent: str = ""
    body: str = ""
    truncated: bool = False


# Characters of a ping's body kept in memory with the monitor's state. The whole
# body (up to [storage] max_body) is in the pings table; this is what an alert
# raised by a tick (a missed deadline, a reminder) shows of the last output.
BODY_PREVIEW = 500


def preview_body(body: str) -> str:
    """The end of a body, where a job's output usually says what went wrong."""
    if len(body) <= BODY_PREVIEW:
        return body
    # An ASCII mark: "…" would make Python store the whole preview two bytes
    # a character.
    return "..." + body[len(body) - BODY_PREVIEW + 3 :]


@dataclass(frozen=True, slots=True)
class MonitorState:
    """Everything heartbeatd remembers about one monitor between pings.

    `expected_at` is when the next success is due; `down_at` is when the
    monitor went down (set only while it is down).
    """

    status: Status = Status.NEW
    first_seen: datetime | None = None
    last_ping: datetime | None = None
    last_success: datetime | None = None
    last_kind: PingKind | None = None
    last_exit_status: int | None = None
    started_at: datetime | None = None
    start_rid: str | None = None
    expected_at: datetime | None = None
    down_at: datetime | None = None
    # A deadline may not fall before this time; set on start-up (and after a
    # wall-clock jump) so that pings that could not reach us are not missed.
    grace_until: datetime | None = None
    reason: Reason | None = None
    n_pings: int = 0
    last_duration: float | None = None
    # The end of the last body (see preview_body), not the whole of it.
    body_preview: str = ""
    reminders_sent: int = 0
    next_reminder_at: datetime | None = None
    # Runs still open besides the one at started_at, oldest first, as
    # (rid, started_at): a finish with that rid closes one and measures it.
    open_runs: tuple[tuple[str, datetime], ...] = ()
    # Seconds of the latest measured runs, oldest first; kept only for
    # monitors with `runtime_anomaly` (see states.RECENT_RUNS).
    recent_durations: tuple[float, ...] = ()
    # The alert state and the consecutive failed runs and successes that
    # alert_after and recover_after count (policy.py).
    alert: AlertState = AlertState.QUIET
    fails: int = 0
    oks: int = 0
    # A snooze holds the monitor's down alerts and reminders until then.
    snoozed_until: datetime | None = None
    snooze_reason: str = ""
    # A down alert that is due but held (a snooze, a maintenance window) is
    # judged again at this time (None with a held_reason: when a parent
    # recovers); what holds it and since when, for the alert that goes out.
    held_until: datetime | None = None
    held_since: datetime | None = None
    held_reason: str = ""
    # The incident (escalation.py): when its down alert first went out, how
    # many escalation steps went out since, the secret of its ack link, and
    # who acknowledged it, when, with what note.
    alerted_at: datetime | None = None
    escalated: int = 0
    ack_token: str = ""
    acked_at: datetime | None = None
    acked_by: str = ""
    ack_note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The stored form: fields at their default are left out and times are
        epoch seconds, since it is written on every ping."""
        out: dict[str, Any] = {}
        # Every field in one call, then a precomputed kind per field: this
        # runs for each monitor a batch of pings changed.
        for (name, default, kind), value in zip(_STATE_SPEC, _all_fields(self), strict=True):
            if value is default or value == default:
                continue
            if kind is _TIME:
                value = value.timestamp()
            elif kind is _ENUM:
                value = value.value
            elif kind is _RUNS:
                value = [[rid, at.timestamp()] for rid, at in value]
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonitorState:
        # Read at every start-up for every monitor: one table lookup per key.
        fields = {
            key: _STATE_READERS[key](value)
            for key, value in data.items()
            if value is not None and key in _STATE_READERS
        }
        if "last_body" in fields:
            # Databases written by 0.1.0 hold the whole body (up to 10 MiB) here.
            fields["body_preview"] = preview_body(fields.pop("last_body"))
        return cls(**fields)


def _read_time(value: float | str) -> datetime:
    # Epoch seconds; ISO strings are what the first schema version stored.
    if isinstance(value, str):
        return parse_stored(value)
    return datetime.fromtimestamp(value, timezone.utc)


def _same(value: Any) -> Any:
    return value


_STATE_DEFAULTS = tuple((f.name, f.default) for f in MonitorState.__dataclass_fields__.values())
_STATE_FIELDS = frozenset(name for name, _ in _STATE_DEFAULTS)
_STATE_TIMES = frozenset(
    {
        "first_seen",
        "last_ping",
        "last_success",
        "started_at",
        "expected_at",
        "down_at",
        "grace_until",
        "next_reminder_at",
        "snoozed_until",
        "held_until",
        "held_since",
        "alerted_at",
        "acked_at",
    }
)
_STATE_ENUMS: dict[str, type[Enum]] = {
    "status": Status,
    "last_kind": PingKind,
    "reason": Reason,
    "alert": AlertState,
}
_TIME, _ENUM, _RUNS, _PLAIN = "time", "enum", "runs", "plain"
_STATE_SPEC = tuple(
    (
        name,
        default,
        _TIME
        if name in _STATE_TIMES
        else _ENUM
        if name in _STATE_ENUMS
        else _RUNS
        if name == "open_runs"
        else _PLAIN,
    )
    for name, default in _STATE_DEFAULTS
)
_all_fields = operator.attrgetter(*(name for name, _ in _STATE_DEFAULTS))
_STATE_READERS: dict[str, Any] = {
    name: _STATE_ENUMS.get(name) or (_read_time if name in _STATE_TIMES else _same)
    for name in _STATE_FIELDS
}
_STATE_READERS["body_preview"] = preview_body
_STATE_READERS["open_runs"] = lambda runs: tuple((rid, _read_time(at)) for rid, at in runs)
_STATE_READERS["recent_durations"] = lambda seconds: tuple(float(s) for s in seconds)
_STATE_READERS["last_body"] = _same


@dataclass(frozen=True)
class Flip:
    """A change the state machine reports: a status flip or a reminder.

    `at` is the time the rule says it happened (e.g. expected_at + grace), not
    the time a loop noticed it.
    """

    at: datetime
    old: Status
    new: Status
    reason: Reason
    # None for changes that alert nobody (new -> up, up -> late, pause).
    event: AlertEvent | None = None
    # For ran_too_short and anomaly: the run's seconds, and what it was held
    # against (min_runtime, or the median of recent runs).
    duration: float | None = None
    reference: float | None = None
    # Why the policy held back this flip's alert: "threshold", ...; on a
    # down alert that was held, what held it, and since when.
    held_by: str | None = None
    held_since: datetime | None = None
    # An escalation's channels (they hear nothing else of the incident).
    channels: tuple[str, ...] = ()


def to_the_second(when: datetime | None) -> datetime | None:
    """`when` in UTC without its fraction of a second: a time as we publish it."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).replace(microsecond=0)
