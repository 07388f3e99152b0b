"""The ntfy channel: JSON publishing to the server root, priority by event."""

from __future__ import annotations

from pathlib import Path

import pytest

from heartbeatd.channels import ntfy
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.model import Secret
from tests.channels.samples import DOWN, REMINDER, TEST, UP, parse


def test_it_reads_a_minimal_table() -> None:
    opts, problems = parse(ntfy, {"topic": "hb-alerts-7f3a"})
    assert problems == []
    assert opts == ntfy.Options(topic="hb-alerts-7f3a")
    assert opts.server == "https://ntfy.sh"
    assert (opts.priority, opts.priority_up) == (4, 3)


def test_it_reads_every_option(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tk_abc\n")
    opts, problems = parse(
        ntfy,
        {
            "server": "https://ntfy.example.com",
            "topic": "ops",
            "priority": "max",
            "priority_up": 2,
            "tags": ["prod", "db"],
            "token_file": "token",
        },
        base_dir=tmp_path,
    )
    assert problems == []
    assert opts == ntfy.Options(
        topic="ops",
        server="https://ntfy.example.com",
        priority=5,
        priority_up=2,
        tags=("prod", "db"),
        token=Secret("tk_abc"),
    )


PRIORITY_HINT = 'expected 1 to 5 or one of "min", "low", "default", "high", "max"'


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param({}, ["channels.x.topic: is required"], id="no-topic"),
        pytest.param(
            {"topic": "a/b"},
            ['channels.x.topic: expected 1 to 64 letters, digits, "-" or "_", got "a/b"'],
            id="topic",
        ),
        pytest.param(
            {"topic": "ops", "server": "ntfy.example.com"},
            [
                "channels.x.server: expected an http:// or https:// URL with a host, "
                'got "ntfy.example.com"'
            ],
            id="server",
        ),
        pytest.param(
            {"topic": "ops", "priority": 7},
            [f"channels.x.priority: {PRIORITY_HINT}, got 7"],
            id="priority-number",
        ),
        pytest.param(
            {"topic": "ops", "priority": "urgent!"},
            [f'channels.x.priority: {PRIORITY_HINT}, got "urgent!"'],
            id="priority-name",
        ),
        pytest.param(
            {"topic": "ops", "priority_up": True},
            [f"channels.x.priority_up: {PRIORITY_HINT}, got true"],
            id="priority-bool",
        ),
        pytest.param(
            {"topic": "ops", "tags": "prod"},
            ['channels.x.tags: expected a list of strings, got "prod"'],
            id="tags",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(ntfy, data)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


def test_it_renders_the_json_publish_body() -> None:
    payload = ntfy.render(DOWN, ntfy.Options(topic="ops", tags=("prod",)))
    assert payload == {
        "topic": "ops",
        "title": "DOWN: Nightly Postgres backup",
        "message": "Nightly Postgres backup is down: no ping came in time.\n"
        "\n"
        "Status: down\n"
        "Reason: no ping came in time\n"
        "Last ping: 2026-01-13T11:30:00Z\n"
        "Expected at: 2026-01-14T11:30:00Z\n"
        "Down since: 2026-01-14T12:00:00Z\n"
        "\n"
        "Last output:\n"
        "pg_dump: error: connection to server failed",
        "priority": 4,
        "tags": ["rotating_light", "prod"],
        "click": "https://hb.example.com/monitors/nightly-backup",
    }


@pytest.mark.parametrize(
    ("alert", "priority", "tag"),
    [
        (DOWN, 5, "rotating_light"),
        (REMINDER, 5, "rotating_light"),
        (UP, 2, "white_check_mark"),
        (TEST, 2, "test_tube"),
    ],
    ids=["down", "reminder", "up", "test"],
)
def test_priority_and_tag_follow_the_event(alert, priority: int, tag: str) -> None:
    payload = ntfy.render(alert, ntfy.Options(topic="ops", priority=5, priority_up=2))
    assert payload["priority"] == priority
    assert payload["tags"] == [tag]


async def test_it_publishes_to_the_server_root(webhook_sink, ctx: SendContext) -> None:
    opts = ntfy.Options(topic="ops", server=webhook_sink.url, token=Secret("tk_abc"))
    await ntfy.send(DOWN, opts, ctx)
    [req] = webhook_sink.requests
    assert (req.method, req.path) == ("POST", "/")
    assert req.headers["Authorization"] == "Bearer tk_abc"
    assert req.json() == ntfy.render(DOWN, opts)


async def test_it_sends_no_authorization_without_a_token(webhook_sink, ctx: SendContext) -> None:
    await ntfy.send(UP, ntfy.Options(topic="ops", server=webhook_sink.url + "/"), ctx)
    [req] = webhook_sink.requests
    assert req.path == "/"
    assert "Authorization" not in req.headers


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "ok"), (429, "retryable"), (507, "retryable"), (400, "permanent"), (403, "permanent")],
)
async def test_it_classifies_the_answer(
    webhook_sink, ctx: SendContext, status: int, outcome: str
) -> None:
    webhook_sink.answer((status, {"code": 40301, "error": "forbidden"}))
    opts = ntfy.Options(topic="ops", server=webhook_sink.url)
    if outcome == "ok":
        await ntfy.send(DOWN, opts, ctx)
        return
    with pytest.raises(DeliveryError) as info:
        await ntfy.send(DOWN, opts, ctx)
    assert str(info.value) == f"ntfy to {webhook_sink.url.removeprefix('http://')}: HTTP {status}"
    assert info.value.permanent is (outcome == "permanent")


async def test_a_refused_connection_is_retryable(closed_port: int, ctx: SendContext) -> None:
    opts = ntfy.Options(topic="ops", server=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(DeliveryError) as info:
        await ntfy.send(DOWN, opts, ctx)
    assert str(info.value) == f"ntfy to 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False
