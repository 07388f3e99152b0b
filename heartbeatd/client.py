"""Talking to a running daemon's API, for `heartbeatd status`, `pause`, …"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from heartbeatd.addresses import split_address
from heartbeatd.config import Config

# Where a daemon listening on every interface is reached from this machine.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class ClientError(Exception):
    """The daemon could not be asked, or said no; the message is for the user.

    `status` is the HTTP status of a refusal, None when nothing answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DaemonAPI:
    """Where the daemon is and how to log in to it."""

    url: str
    # The whole Authorization header value, or None to send none.
    authorization: str | None = None

    @staticmethod
    def bearer(token: str) -> str:
        return f"Bearer {token}"

    @staticmethod
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def daemon_url(config: Config) -> str:
    """Where the CLI finds the daemon: its first listen address, on loopback
    when it listens on every interface."""
    host, port = split_address(config.server.listen[0])
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def call(
    api: DaemonAPI, path: str, *, method: str = "GET", timeout: float = 10, body: Any = None
) -> Any:
    base = api.url.rstrip("/")
    data = b"" if method == "POST" else None
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, method=method, data=data)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if api.authorization is not None:
        request.add_header("Authorization", api.authorization)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise ClientError(
            f"heartbeatd at {base} answered {exc.code}: {message}", exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"heartbeatd is not running at {base} ({reason})") from None
