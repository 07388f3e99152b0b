"""The shared HTTP helper: one status classifier, transport failures in our own words."""

from __future__ import annotations

import asyncio

import pytest

from heartbeatd.channels import http
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.clock import FakeClock
from heartbeatd.model import Secret
from tests.harness import advance_until_done


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "ok"),
        (201, "ok"),
        (204, "ok"),
        (301, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (408, "retryable"),
        (410, "permanent"),
        (413, "permanent"),
        (429, "retryable"),
        (500, "retryable"),
        (502, "retryable"),
        (503, "retryable"),
        (504, "retryable"),
    ],
    ids=str,
)
def test_it_classifies_statuses(status: int, outcome: str) -> None:
    error = http.classify_status(status, "webhook to example.com")
    if outcome == "ok":
        assert error is None
    else:
        assert error is not None
        assert error.permanent is (outcome == "permanent")
        assert str(error).startswith(f"webhook to example.com: HTTP {status}")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://hooks.example.com/services/T0/B0/XXXX", "hooks.example.com"),
        ("http://127.0.0.1:8080/hook?token=abc", "127.0.0.1:8080"),
        ("https://example.com:443/x", "example.com:443"),
    ],
)
def test_it_names_only_the_host(url: str, host: str) -> None:
    assert http.host_of(Secret(url)) == host


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/hook", None),
        ("http://127.0.0.1:9/x", None),
        ("ftp://example.com/x", "expected an http:// or https:// URL with a host"),
        ("example.com/hook", "expected an http:// or https:// URL with a host"),
        ("https:///path-only", "expected an http:// or https:// URL with a host"),
    ],
)
def test_it_checks_urls(url: str, message: str | None) -> None:
    assert http.check_url(url) == message


async def test_it_returns_the_answer_on_2xx(webhook_sink, ctx: SendContext) -> None:
    webhook_sink.answer((200, "fine"))
    body = await http.request(ctx, "POST", webhook_sink.url + "/hook", json={"a": 1})
    assert body == b"fine"
    assert webhook_sink.requests[0].json() == {"a": 1}


async def test_it_reports_the_host_and_status_but_not_the_path(
    webhook_sink, ctx: SendContext
) -> None:
    webhook_sink.answer(503)
    url = Secret(webhook_sink.url + "/hook/s3cr3t?token=s3cr3t")
    with pytest.raises(DeliveryError) as info:
        await http.request(ctx, "POST", url, what="webhook")
    host = webhook_sink.url.removeprefix("http://")
    assert str(info.value) == f"webhook to {host}: HTTP 503"
    assert info.value.permanent is False


async def test_it_does_not_follow_redirects(webhook_sink, ctx: SendContext) -> None:
    webhook_sink.answer((302, ""))
    with pytest.raises(DeliveryError) as info:
        await http.request(ctx, "POST", webhook_sink.url + "/hook")
    assert info.value.permanent is True
    assert "redirects are not followed" in str(info.value)
    assert len(webhook_sink.requests) == 1


async def test_it_calls_a_refused_connection_retryable(closed_port: int, ctx: SendContext) -> None:
    url = Secret(f"http://127.0.0.1:{closed_port}/hook/s3cr3t")
    with pytest.raises(DeliveryError) as info:
        await http.request(ctx, "POST", url, what="slack")
    assert str(info.value) == f"slack to 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False
    # The aiohttp error (which quotes the URL) is not chained for a logger to print.
    assert info.value.__suppress_context__ is True


async def test_it_times_out_retryable(webhook_sink, ctx: SendContext, clock: FakeClock) -> None:
    webhook_sink.hold()
    held = SendContext(session=ctx.session, timeout=30.0, clock=clock)
    sending = asyncio.ensure_future(http.request(held, "POST", webhook_sink.url + "/hook"))
    await advance_until_done(clock, sending, 30)
    with pytest.raises(DeliveryError) as info:
        sending.result()
    assert str(info.value).endswith(": timed out")
    assert info.value.permanent is False
