"""Sample data every test file shares: a fixed now, configs, states, a flip
and one monitor's alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from heartbeatd.alerts import Alert
from heartbeatd.model import AlertEvent, Flip, MonitorState, Reason, Status

# A fixed "now" for tests: a Wednesday, away from any DST change.
NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)

# -- configs ---------------------------------------------------------------------------

# A monitor that goes down 1h5m after its last success.
BACKUP = '[monitors.backup]\nperiod = "1h"\ngrace = "5m"\n'
# Channels that send nowhere but the log.
LOG_CHANNEL = '[channels.log]\ntype = "log"\n'


def config_text(
    monitors: str = BACKUP,
    *,
    port: int | None = None,
    db: str = "hb.db",
    hook: str | None = None,
    channels: str = "",
    server: str = "",
    storage: str = "",
    defaults: str = "",
) -> str:
    """A whole config: [server] (listening on `port`, if given), [storage] in
    `db`, [defaults], a webhook channel `hook` to the URL `hook`, `channels`
    and `monitors`."""
    listen = f'listen = "127.0.0.1:{port}"\n' if port is not None else ""
    if hook is not None:
        channels = f'[channels.hook]\ntype = "webhook"\nurl = "{hook}"\n' + channels
    return (
        f"[server]\n{listen}{server}\n"
        f'[storage]\npath = "{db}"\nping_history = 100000\n{storage}\n'
        f"[defaults]\n{defaults}\n"
        f"{channels}\n{monitors}\n"
    )


# -- the monitor "backup" as the store keeps it ----------------------------------------

UP = MonitorState(status=Status.UP, last_ping=NOW, last_success=NOW, n_pings=1)
DOWN = MonitorState(status=Status.DOWN, down_at=NOW, reason=Reason.MISSED)
DOWN_FLIP = Flip(
    at=NOW, old=Status.UP, new=Status.DOWN, reason=Reason.MISSED, event=AlertEvent.DOWN
)

# -- one monitor's alerts, every field a channel renders set ---------------------------

_DOWN = Alert(
    event=AlertEvent.DOWN,
    monitor="nightly-backup",
    name="Nightly Postgres backup",
    status=Status.DOWN,
    reason=Reason.MISSED,
    at=NOW,
    last_ping=NOW - timedelta(days=1, minutes=30),
    expected_at=NOW - timedelta(minutes=30),
    down_at=NOW,
    url="https://hb.example.com/monitors/nightly-backup",
    body="pg_dump: error: connection to server failed\n",
)
ALERTS: dict[str, Alert] = {
    "down": _DOWN,
    "failed": replace(_DOWN, reason=Reason.EXIT_STATUS, exit_status=3),
    "reminder": replace(_DOWN, event=AlertEvent.REMINDER, at=NOW + timedelta(hours=1)),
    "up": replace(
        _DOWN,
        event=AlertEvent.UP,
        status=Status.UP,
        reason=Reason.RECOVERED,
        at=NOW + timedelta(hours=1, minutes=5),
        last_ping=NOW + timedelta(hours=1, minutes=5),
        expected_at=NOW + timedelta(days=1, hours=1, minutes=5),
        downtime=3900.0,
        body="",
    ),
    "test": Alert(
        event=AlertEvent.TEST,
        monitor="test",
        name="heartbeatd test alert",
        status=Status.DOWN,
        reason=Reason.MISSED,
        at=NOW,
    ),
}
# The down alert, of the monitor "backup" the states above belong to.
DOWN_ALERT = replace(_DOWN, monitor="backup", name="Nightly backup")
