"""Every channel type renders the alerts about heartbeatd itself: daemon_gap
and silence. Pure renders, no network."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from heartbeatd.alerts import Alert, daemon_alert
from heartbeatd.channels import (
    command,
    discord,
    email,
    log,
    ntfy,
    slack,
    telegram,
    text,
    webhook,
)
from heartbeatd.channels.email import SmtpOptions
from heartbeatd.model import AlertEvent
from tests.channels.samples import parse

SINCE = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)
UNTIL = datetime(2026, 1, 14, 14, 0, tzinfo=timezone.utc)
GAP_TEXT = "heartbeatd was not running for 2 h, from … to …; backup moved."
SILENCE_TEXT = "no pings for 15 min; 3 monitors expected: the jobs may be fine but cannot reach"

GAP = daemon_alert(
    AlertEvent.DAEMON_GAP,
    since=SINCE,
    at=UNTIL,
    monitors=("backup", "report"),
    count=3,
    url="https://hb.example.com",
    text=GAP_TEXT,
)
SILENCE = daemon_alert(
    AlertEvent.SILENCE,
    since=None,
    at=UNTIL,
    monitors=("a", "b", "c"),
    count=3,
    url="https://hb.example.com",
    text=SILENCE_TEXT,
)
SMTP = SmtpOptions(
    host="localhost",
    port=25,
    tls=False,
    starttls=False,
    username=None,
    password=None,
    sender="hb@example.com",
    timeout=30.0,
)


def test_the_webhook_sends_the_events_json() -> None:
    opts, _ = parse(webhook, {"url": "https://example.com/hook"})
    assert json.loads(webhook.render(GAP, opts).body) == {
        "event": "daemon_gap",
        "from": "2026-01-14T12:00:00Z",
        "to": "2026-01-14T14:00:00Z",
        "at": "2026-01-14T14:00:00Z",
        "count": 3,
        "monitors": ["backup", "report"],
        "url": "https://hb.example.com",
        "text": GAP_TEXT,
    }
    assert json.loads(webhook.render(SILENCE, opts).body)["from"] is None


@pytest.mark.parametrize("alert", [GAP, SILENCE], ids=["daemon_gap", "silence"])
def test_it_survives_the_outbox_round_trip(alert: Alert) -> None:
    assert Alert.from_json(json.loads(json.dumps(alert.to_json()))) == alert


def test_email_has_a_subject_and_the_whole_story() -> None:
    opts, _ = parse(email, {"to": "ops@example.com"}, smtp=SMTP)
    message = email.render(GAP, opts)
    assert message["Subject"] == "HEARTBEATD WAS NOT RUNNING"
    body = message.get_content()
    assert body.startswith(GAP_TEXT + "\n")
    assert "Not running from: 2026-01-14T12:00:00Z\n" in body
    assert "Deadlines moved:  backup, report and 1 more\n" in body
    assert "Last output" not in body
    assert email.render(SILENCE, opts)["Subject"] == "SILENCE: no pings reach heartbeatd"


@pytest.mark.parametrize(
    ("alert", "title"),
    [(GAP, "HEARTBEATD WAS NOT RUNNING"), (SILENCE, "SILENCE: no pings reach heartbeatd")],
    ids=["daemon_gap", "silence"],
)
def test_chat_and_push_channels_tell_it_in_words(alert: Alert, title: str) -> None:
    message = alert.note
    slack_opts, _ = parse(slack, {"url": "https://hooks.slack.com/services/x"})
    rendered = slack.render(alert, slack_opts)
    assert rendered["text"] == f"{title}: {message}"
    discord_opts, _ = parse(discord, {"url": "https://discord.com/api/webhooks/1/x"})
    embed = discord.render(alert, discord_opts)["embeds"][0]
    assert (embed["title"], embed["description"]) == (title, message)
    telegram_opts, _ = parse(telegram, {"bot_token": "1:x", "chat_id": 1})
    assert message in telegram.render(alert, telegram_opts)["text"]
    ntfy_opts, _ = parse(ntfy, {"topic": "ops"})
    payload = ntfy.render(alert, ntfy_opts)
    assert payload["title"] == title
    assert payload["message"].startswith(message)
    assert payload["priority"] == 4


def test_the_facts_of_a_silence_say_no_ping_came_since_start_up() -> None:
    assert text.facts(SILENCE) == [
        ("Event", "silence"),
        ("Last ping", "none since heartbeatd started"),
        ("Noticed at", "2026-01-14T14:00:00Z"),
        ("Monitors expected", "a, b, c"),
    ]


def test_the_log_and_command_channels_carry_the_event() -> None:
    line = log.render(GAP, log.Options())
    assert line.startswith(
        "alert event=daemon_gap from=2026-01-14T12:00:00Z to=2026-01-14T14:00:00Z count=3"
    )
    env, stdin = command.render(SILENCE, command.Options(command=("notify",)))
    assert env["HEARTBEATD_EVENT"] == "silence"
    assert json.loads(stdin)["text"] == SILENCE_TEXT
