"""The webhook channel: options, templates, the default JSON body, delivery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heartbeatd.channels import webhook
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.model import AlertEvent, Secret
from tests.channels.samples import DOWN, TEST, UP, parse

URL = "https://hooks.example.com/hook/t0ken"
KNOWN = "$NAME, $SLUG, $STATUS, $EVENT, $REASON, $NOW, $LAST_PING, $BODY, $JSON"


def options(**changes) -> webhook.Options:
    opts, problems = parse(webhook, {"url": URL, **changes})
    assert problems == []
    return opts


# -- parse_options -------------------------------------------------------------------


def test_it_reads_a_minimal_table() -> None:
    opts, problems = parse(webhook, {"url": URL})
    assert problems == []
    assert opts == webhook.Options(url=Secret(URL))


def test_it_reads_every_option() -> None:
    opts, problems = parse(
        webhook,
        {
            "url": URL,
            "method": "PUT",
            "headers": {"Authorization": "Bearer abc", "Content-Type": "application/json"},
            "body": '{"text": "$NAME"}',
            "body_up": '{"text": "$NAME is up"}',
        },
    )
    assert problems == []
    assert opts.method == "PUT"
    assert [(k, v.reveal()) for k, v in opts.headers] == [
        ("Authorization", "Bearer abc"),
        ("Content-Type", "application/json"),
    ]
    assert opts.body == '{"text": "$NAME"}'
    assert opts.bodies == {AlertEvent.UP: '{"text": "$NAME is up"}'}


def test_it_reads_the_url_and_headers_from_files(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(URL + "\n")
    (tmp_path / "headers").write_text("# tokens\nAuthorization: Bearer abc\n\nX-Team: ops\n")
    opts, problems = parse(
        webhook, {"url_file": "url", "headers_file": "headers"}, base_dir=tmp_path
    )
    assert problems == []
    assert opts.url == Secret(URL)
    assert [(k, v.reveal()) for k, v in opts.headers] == [
        ("Authorization", "Bearer abc"),
        ("X-Team", "ops"),
    ]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param({}, ["channels.x.url: is required (or url_file)"], id="no-url"),
        pytest.param(
            {"url": "ftp://example.com/t0ken"},
            ["channels.x.url: expected an http:// or https:// URL with a host"],
            id="not-http",
        ),
        pytest.param(
            {"url": URL, "method": "DELETE"},
            ['channels.x.method: expected one of "POST", "GET", "PUT", "PATCH", got "DELETE"'],
            id="method",
        ),
        pytest.param(
            {"url": URL + "?m=$MONITOR"},
            [
                "channels.x.url: holds an unknown $variable "
                f"(known: {KNOWN}; write $$ for a literal $)"
            ],
            id="unknown-variable-in-url",
        ),
        pytest.param(
            {"url": URL, "body_down": "$NAME costs $5 or $PRICE"},
            [
                "channels.x.body_down: unknown variable $PRICE "
                f"(known: {KNOWN}; write $$ for a literal $)"
            ],
            id="unknown-variable-in-body",
        ),
        pytest.param(
            {"url": URL, "headers": {"Content-Type": "application/json"}, "body": '{"a": $NAME}'},
            [
                "channels.x.body: is not valid JSON once its variables are filled in "
                "(Expecting value: line 1 column 7 (char 6))"
            ],
            id="invalid-json-body",
        ),
        pytest.param(
            {"url": URL, "method": "GET", "body": "x"},
            ['channels.x.body: a GET request carries no body; use method = "POST"'],
            id="get-with-body",
        ),
        pytest.param(
            {"url": URL, "headers": {"Bad Name": "x"}},
            ['channels.x.headers: "Bad Name" is not a valid header name'],
            id="header-name",
        ),
        pytest.param(
            {"url": URL, "headers": {"X-A": 1}},
            ["channels.x.headers: expected a table of strings, got a table"],
            id="header-value",
        ),
        pytest.param(
            {"url": URL, "headers_file": "missing"},
            [
                'channels.x.headers_file: cannot read "/etc/heartbeatd/missing": '
                "No such file or directory"
            ],
            id="headers-file",
        ),
        pytest.param(
            {"url": URL, "headers_file": "/dev/zero"},
            ['channels.x.headers_file: cannot read "/dev/zero": not a regular file'],
            id="headers-file-not-a-file",
        ),
        pytest.param(
            {"url": URL, "headers_file": "two\nlines"},
            [
                'channels.x.headers_file: cannot read "/etc/heartbeatd/two\\nlines": '
                "No such file or directory"
            ],
            id="headers-file-name-escaped",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(webhook, data)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


def test_it_never_shows_a_secret_url_in_an_error() -> None:
    _, problems = parse(webhook, {"url": "hooks.example.com/hook/t0ken"})
    assert problems == [
        "heartbeatd.toml: channels.x.url: expected an http:// or https:// URL with a host"
    ]


def test_it_names_url_file_when_the_file_holds_a_bad_url(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("not a url\n")
    _, problems = parse(webhook, {"url_file": "url"}, base_dir=tmp_path)
    assert problems == [
        "heartbeatd.toml: channels.x.url_file: expected an http:// or https:// URL with a host"
    ]


# -- render --------------------------------------------------------------------------


def test_it_sends_the_alert_json_by_default() -> None:
    req = webhook.render(DOWN, options())
    assert req.method == "POST"
    assert req.url == Secret(URL)
    assert json.loads(req.body) == DOWN.to_json()
    assert [(k, v.reveal()) for k, v in req.headers] == [("Content-Type", "application/json")]


def test_the_default_body_has_every_field_of_the_design() -> None:
    body = json.loads(webhook.render(DOWN, options()).body)
    assert body["event"] == "down"
    assert body["monitor"] == "nightly-backup"
    assert body["name"] == "Nightly Postgres backup"
    assert body["status"] == "down"
    assert body["reason"] == "missed"
    assert body["last_ping"] == "2026-01-13T11:30:00Z"
    assert body["expected_at"] == "2026-01-14T11:30:00Z"
    assert body["down_at"] == "2026-01-14T12:00:00Z"
    assert body["url"] == "https://hb.example.com/monitors/nightly-backup"
    assert body["body"] == "pg_dump: error: connection to server failed\n"


def test_it_url_quotes_values_in_the_url() -> None:
    opts = options(url="https://example.com/$SLUG/$EVENT?name=${NAME}&at=$NOW")
    url = webhook.render(DOWN, opts).url.reveal()
    assert url == (
        "https://example.com/nightly-backup/down"
        "?name=Nightly%20Postgres%20backup&at=2026-01-14T12%3A00%3A00Z"
    )


def test_it_json_escapes_values_in_a_json_body() -> None:
    alert = DOWN.__class__(**{**DOWN.__dict__, "name": 'Say "hi"\n', "body": "a\\b"})
    opts = options(
        headers={"Content-Type": "application/json"},
        body='{"text": "$NAME: $STATUS ($REASON)", "out": "$BODY", "alert": $JSON}',
    )
    req = webhook.render(alert, opts)
    body = json.loads(req.body)
    assert body["text"] == 'Say "hi"\n: down (missed)'
    assert body["out"] == "a\\b"
    assert body["alert"] == alert.to_json()


def test_it_leaves_values_as_they_are_in_a_text_body() -> None:
    opts = options(body="$NAME is $STATUS since $NOW, last ping $LAST_PING. $$5")
    req = webhook.render(DOWN, opts)
    assert req.body == (
        b"Nightly Postgres backup is down since 2026-01-14T12:00:00Z, "
        b"last ping 2026-01-13T11:30:00Z. $5"
    )
    assert ("Content-Type", Secret("text/plain; charset=utf-8")) in req.headers


def test_it_picks_the_body_of_the_event() -> None:
    opts = options(body="any $EVENT", body_up="up: $NAME")
    assert webhook.render(UP, opts).body == b"up: Nightly Postgres backup"
    assert webhook.render(DOWN, opts).body == b"any down"
    assert webhook.render(TEST, opts).body == b"any test"


def test_an_empty_last_ping_is_an_empty_string() -> None:
    assert webhook.render(TEST, options(body="[$LAST_PING]")).body == b"[]"


def test_a_get_request_has_no_body() -> None:
    req = webhook.render(DOWN, options(method="GET", url="https://example.com/?e=$EVENT"))
    assert req.body is None
    assert req.headers == ()
    assert req.url.reveal() == "https://example.com/?e=down"


# -- send ----------------------------------------------------------------------------


async def test_it_posts_the_alert(webhook_sink, ctx: SendContext) -> None:
    opts = options(url=webhook_sink.url + "/hook/t0ken", headers={"Authorization": "Bearer abc"})
    await webhook.send(DOWN, opts, ctx)
    [req] = webhook_sink.requests
    assert req.method == "POST"
    assert req.path == "/hook/t0ken"
    assert req.headers["Authorization"] == "Bearer abc"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == DOWN.to_json()


async def test_it_sends_a_get_with_the_url_template(webhook_sink, ctx: SendContext) -> None:
    opts = options(url=webhook_sink.url + "/ping/$SLUG?event=$EVENT", method="GET")
    await webhook.send(UP, opts, ctx)
    [req] = webhook_sink.requests
    assert (req.method, req.path, req.body) == ("GET", "/ping/nightly-backup?event=up", b"")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "ok"),
        (204, "ok"),
        (429, "retryable"),
        (503, "retryable"),
        (400, "permanent"),
        (404, "permanent"),
    ],
)
async def test_it_classifies_the_answer(
    webhook_sink, ctx: SendContext, status: int, outcome: str
) -> None:
    webhook_sink.answer(status)
    opts = options(url=webhook_sink.url + "/hook")
    if outcome == "ok":
        await webhook.send(DOWN, opts, ctx)
        return
    with pytest.raises(DeliveryError) as info:
        await webhook.send(DOWN, opts, ctx)
    host = webhook_sink.url.removeprefix("http://")
    assert str(info.value) == f"webhook to {host}: HTTP {status}"
    assert info.value.permanent is (outcome == "permanent")


async def test_a_refused_connection_is_retryable(closed_port: int, ctx: SendContext) -> None:
    opts = options(url=f"http://127.0.0.1:{closed_port}/hook")
    with pytest.raises(DeliveryError) as info:
        await webhook.send(DOWN, opts, ctx)
    assert str(info.value) == f"webhook to 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False
