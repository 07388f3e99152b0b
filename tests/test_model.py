"""MonitorView: the API's monitor object, typed, both ways."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.model import AlertState, Reason, Status, to_the_second
from heartbeatd.views import MonitorView

NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)

# Published times: UTC, whole seconds.
TIMES = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
).map(to_the_second)
VIEWS = st.builds(
    MonitorView,
    slug=st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True),
    name=st.text(max_size=30),
    description=st.text(max_size=30),
    status=st.sampled_from(Status),
    reason=st.none() | st.sampled_from(Reason),
    schedule=st.text(max_size=30),
    grace=st.integers(0, 10**9),
    started_at=TIMES,
    last_ping=TIMES,
    last_success=TIMES,
    last_exit_status=st.none() | st.integers(0, 255),
    expected_at=TIMES,
    down_at=TIMES,
    n_pings=st.integers(0, 2**53),
    last_duration=st.none() | st.floats(0, 1e9, allow_nan=False),
    channels=st.lists(st.from_regex(r"[a-z0-9_-]{1,10}", fullmatch=True)).map(tuple),
    uuid=st.none() | st.uuids().map(str),
    ping_url=st.none() | st.just("https://hb.example.com/ping/backup"),
    tags=st.lists(st.sampled_from(["db", "web"]), max_size=2).map(tuple),
    alert=st.sampled_from(AlertState),
    held_by=st.none() | st.just("threshold"),
    snoozed_until=TIMES,
    snooze_reason=st.text(max_size=20),
    maintenance=st.none() | st.just("sunday-patching"),
    maintenance_until=TIMES,
)


@given(VIEWS)
def test_a_view_read_back_from_its_json_text_is_the_same_view(view):
    assert MonitorView.from_json(json.loads(json.dumps(view.to_json()))) == view


def test_its_json_has_the_keys_of_the_contract_in_order():
    view = MonitorView(
        slug="backup",
        name="Nightly backup",
        description="",
        status=Status.DOWN,
        reason=Reason.MISSED,
        schedule="every 1h",
        grace=300,
        started_at=None,
        last_ping=NOW - timedelta(hours=2),
        last_success=NOW - timedelta(hours=2),
        last_exit_status=None,
        expected_at=NOW - timedelta(hours=1),
        down_at=NOW - timedelta(minutes=55),
        n_pings=4,
        last_duration=None,
        channels=("ops", "hook"),
        uuid="9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b",
        ping_url="https://hb.example.com/ping/9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b",
        tags=("db", "nightly"),
    )
    assert view.to_json() == {
        "slug": "backup",
        "name": "Nightly backup",
        "description": "",
        "status": "down",
        "reason": "missed",
        "schedule": "every 1h",
        "grace": 300,
        "started_at": None,
        "last_ping": "2026-01-14T10:00:00Z",
        "last_success": "2026-01-14T10:00:00Z",
        "last_exit_status": None,
        "expected_at": "2026-01-14T11:00:00Z",
        "down_at": "2026-01-14T11:05:00Z",
        "n_pings": 4,
        "last_duration": None,
        "channels": ["ops", "hook"],
        "uuid": "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b",
        "ping_url": "https://hb.example.com/ping/9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b",
        "tags": ["db", "nightly"],
        "source": "file",
        "alert": "quiet",
        "held_by": None,
        "snoozed_until": None,
        "snooze_reason": "",
        "maintenance": None,
        "maintenance_until": None,
        "acked_at": None,
        "acked_by": "",
        "ack_note": "",
    }
    assert list(view.to_json()) == list(MonitorView.__dataclass_fields__)


def test_a_daemon_of_another_version_may_leave_out_what_the_contract_does_not_promise():
    view = MonitorView.from_json(
        {
            "slug": "backup",
            "name": "backup",
            "status": "up",
            "started_at": None,
            "last_ping": "2026-01-14T11:57:00Z",
            "expected_at": "2026-01-14T12:57:00Z",
            "down_at": "2026-01-14T13:02:00Z",
            "n_pings": 1,
            "last_duration": None,
        }
    )
    assert (view.status, view.last_ping, view.reason, view.channels) == (
        Status.UP,
        NOW - timedelta(minutes=3),
        None,
        (),
    )


def test_a_time_is_published_in_utc_without_its_fraction_of_a_second():
    riga = timezone(timedelta(hours=2))
    assert to_the_second(datetime(2026, 1, 14, 14, 0, 5, 999999, tzinfo=riga)) == datetime(
        2026, 1, 14, 12, 0, 5, tzinfo=timezone.utc
    )
    assert to_the_second(None) is None
