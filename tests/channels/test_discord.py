"""The discord channel: a webhook message with one coloured embed."""

from __future__ import annotations

import pytest

from heartbeatd.channels import discord
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.model import Secret
from tests.channels.samples import DOWN, REMINDER, TEST, UP, parse

URL = "https://discord.com/api/webhooks/123/abcdef"


def test_it_reads_the_url() -> None:
    opts, problems = parse(discord, {"url": URL})
    assert problems == []
    assert opts == discord.Options(url=Secret(URL))


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param({}, ["channels.x.url: is required (or url_file)"], id="no-url"),
        pytest.param(
            {"url": "discord.com/api/webhooks/123/abcdef"},
            ["channels.x.url: expected an http:// or https:// URL with a host"],
            id="no-scheme",
        ),
        pytest.param(
            {"url": 5},
            ["channels.x.url: expected a string, got an integer (not shown: a secret)"],
            id="not-a-string",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(discord, data)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


def test_it_renders_one_embed() -> None:
    payload = discord.render(DOWN, discord.Options(url=Secret(URL)))
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["title"] == "DOWN: Nightly Postgres backup"
    assert embed["description"] == (
        "Nightly Postgres backup is down: no ping came in time.\n\n"
        "**Last output**\n```\npg_dump: error: connection to server failed\n```"
    )
    assert embed["color"] == discord.RED
    assert embed["url"] == "https://hb.example.com/monitors/nightly-backup"
    assert embed["timestamp"] == "2026-01-14T12:00:00Z"
    assert embed["fields"][0] == {"name": "Monitor", "value": "nightly-backup", "inline": True}


@pytest.mark.parametrize(
    ("alert", "colour"),
    [(DOWN, discord.RED), (REMINDER, discord.RED), (UP, discord.GREEN), (TEST, discord.GREY)],
    ids=["down", "reminder", "up", "test"],
)
def test_the_colour_shows_the_event(alert, colour: int) -> None:
    assert discord.render(alert, discord.Options(url=Secret(URL)))["embeds"][0]["color"] == colour


def test_a_test_alert_without_a_link_has_no_url() -> None:
    embed = discord.render(TEST, discord.Options(url=Secret(URL)))["embeds"][0]
    assert "url" not in embed


async def test_it_posts_to_the_webhook(webhook_sink, ctx: SendContext) -> None:
    webhook_sink.answer(204)
    opts = discord.Options(url=Secret(webhook_sink.url + "/api/webhooks/123/abcdef"))
    await discord.send(REMINDER, opts, ctx)
    [req] = webhook_sink.requests
    assert req.path == "/api/webhooks/123/abcdef"
    assert req.json() == discord.render(REMINDER, opts)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(204, "ok"), (429, "retryable"), (503, "retryable"), (400, "permanent"), (404, "permanent")],
)
async def test_it_classifies_the_answer(
    webhook_sink, ctx: SendContext, status: int, outcome: str
) -> None:
    webhook_sink.answer(status)
    opts = discord.Options(url=Secret(webhook_sink.url + "/api/webhooks/1/x"))
    if outcome == "ok":
        await discord.send(DOWN, opts, ctx)
        return
    with pytest.raises(DeliveryError) as info:
        await discord.send(DOWN, opts, ctx)
    host = webhook_sink.url.removeprefix("http://")
    assert str(info.value) == f"discord to {host}: HTTP {status}"
    assert info.value.permanent is (outcome == "permanent")


async def test_a_refused_connection_is_retryable(closed_port: int, ctx: SendContext) -> None:
    opts = discord.Options(url=Secret(f"http://127.0.0.1:{closed_port}/api/webhooks/1/x"))
    with pytest.raises(DeliveryError) as info:
        await discord.send(DOWN, opts, ctx)
    assert str(info.value) == f"discord to 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False
