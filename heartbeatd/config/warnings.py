"""What `heartbeatd check` warns about: valid settings that are probably not
what the user wants, such as an open API or secrets in a world-readable file."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from heartbeatd.addresses import is_loopback, split_address
from heartbeatd.config.files import state_directory
from heartbeatd.config.values import Config
from heartbeatd.tables import show

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
    selfping = data.get("self", {})
    if isinstance(selfping, dict) and "ping_url" in selfping:
        found.append("self.ping_url")
    return found


# The PATH systemd gives a service that sets none (systemd.exec(5)): what the
# command channel's programs are looked up on under the shipped unit.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
# Where the shipped unit reads its config (ConfigurationDirectory=) and keeps
# its state (StateDirectory=): everything else is read-only to it.
UNIT_CONFIG_DIR = Path("/etc/heartbeatd")
UNIT_STATE_DIR = Path("/var/lib/heartbeatd")


def find_ignored_options(data: dict[str, Any]) -> list[str]:
    """Key paths of options that are valid but have no effect."""
    found = []
    monitors = data.get("monitors", {})
    for slug, options in monitors.items() if isinstance(monitors, dict) else ():
        # A period counts from the last ping: no wall clock, so no time zone.
        if isinstance(options, dict) and "period" in options and "timezone" in options:
            found.append(f"monitors.{slug}.timezone")
    return found


def check_warnings(config: Config) -> list[str]:
    """Things that are valid but probably not what the user wants."""
    where = f"{config.path}: "
    warnings = []
    public = [a for a in config.server.listen if not is_loopback(split_address(a)[0])]
    if public and config.server.api_token is None and not config.web.users:
        # With [web.users] alone every surface but pings and badges needs a
        # login (README, "Who may see what"): nothing is open to warn about.
        warnings.append(
            f"{where}server.listen: listens on {public[0]} without [server] api_token_file"
            " or [web.users]: the status page, the read API and /metrics are open to anyone"
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
    storage = _storage_warning(config)
    if storage:
        warnings.append(f"{where}storage.path: {storage}")
    for name, channel in config.channels.items():
        program = _program_problem(channel.options) if channel.type == "command" else None
        if program:
            warnings.append(f"{where}channels.{name}.command: {program}")
    for key in config.ignored_options:
        warnings.append(
            f"{where}{key}: has no effect with period (a period counts from the last ping);"
            " only a cron schedule uses it: remove it, or use schedule"
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


def _storage_warning(config: Config) -> str | None:
    """Why the shipped unit could not write the database, if it could not.

    Under ProtectSystem=strict only the state directory is writable. Checked
    when the service's environment says so ($STATE_DIRECTORY), or when the
    file sits where the shipped unit reads it; a relative path then lands in
    the state directory, which `check` run by hand cannot know.
    """
    path = config.storage.path
    state = state_directory()
    if state is None:
        config_dir = config.path.absolute().parent
        if config_dir != UNIT_CONFIG_DIR or path.is_relative_to(config_dir):
            return None
        state = UNIT_STATE_DIR
    if path.is_relative_to(state):
        return None
    return (
        f"{path} is outside the state directory ({state}), which the shipped unit's"
        " ProtectSystem=strict leaves the only writable one: give a relative path"
        f' (path = "{path.name}"), or add ReadWritePaths={path.parent} with'
        " `systemctl edit heartbeatd`"
    )


def _program_problem(options: Any) -> str | None:
    """Why the command channel's program would not start, if it would not."""
    command = getattr(options, "command", ())
    if not command:
        return None
    program = command[0]
    if "/" not in program:
        if shutil.which(program, path=SERVICE_PATH) is None:
            return (
                f"{show(program)} is not found on the PATH the service runs with"
                f" ({SERVICE_PATH}): give its full path"
            )
        return None
    try:
        mode = os.stat(program).st_mode
    except FileNotFoundError:
        return f"{show(program)} does not exist"
    except OSError as exc:
        return f"{show(program)} cannot be read: {exc.strerror}"
    if not stat.S_ISREG(mode):
        return f"{show(program)} is not a file"
    if not os.access(program, os.X_OK):
        return f"{show(program)} is not executable: chmod +x it"
    return None
