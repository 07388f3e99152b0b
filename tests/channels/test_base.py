"""Failures in words that are safe to log: one description for every channel,
the delivery worker and `heartbeatd exec`."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import aiosmtplib
import pytest
from aiohttp.client_reqrep import ConnectionKey

from heartbeatd.channels.base import DeliveryError, describe_failure

SECRET = "s3cr3t"
URL = f"https://user:{SECRET}@hooks.example.com/T0/B1/{SECRET}?token={SECRET}"
KEY = ConnectionKey(**{name: None for name in ConnectionKey._fields})._replace(
    host="hooks.example.com", port=443
)


def certificate_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    # What the ssl module sets on a failed handshake.
    error.verify_message = "self-signed certificate"
    return error


def smtp_connect_refused() -> aiosmtplib.SMTPConnectError:
    refused = ConnectionRefusedError(111, "Connection refused")
    error = aiosmtplib.SMTPConnectError(
        f"Error connecting to smtp.example.com on port 587: {refused}"
    )
    error.__cause__ = refused
    return error


CASES = [
    pytest.param(
        DeliveryError("slack to hooks.example.com: HTTP 500"),
        "slack to hooks.example.com: HTTP 500",
        id="delivery-error-as-is",
    ),
    pytest.param(asyncio.TimeoutError(), "timed out", id="asyncio-timeout"),
    pytest.param(TimeoutError(), "timed out", id="builtin-timeout"),
    pytest.param(aiohttp.ConnectionTimeoutError(URL), "timed out", id="aiohttp-timeout"),
    pytest.param(
        aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, "Name or service not known")),
        "cannot resolve the host name",
        id="dns",
    ),
    pytest.param(
        aiohttp.ClientConnectorCertificateError(KEY, certificate_error()),
        "TLS error (certificate: self-signed certificate)",
        id="certificate",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused")),
        "connection refused",
        id="refused",
    ),
    pytest.param(
        aiohttp.ClientConnectorError(KEY, OSError(101, "Network is unreachable")),
        "cannot connect (network is unreachable)",
        id="unreachable",
    ),
    pytest.param(aiohttp.ClientConnectionResetError(URL), "connection reset", id="reset"),
    pytest.param(
        aiohttp.ServerDisconnectedError(URL), "server closed the connection", id="disconnected"
    ),
    pytest.param(aiohttp.ClientPayloadError(URL), "broken answer", id="payload"),
    pytest.param(
        aiohttp.TooManyRedirects(None, (), status=302, message=URL),
        "too many redirects",
        id="redirects",
    ),
    pytest.param(
        aiohttp.ClientResponseError(None, (), status=503, message=URL),
        "bad answer (HTTP 503)",
        id="bad-answer",
    ),
    pytest.param(aiohttp.InvalidURL(URL), "invalid URL", id="invalid-url"),
    pytest.param(aiohttp.ClientError(URL), "request failed (ClientError)", id="other-aiohttp"),
    pytest.param(smtp_connect_refused(), "connection refused", id="refused-as-the-cause"),
    pytest.param(
        OSError(f"cannot reach {URL}"),
        "OSError: cannot reach https://hooks.example.com/…",
        id="url-in-an-os-error",
    ),
    pytest.param(
        ValueError(f"bad {URL} given"),
        "ValueError: bad https://hooks.example.com/… given",
        id="url-in-anything-else",
    ),
    pytest.param(RuntimeError(), "RuntimeError", id="no-message"),
]


@pytest.mark.parametrize(("exc", "text"), CASES)
def test_it_describes_each_failure_in_its_own_words(exc: BaseException, text: str) -> None:
    assert describe_failure(exc) == text


@pytest.mark.parametrize(("exc", "text"), CASES)
def test_no_description_holds_a_url_path_or_a_token(exc: BaseException, text: str) -> None:
    assert SECRET not in describe_failure(exc)
