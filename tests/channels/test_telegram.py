"""The telegram channel: sendMessage through the Bot API (a local stand-in here)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from heartbeatd.channels import telegram
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.model import Secret
from tests.channels.samples import DOWN, UP, parse

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
OK = (200, {"ok": True, "result": {"message_id": 1}})


def options(api_url: str, chat_id: int | str = -1001234567890) -> telegram.Options:
    return telegram.Options(bot_token=Secret(TOKEN), chat_id=chat_id, api_url=api_url)


def test_it_reads_every_option(tmp_path: Path) -> None:
    (tmp_path / "bot").write_text(TOKEN + "\n")
    opts, problems = parse(
        telegram,
        {"bot_token_file": "bot", "chat_id": -1001234567890, "api_url": "http://127.0.0.1:8081"},
        base_dir=tmp_path,
    )
    assert problems == []
    assert opts == options("http://127.0.0.1:8081")


@pytest.mark.parametrize(
    ("chat_id", "expected"),
    [(42, 42), ("-1001234567890", -1001234567890), ("@ops_alerts", "@ops_alerts")],
)
def test_it_takes_a_chat_id_as_a_number_or_a_channel_name(chat_id, expected) -> None:
    opts, problems = parse(telegram, {"bot_token": TOKEN, "chat_id": chat_id})
    assert problems == []
    assert opts.chat_id == expected
    assert opts.api_url == "https://api.telegram.org"


CHAT_HINT = 'expected a chat id such as -1001234567890 or a channel such as "@ops_alerts"'


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param(
            {},
            [
                "channels.x.bot_token: is required (or bot_token_file)",
                "channels.x.chat_id: is required",
            ],
            id="empty",
        ),
        pytest.param(
            {"bot_token": "not-a-token", "chat_id": 1},
            ['channels.x.bot_token: expected a token as BotFather gives it ("<digits>:<letters>")'],
            id="token-shape",
        ),
        pytest.param(
            {"bot_token": TOKEN, "chat_id": "ops"},
            [f'channels.x.chat_id: {CHAT_HINT}, got "ops"'],
            id="chat-name",
        ),
        pytest.param(
            {"bot_token": TOKEN, "chat_id": 1.5},
            [f"channels.x.chat_id: {CHAT_HINT}, got 1.5"],
            id="chat-float",
        ),
        pytest.param(
            {"bot_token": TOKEN, "chat_id": 1, "api_url": "api.telegram.org"},
            [
                "channels.x.api_url: expected an http:// or https:// URL with a host, "
                'got "api.telegram.org"'
            ],
            id="api-url",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(telegram, data)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


def test_it_renders_an_html_message() -> None:
    payload = telegram.render(DOWN, options("https://api.telegram.org"))
    assert payload["chat_id"] == -1001234567890
    assert payload["parse_mode"] == "HTML"
    assert payload["link_preview_options"] == {"is_disabled": True}
    assert payload["text"] == (
        "🔴 <b>DOWN: Nightly Postgres backup</b>\n"
        "Nightly Postgres backup is down: no ping came in time.\n"
        "\n"
        "<b>Monitor:</b> nightly-backup\n"
        "<b>Status:</b> down\n"
        "<b>Reason:</b> no ping came in time\n"
        "<b>Last ping:</b> 2026-01-13T11:30:00Z\n"
        "<b>Expected at:</b> 2026-01-14T11:30:00Z\n"
        "<b>Down since:</b> 2026-01-14T12:00:00Z\n"
        '<a href="https://hb.example.com/monitors/nightly-backup">Open in heartbeatd</a>\n'
        "\n"
        "<b>Last output:</b>\n"
        "<pre>pg_dump: error: connection to server failed</pre>"
    )


def test_it_escapes_html() -> None:
    alert = replace(DOWN, name="<b>x</b> & y", body="if a < b: fail")
    text = telegram.render(alert, options("https://api.telegram.org"))["text"]
    assert "DOWN: &lt;b&gt;x&lt;/b&gt; &amp; y" in text
    assert "<pre>if a &lt; b: fail</pre>" in text


async def test_it_calls_send_message(webhook_sink, ctx: SendContext) -> None:
    webhook_sink.answer(OK)
    opts = options(webhook_sink.url)
    await telegram.send(UP, opts, ctx)
    [req] = webhook_sink.requests
    assert (req.method, req.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert req.json() == telegram.render(UP, opts)


@pytest.mark.parametrize(
    ("answer", "message", "permanent"),
    [
        pytest.param(
            (
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 5",
                    "parameters": {"retry_after": 5},
                },
            ),
            "HTTP 429: Too Many Requests: retry after 5 (retry after 5s)",
            False,
            id="429",
        ),
        pytest.param(
            (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
            "HTTP 400: Bad Request: chat not found",
            True,
            id="400",
        ),
        pytest.param(
            (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
            "HTTP 401: Unauthorized",
            True,
            id="401",
        ),
        pytest.param(
            (404, {"ok": False, "error_code": 404, "description": "Not Found"}),
            "HTTP 404: Not Found",
            True,
            id="404",
        ),
        pytest.param(
            (
                200,
                {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                },
            ),
            "HTTP 403: Forbidden: bot was blocked by the user",
            True,
            id="200-not-ok",
        ),
        pytest.param((503, "Service Unavailable"), "HTTP 503", False, id="503-not-json"),
        pytest.param(
            (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
            "HTTP 502: Bad Gateway",
            False,
            id="502",
        ),
        pytest.param(
            (200, "<html>hello</html>"),
            "HTTP 200, but not a Bot API answer",
            True,
            id="not-the-api",
        ),
    ],
)
async def test_it_classifies_the_answer(
    webhook_sink, ctx: SendContext, answer, message: str, permanent: bool
) -> None:
    webhook_sink.answer(answer)
    with pytest.raises(DeliveryError) as info:
        await telegram.send(DOWN, options(webhook_sink.url), ctx)
    assert str(info.value) == f"telegram to {webhook_sink.url.removeprefix('http://')}: {message}"
    assert info.value.permanent is permanent


async def test_it_cuts_the_token_out_of_a_description(webhook_sink, ctx: SendContext) -> None:
    webhook_sink.answer((400, {"ok": False, "error_code": 400, "description": f"bad bot{TOKEN}"}))
    with pytest.raises(DeliveryError) as info:
        await telegram.send(DOWN, options(webhook_sink.url), ctx)
    assert str(info.value).endswith("HTTP 400: bad bot<secret>")


async def test_a_refused_connection_is_retryable(closed_port: int, ctx: SendContext) -> None:
    with pytest.raises(DeliveryError) as info:
        await telegram.send(DOWN, options(f"http://127.0.0.1:{closed_port}"), ctx)
    assert str(info.value) == f"telegram to 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False
