"""What `heartbeatd check` warns about: valid settings that are probably not
what the user wants, such as an open API or secrets in a world-readable file."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from heartbeatd.addresses import is_loopback, split_address
from heartbeatd.config.values import Config

# Keys that hold a secret when given inline; each has a *_file twin.
SECRET_KEYS = ("password", "token", "api_token", "bot_token", "ping_key", "badge_key", "url")


def find_inline_secrets(data: dict[str, Any]) -> list[str]:
    found = []
    server = data.get("server", {})
    for key in ("ping_key", "api_token", "badge_key"):
        if isinstance(server, dict) and key in server:
            found.append(f"server.{key}")
    smtp = data.get("smtp", {})
    if isinstance(smtp, dict) and "password" in smtp:
        found.append("smtp.password")
    channels = data.get("channels", {})
    for name, options in channels.items() if isinstance(channels, dict) else ():
        for key in options if isinstance(options, dict) else ():
            if key in SECRET_KEYS:
                found.append(f"channels.{name}.{key}")
    return found


def check_warnings(config: Config) -> list[str]:
    """Things that are valid but probably not what the user wants."""
    where = f"{config.path}: "
    warnings = []
    public = [a for a in config.server.listen if not is_loopback(split_address(a)[0])]
    if public and config.server.api_token is None:
        warnings.append(
            f"{where}server.listen: listens on {public[0]} without [server] api_token_file:"
            " the read-only API, /metrics and the status page are open to anyone"
            " who can reach it, and the write API is off"
        )
    if public and config.server.ping_key is None:
        warnings.append(
            f"{where}server.listen: listens on {public[0]} without [server] ping_key:"
            " anyone who can reach it and guess a slug can ping a monitor"
        )
    host = urlsplit(config.server.base_url).hostname or ""
    if host in ("0.0.0.0", "::"):
        warnings.append(
            f"{where}server.base_url: alert links will point to {config.server.base_url};"
            " set base_url to the address users reach heartbeatd at"
        )
    if not config.monitors:
        warnings.append(f"{where}monitors: none configured, so heartbeatd would watch nothing")
    for slug, monitor in config.monitors.items():
        if not monitor.channels:
            warnings.append(f"{where}monitors.{slug}: has no channels, so nobody hears of it")
    if config.inline_secrets and _is_world_readable(config.path):
        keys = ", ".join(config.inline_secrets)
        warnings.append(
            f"{where}holds secrets inline ({keys}) and other users can read it:"
            " chmod o-r the file, or move them to *_file keys"
        )
    return warnings


def _is_world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o004)
    except OSError:
        return False
