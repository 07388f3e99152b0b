"""Who may see what: the API token, [web] users, and the guards that wrap handlers.

Guards wrap the handlers that need a login, route by route, rather than a
middleware: pings (the hot path), /healthz and badges are never behind auth
and pay nothing for it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from heartbeatd import auth
from heartbeatd.web.keys import ENGINE, LOGINS

# One logger for the package: its lines keep the name "heartbeatd.web".
log = logging.getLogger(__package__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# scrypt takes ~0.1 s and 32 MiB; a burst of wrong logins must not take all
# the memory or every executor thread.
MAX_CONCURRENT_LOGINS = 2


def _token_ok(request: web.Request) -> bool:
    token = request.app[ENGINE].config.server.api_token
    if token is None:
        return False
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.reveal().encode())


def _unauthorized(request: web.Request) -> web.Response:
    if request.app[ENGINE].config.web.users:
        # Users log in through basic auth: the CLI's --user and curl -u too.
        return web.json_response(
            {"error": "log in as a [web.users] user (basic auth) or with the bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="heartbeatd"'},
        )
    return web.json_response(
        {"error": "a valid bearer token is required"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="heartbeatd"'},
    )


def guard_page(handler: Handler) -> Handler:
    """The status page and /metrics: a bearer token or a basic-auth login,
    when a token or [web] users are configured."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not await _login_ok(request):
            return web.Response(
                status=401,
                text="401: log in as a [web.users] user, or with the API token\n",
                headers={"WWW-Authenticate": 'Basic realm="heartbeatd"'},
            )
        return await handler(request)

    return guarded


def guard_read(handler: Handler) -> Handler:
    """API reads are protected like the status page (open when neither a
    token nor users are configured): users guarding the page guard this too."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not await _login_ok(request):
            return _unauthorized(request)
        return await handler(request)

    return guarded


def guard_write(handler: Handler) -> Handler:
    """API writes need the API token or a [web.users] login, and are off
    without either: an open daemon must not be paused by anyone."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        config = request.app[ENGINE].config
        if config.server.api_token is None and not config.web.users:
            return web.json_response(
                {"error": "the write API is off: set [server] api_token_file or [web.users]"},
                status=403,
            )
        if not await _login_ok(request):
            return _unauthorized(request)
        return await handler(request)

    return guarded


async def _login_ok(request: web.Request) -> bool:
    config = request.app[ENGINE].config
    users, token = config.web.users, config.server.api_token
    if not users and token is None:
        # Nothing to log in with: open, as DESIGN §6 says.
        return True
    if _token_ok(request):
        return True
    login = _basic_login(request.headers.get(hdrs.AUTHORIZATION, ""))
    if login is None:
        return False
    user, password = login
    if users:
        async with request.app[LOGINS]:
            # In a thread: scrypt would stall every ping for ~0.1 s.
            ok = await asyncio.to_thread(auth.check_user, users, user, password)
        if not ok:
            log.warning("login failed user=%r remote=%s", user[:64], request.remote)
        return ok
    # Only a token: any user name, the token as the password (for tools that
    # speak basic auth only).
    assert token is not None
    return hmac.compare_digest(password.encode(), token.reveal().encode())


def _basic_login(header: str) -> tuple[str, str] | None:
    """(user, password) from "Basic base64(user:password)", or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    return (user, password) if colon else None
