"""Lengths of time as people read them: the one wording pages and alerts share."""

from __future__ import annotations

from dataclasses import replace

import pytest

from heartbeatd import humanize, pages
from heartbeatd.channels import text
from heartbeatd.model import Reason
from heartbeatd.views import MonitorView
from tests.channels.samples import DOWN


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0, "0 s", id="zero"),
        pytest.param(0.0004, "0 s", id="under-a-millisecond"),
        pytest.param(0.001, "0.001 s", id="a-millisecond"),
        pytest.param(0.042, "0.04 s", id="hundredths"),
        pytest.param(0.354, "0.4 s", id="tenths"),
        pytest.param(0.97, "1 s", id="rounds-up-to-a-second"),
        pytest.param(1, "1 s", id="one-second"),
        pytest.param(4.25, "4.2 s", id="seconds-with-a-tenth"),
        pytest.param(12.4, "12 s", id="whole-seconds"),
        pytest.param(59.9, "59 s", id="never-rounds-up-to-a-minute"),
        pytest.param(60, "1 min", id="one-minute"),
        pytest.param(120, "2 min", id="minutes"),
        pytest.param(83, "1 min 23 s", id="minutes-and-seconds"),
        pytest.param(3600, "1 h", id="one-hour"),
        pytest.param(3900, "1 h 5 min", id="hours-and-minutes"),
        pytest.param(3601, "1 h", id="seconds-dropped-beyond-an-hour"),
        pytest.param(86400, "1 d", id="one-day"),
        pytest.param(86400 * 3 + 3600 * 4, "3 d 4 h", id="days-and-hours"),
        pytest.param(86400 + 60, "1 d", id="minutes-dropped-beyond-a-day"),
        pytest.param(-180, "3 min", id="negative-is-a-length-too"),
    ],
)
def test_it_says_how_long_to_two_units(seconds: float, expected: str) -> None:
    assert humanize.duration(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0.4, "0.4 s", id="under-a-second"),
        pytest.param(42.9, "42 s", id="seconds"),
        pytest.param(200, "3 min", id="whole-minutes"),
        pytest.param(3600 + 5 * 60 + 59, "1 h 5 min", id="hours-and-minutes"),
        pytest.param(-86400 * 3 - 3600 * 4, "3 d 4 h", id="days"),
    ],
)
def test_a_span_drops_the_seconds_beyond_a_minute(seconds: float, expected: str) -> None:
    assert humanize.span(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0.4, "just now", id="under-a-second"),
        pytest.param(-0.4, "just now", id="under-a-second-ahead"),
        pytest.param(42, "42 s ago", id="past"),
        pytest.param(200, "3 min ago", id="past-minutes"),
        pytest.param(-300, "in 5 min", id="future"),
    ],
)
def test_it_says_how_long_ago(seconds: float, expected: str) -> None:
    assert humanize.ago(seconds) == expected


@pytest.mark.parametrize(
    ("reason", "exit_status", "expected"),
    [
        pytest.param("missed", None, "no ping came in time", id="missed"),
        pytest.param("failed", None, "the job reported a failure", id="failed"),
        pytest.param("exit_status", 3, "the job exited with status 3", id="exit-status"),
        pytest.param(
            "exit_status", None, "the job exited with a non-zero status", id="exit-status-unknown"
        ),
        pytest.param(
            "ran_too_long", None, "the job started but did not finish in time", id="ran-too-long"
        ),
        pytest.param("recovered", None, "a success ping came in", id="recovered"),
        pytest.param("failed", 3, "the job reported a failure", id="status-only-with-its-reason"),
        pytest.param("held", None, "held", id="unknown-as-is"),
    ],
)
def test_it_words_each_reason(reason: str, exit_status: int | None, expected: str) -> None:
    assert humanize.reason(reason, exit_status) == expected


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_the_page_and_the_alert_give_the_same_reason(reason: Reason) -> None:
    alert = replace(DOWN, reason=reason, exit_status=4)
    monitor = MonitorView.from_json(
        {
            "slug": "a",
            "name": "a",
            "status": "down",
            "reason": reason.value,
            "last_exit_status": 4,
            "started_at": None,
            "last_ping": None,
            "expected_at": None,
            "down_at": None,
            "n_pings": 1,
            "last_duration": None,
        }
    )
    assert pages.why(monitor) == text.explain(alert)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "0 monitors"), (1, "1 monitor"), (2, "2 monitors"), (100_000, "100000 monitors")],
)
def test_a_count_of_things_has_its_plural_only_when_not_one(n: int, expected: str) -> None:
    assert humanize.count(n, "monitor") == expected
