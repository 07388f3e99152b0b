"""What the HTTP channels share: one request helper, one status classifier and
URL checks for their option parsers.

Webhook, Slack and Discord URLs carry their token in the path, Telegram's in
the path, ntfy's in a header. So every message built here names the host and
the status only, and never the text of an aiohttp exception: those often
quote the whole URL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

from heartbeatd.channels.base import DeliveryError, SendContext, describe_failure
from heartbeatd.model import Secret
from heartbeatd.tables import Table

# An answer body is read for its status detail only; a huge one is not our business.
MAX_ANSWER_BYTES = 64 * 1024


def classify_status(status: int, where: str = "") -> DeliveryError | None:
    """None for 2xx; a retryable error for 408, 429 and 5xx; permanent otherwise.

    Redirects are not followed (see `fetch`), so a 3xx is permanent too: the
    configured URL is wrong and waiting will not fix it.
    """
    if 200 <= status < 300:
        return None
    prefix = f"{where}: " if where else ""
    if status in (408, 429) or status >= 500:
        return DeliveryError(f"{prefix}HTTP {status}", permanent=False)
    hint = " (redirects are not followed: configure the final URL)" if 300 <= status < 400 else ""
    return DeliveryError(f"{prefix}HTTP {status}{hint}", permanent=True)


def host_of(url: Secret | str) -> str:
    """`host` or `host:port` of a URL: the only part of it we ever print."""
    text = url.reveal() if isinstance(url, Secret) else url
    try:
        parsed = URL(text)
    except (TypeError, ValueError):
        return "an invalid URL"
    host = parsed.host or "an invalid URL"
    if parsed.explicit_port is not None:
        host = f"{host}:{parsed.explicit_port}"
    return host


async def fetch(
    ctx: SendContext,
    method: str,
    url: Secret | str,
    *,
    what: str,
    json: Any = None,
    data: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request; the status and (the start of) the answer body.

    Transport failures become a retryable DeliveryError "<what> to <host>: …".
    """
    text = url.reveal() if isinstance(url, Secret) else url
    where = f"{what} to {host_of(text)}"

    async def attempt() -> tuple[int, bytes]:
        async with ctx.session.request(
            method,
            text,
            json=json,
            data=data,
            headers=headers,
            # The attempt's time limit is the Clock's, below; none of aiohttp's own.
            timeout=aiohttp.ClientTimeout(total=None),
            # A redirect may point a POST with a token somewhere else; never follow.
            allow_redirects=False,
        ) as resp:
            return resp.status, await resp.content.read(MAX_ANSWER_BYTES)

    try:
        return await ctx.clock.wait_for(attempt(), ctx.timeout)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        # `from None`: the cause's text may quote the URL, and loggers print causes.
        raise DeliveryError(f"{where}: {describe_failure(exc)}", permanent=False) from None


async def request(
    ctx: SendContext,
    method: str,
    url: Secret | str,
    *,
    what: str = "webhook",
    json: Any = None,
    data: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request that must answer 2xx; raises a classified DeliveryError otherwise."""
    status, body = await fetch(ctx, method, url, what=what, json=json, data=data, headers=headers)
    error = classify_status(status, f"{what} to {host_of(url)}")
    if error is not None:
        raise error
    return body


def check_url(text: str) -> str | None:
    """An error message for a URL a channel cannot use, or None."""
    try:
        parsed = URL(text)
    except (TypeError, ValueError):
        return "expected an http:// or https:// URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "expected an http:// or https:// URL with a host"
    return None


def secret_url(table: Table, key: str, *, required: bool = True) -> Secret | None:
    """A URL that carries a token: `key` or `key_file`. Errors never show the value."""
    url = table.secret(key, required=required)
    if url is None:
        return None
    message = check_url(url.reveal())
    if message is not None:
        shown = key + "_file" if table.has(key + "_file") else key
        table.error(shown, message)
        return None
    return url


def plain_url(table: Table, key: str, default: str) -> str:
    """A URL without secrets in it, such as a server address; errors show it."""
    text = table.text(key, default)
    if text is None:
        return default
    message = check_url(text)
    if message is not None:
        table.error(key, f'{message}, got "{text}"')
        return default
    return text
