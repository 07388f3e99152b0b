"""The slack channel: an incoming webhook with blocks and a text fallback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from heartbeatd.channels import slack
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.model import Secret
from tests.channels.samples import DOWN, REMINDER, TEST, UP, parse

URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"


def test_it_reads_the_url() -> None:
    opts, problems = parse(slack, {"url": URL})
    assert problems == []
    assert opts == slack.Options(url=Secret(URL))


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param({}, ["channels.x.url: is required (or url_file)"], id="no-url"),
        pytest.param(
            {"url": "hooks.slack.com/services/T000"},
            ["channels.x.url: expected an http:// or https:// URL with a host"],
            id="no-scheme",
        ),
        pytest.param(
            {"url": URL, "url_file": "/run/credentials/slack"},
            ["channels.x.url: give either url or url_file, not both"],
            id="both",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(slack, data)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


def test_it_renders_blocks_with_a_text_fallback() -> None:
    payload = slack.render(DOWN, slack.Options(url=Secret(URL)))
    assert payload["text"] == "DOWN: Nightly Postgres backup: no ping came in time"
    header, facts, output, link = payload["blocks"]
    assert header == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": ":red_circle: *DOWN: Nightly Postgres backup*\n"
            "Nightly Postgres backup is down: no ping came in time.",
        },
    }
    assert facts["type"] == "section"
    assert facts["fields"][0] == {"type": "mrkdwn", "text": "*Monitor*\nnightly-backup"}
    assert len(facts["fields"]) <= 10
    assert output["text"]["text"] == (
        "*Last output*\n```pg_dump: error: connection to server failed```"
    )
    assert link == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "<https://hb.example.com/monitors/nightly-backup|Open in heartbeatd>",
            }
        ],
    }


@pytest.mark.parametrize(
    ("alert", "emoji"),
    [
        (DOWN, ":red_circle:"),
        (REMINDER, ":red_circle:"),
        (UP, ":large_green_circle:"),
        (TEST, ":white_circle:"),
    ],
    ids=["down", "reminder", "up", "test"],
)
def test_the_emoji_shows_the_event(alert, emoji: str) -> None:
    header = slack.render(alert, slack.Options(url=Secret(URL)))["blocks"][0]
    assert header["text"]["text"].startswith(emoji + " *")


def test_it_escapes_slack_markup() -> None:
    alert = replace(DOWN, name="<!channel> & co", body="a < b")
    payload = slack.render(alert, slack.Options(url=Secret(URL)))
    assert "*DOWN: &lt;!channel&gt; &amp; co*" in payload["blocks"][0]["text"]["text"]
    assert "a &lt; b" in payload["blocks"][2]["text"]["text"]


async def test_it_posts_to_the_webhook(webhook_sink, ctx: SendContext) -> None:
    opts = slack.Options(url=Secret(webhook_sink.url + "/services/T000/B000/XXXX"))
    await slack.send(UP, opts, ctx)
    [req] = webhook_sink.requests
    assert req.path == "/services/T000/B000/XXXX"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == slack.render(UP, opts)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "ok"), (429, "retryable"), (503, "retryable"), (400, "permanent"), (404, "permanent")],
)
async def test_it_classifies_the_answer(
    webhook_sink, ctx: SendContext, status: int, outcome: str
) -> None:
    webhook_sink.answer((status, "no_service" if status == 404 else "ok"))
    opts = slack.Options(url=Secret(webhook_sink.url + "/services/T000"))
    if outcome == "ok":
        await slack.send(DOWN, opts, ctx)
        return
    with pytest.raises(DeliveryError) as info:
        await slack.send(DOWN, opts, ctx)
    assert str(info.value) == f"slack to {webhook_sink.url.removeprefix('http://')}: HTTP {status}"
    assert info.value.permanent is (outcome == "permanent")


async def test_a_refused_connection_is_retryable(closed_port: int, ctx: SendContext) -> None:
    opts = slack.Options(url=Secret(f"http://127.0.0.1:{closed_port}/services/T000"))
    with pytest.raises(DeliveryError) as info:
        await slack.send(DOWN, opts, ctx)
    assert str(info.value) == f"slack to 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False
