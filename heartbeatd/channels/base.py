"""What every channel module shares: the contract it satisfies (`ChannelType`),
the failure type, how a failure is told in a log, and the parse and send
contexts."""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from heartbeatd.alerts import Alert
from heartbeatd.clock import Clock
from heartbeatd.tables import Table


class DeliveryError(Exception):
    """One failed attempt. `permanent` means trying again cannot help.

    The message names the host and the status, never a URL path or a token.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


CAUSES_FOLLOWED = 5

# scheme://user:password@host/path?query -> scheme://host/…
_URL = re.compile(r"([a-z][a-z0-9+.-]*://)(?:[^@/\s'\"]*@)?([^/\s'\"?#]+)[^\s'\"]*", re.I)


def describe_failure(exc: BaseException) -> str:
    """Words for a failed attempt that are safe to log: no URL path, no token.

    Transport failures (aiohttp's, the socket's, an SMTP connection's) in our
    own words, never `str(exc)`, which often quotes the whole URL. A
    DeliveryError as it is: its message was written to be logged. Anything
    else by its type, with each URL in its text cut down to scheme and host.
    """
    if isinstance(exc, DeliveryError):
        return str(exc)
    # Two classes on Python 3.10, one since 3.11.
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, aiohttp.ClientError):
        return _describe_client_error(exc)
    if isinstance(exc, OSError):
        described = _describe_os_error(exc)
        if described is not None:
            return described
    text = _URL.sub(r"\1\2/…", str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "cannot resolve the host name"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        # The verifier's reason ("self-signed certificate") names no URL.
        reason = getattr(exc.certificate_error, "verify_message", None)
        if reason:
            return f"TLS error (certificate: {reason})"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error (certificate or handshake)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "broken answer"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad answer (HTTP {exc.status})"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    described = None
    if isinstance(exc, aiohttp.ClientConnectorError):
        described = _describe_os_error(exc.os_error)
    elif isinstance(exc, OSError):
        described = _describe_os_error(exc)
    return described or f"request failed ({type(exc).__name__})"


def _describe_os_error(exc: BaseException) -> str | None:
    # A wrapping error (aiosmtplib's SMTPConnectError) has the socket's as its
    # cause. A few links are enough, and a chain that loops must not hang us.
    seen: BaseException | None = exc
    for _ in range(CAUSES_FOLLOWED):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, ConnectionResetError):
            return "connection reset"
        if isinstance(seen, ssl.SSLError):
            return "TLS error"
        if isinstance(seen, OSError) and seen.strerror:
            # strerror is the C library's text ("Network is unreachable"): no URL in it.
            return f"cannot connect ({seen.strerror.lower()})"
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class ParseEnv:
    """What option parsers may need beyond their own table."""

    # The directory of the config file: relative *_file paths start there.
    base_dir: Path
    # The parsed [smtp] table (heartbeatd.channels.email.SmtpOptions) or None.
    smtp: Any = None


@dataclass(frozen=True)
class SendContext:
    """What one send attempt may use. Owned and closed by the delivery worker."""

    session: aiohttp.ClientSession
    # Seconds one attempt may take, from [alerts] send_timeout.
    timeout: float = 30.0
    # What a channel's own timeouts run on (the command channel's, SMTP's).
    clock: Clock = field(default_factory=Clock)


OptionsT = TypeVar("OptionsT")


class ChannelType(Protocol[OptionsT]):
    """What a channel module provides; the modules themselves satisfy it.

    - `Options`: a frozen dataclass of its settings;
    - `parse_options(table, env)`: reads its `[channels.<name>]` table,
      recording problems on the table (never raising), so `heartbeatd check`
      reports a bad URL before the first alert needs it;
    - `render(alert, opts)`: a pure function building the payload;
    - `send(alert, opts, ctx)`: one attempt. It raises
      `DeliveryError(message, permanent=...)` and never loops or sleeps: the
      outbox decides when to try again.
    """

    @property
    def Options(self) -> type[OptionsT]: ...

    def parse_options(self, table: Table, env: ParseEnv) -> OptionsT: ...

    def render(self, alert: Alert, opts: OptionsT) -> object: ...

    async def send(self, alert: Alert, opts: OptionsT, ctx: SendContext) -> None: ...
