"""Talking to a running daemon's API, for `heartbeatd status`, `pause`, …"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from heartbeatd.addresses import split_address
from heartbeatd.config import Config

# Where a daemon listening on every interface is reached from this machine.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class ClientError(Exception):
    """The daemon could not be asked, or said no; the message is for the user."""


def daemon_url(config: Config) -> str:
    """Where the CLI finds the daemon: its first listen address, on loopback
    when it listens on every interface."""
    host, port = split_address(config.server.listen[0])
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def call(
    config: Config, path: str, *, method: str = "GET", url: str | None = None, timeout: float = 10
) -> Any:
    base = (url or daemon_url(config)).rstrip("/")
    data = b"" if method == "POST" else None
    request = urllib.request.Request(base + path, method=method, data=data)
    token = config.server.api_token
    if token is not None:
        request.add_header("Authorization", f"Bearer {token.reveal()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise ClientError(f"heartbeatd at {base} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"heartbeatd is not running at {base} ({reason})") from None
