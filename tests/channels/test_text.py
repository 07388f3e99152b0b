"""The shared wording: every event has a headline, and a monitor's name
goes into it as written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from heartbeatd.channels import text
from heartbeatd.model import AlertEvent
from tests.samples import DOWN_ALERT as DOWN


@pytest.mark.parametrize("event", [e for e in AlertEvent if e is not AlertEvent.GROUP], ids=str)
def test_every_event_has_a_headline_of_its_own(event: AlertEvent) -> None:
    headline = text.title(replace(DOWN, event=event, name="Nightly {backup}", held_by="snooze"))
    others = {
        text.title(replace(DOWN, event=other, name="Nightly {backup}", held_by="snooze"))
        for other in AlertEvent
        if other not in (event, AlertEvent.GROUP)
    }
    assert headline and headline not in others
    if event not in (AlertEvent.TEST, AlertEvent.DAEMON_GAP, AlertEvent.SILENCE):
        assert "Nightly {backup}" in headline


def test_the_headlines_read_as_before() -> None:
    alert = replace(DOWN, name="Nightly backup", held_by="threshold")
    got = {e.value: text.title(replace(alert, event=e)) for e in AlertEvent if e.value != "group"}
    assert got == {
        "down": "DOWN: Nightly backup",
        "up": "UP: Nightly backup",
        "reminder": "REMINDER: Nightly backup is still down",
        "test": "TEST: heartbeatd test alert",
        "overlap": "OVERLAP: Nightly backup",
        "anomaly": "ANOMALY: Nightly backup",
        "daemon_gap": "HEARTBEATD WAS NOT RUNNING",
        "silence": "SILENCE: no pings reach heartbeatd",
        "late": "LATE: Nightly backup",
        "held": "HELD: Nightly backup (threshold)",
        "escalation": "ESCALATION: Nightly backup is down, unacknowledged",
    }
