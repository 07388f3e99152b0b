"""Every channel type renders the notices that change no status: an overlap,
a runtime anomaly, and the down alert of a run that was too short."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from heartbeatd.alerts import Alert
from heartbeatd.channels import CHANNEL_TYPES, text
from heartbeatd.channels.email import SmtpOptions
from heartbeatd.model import AlertEvent, Reason, Status
from tests.channels.samples import parse

AT = datetime(2026, 1, 14, 2, 0, 5, tzinfo=timezone.utc)
SMTP = SmtpOptions(
    host="smtp.example.com",
    port=587,
    tls=False,
    starttls=True,
    username=None,
    password=None,
    sender="heartbeatd <alerts@example.com>",
    timeout=30.0,
)

OPTIONS: dict[str, dict[str, Any]] = {
    "log": {},
    "email": {"to": ["ops@example.com"]},
    "webhook": {"url": "https://hooks.example.com/x"},
    "slack": {"url": "https://hooks.slack.com/services/T/B/x"},
    "discord": {"url": "https://discord.com/api/webhooks/1/x"},
    "ntfy": {"topic": "hb-alerts"},
    "telegram": {"bot_token": "123:abc", "chat_id": "42"},
    "command": {"command": ["notify-send"]},
}

OVERLAP = Alert(
    event=AlertEvent.OVERLAP,
    monitor="etl",
    name="Nightly ETL",
    status=Status.UP,
    reason=Reason.OVERLAP,
    at=AT,
)
ANOMALY = Alert(
    event=AlertEvent.ANOMALY,
    monitor="etl",
    name="Nightly ETL",
    status=Status.UP,
    reason=Reason.RUNTIME_ANOMALY,
    at=AT,
    duration=7260.0,
    median=600.0,
)
TOO_SHORT = Alert(
    event=AlertEvent.DOWN,
    monitor="etl",
    name="Nightly ETL",
    status=Status.DOWN,
    reason=Reason.RAN_TOO_SHORT,
    at=AT,
    duration=3.0,
    min_runtime=30.0,
)

# What a reader must learn from each, in words.
EXPECTED = {
    "overlap": ["Nightly ETL", "a run started while another was still running"],
    "anomaly": ["Nightly ETL", "the run took 2 h 1 min", "the median of recent runs is 10 min"],
    "too-short": ["Nightly ETL", "the job finished after 3 s", "minimum run time of 30 s"],
}
ALERTS = {"overlap": OVERLAP, "anomaly": ANOMALY, "too-short": TOO_SHORT}


def rendered_text(kind: str, alert: Alert) -> Any:
    module = CHANNEL_TYPES[kind]
    opts, problems = parse(module, OPTIONS[kind], smtp=SMTP)
    assert problems == []
    out = module.render(alert, opts)
    if kind == "email":
        return str(out["Subject"]) + "\n" + out.get_body().get_content()
    if kind == "webhook":
        return out.body.decode()
    if kind == "command":
        env, stdin = out
        return json.dumps(env) + stdin.decode()
    return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)


@pytest.mark.parametrize("kind", sorted(CHANNEL_TYPES))
@pytest.mark.parametrize("which", sorted(ALERTS))
def test_every_channel_renders_the_notice(kind: str, which: str) -> None:
    text = rendered_text(kind, ALERTS[which])
    if kind in ("webhook", "command"):
        # Machine payloads: the JSON of the alert, with the numbers.
        assert ALERTS[which].event.value in text
        assert "Nightly ETL" in text
        if which == "anomaly":
            assert '"median": 600.0' in text and '"duration": 7260.0' in text
        if which == "too-short":
            assert '"min_runtime": 30.0' in text and '"duration": 3.0' in text
        return
    if kind == "log":
        # One key=value line for the journal: the numbers, in seconds.
        assert f"event={ALERTS[which].event.value} monitor=etl" in text
        if which == "anomaly":
            assert "duration=7260s" in text and "median=600s" in text
        if which == "too-short":
            assert "duration=3s min_runtime=30s" in text
        return
    for words in EXPECTED[which]:
        assert words in text, (kind, which, text)


def test_notices_have_their_own_titles() -> None:
    assert text.title(OVERLAP) == "OVERLAP: Nightly ETL"
    assert text.title(ANOMALY) == "ANOMALY: Nightly ETL"
    assert text.headline(OVERLAP) == ("Nightly ETL: a run started while another was still running.")


def test_payloads_of_other_events_keep_their_keys() -> None:
    down = Alert(
        event=AlertEvent.DOWN,
        monitor="etl",
        name="x",
        status=Status.DOWN,
        reason=Reason.MISSED,
        at=AT,
    )
    assert "duration" not in down.to_json() and "median" not in down.to_json()
    assert Alert.from_json(ANOMALY.to_json()) == ANOMALY
    assert Alert.from_json(TOO_SHORT.to_json()) == TOO_SHORT
