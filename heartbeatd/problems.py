"""Config problems: the error that lists them, and how values and key paths read in them.

Every message names the file and the key path (`monitors.backup.grace`), and
shows a value short and escaped, so a user fixes the whole file in one round.
"""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path

from heartbeatd.durations import quote

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(Exception):
    """One or more problems with a config file, each a full line for the user."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# TOML integers are signed 64-bit; the parser accepts longer ones (up to
# 4,300 decimal digits, or any length in hex), which SQLite, JSON and str()
# then choke on.
INT64 = range(-(2**63), 2**63)
# An array in a message shows this many items, nested this deep.
_SHOWN_ITEMS = 5
_SHOWN_DEPTH = 2


def show(value: object, depth: int = 0) -> str:
    """A value for a message, as the user typed it in TOML, on one short line."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value not in INT64:
        return f"a number of {value.bit_length()} bits"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        if depth >= _SHOWN_DEPTH:
            return "[\u2026]"
        items = [show(v, depth + 1) for v in value[:_SHOWN_ITEMS]]
        if len(value) > _SHOWN_ITEMS:
            items.append("\u2026")
        return "[" + ", ".join(items) + "]"
    if isinstance(value, (date, time)):
        return value.isoformat()
    return repr(value)


def join_key(path: str, key: str) -> str:
    part = key if _BARE_KEY.fullmatch(key) else show(key)
    return f"{path}.{part}" if path else part


# systemd hands a service its credentials (LoadCredential=) in
# /run/credentials/<unit>/<name>, which exists only while the service runs.
CREDENTIALS_ROOT = Path("/run/credentials")


class Problems:
    """Collects `file: key.path: message` lines."""

    def __init__(
        self, filename: str, base_dir: Path | None = None, credentials: Path | None = None
    ) -> None:
        self.filename = filename
        # Relative *_file paths are read from here: the config file's directory.
        self.base_dir = base_dir
        # `check --credentials DIR`: read /run/credentials/<unit>/<name> as
        # DIR/<name>, to check a config before the service has ever run.
        self.credentials = credentials
        self.lines: list[str] = []

    def locate(self, name: str, base: Path | None = None) -> Path:
        """The file a *_file key names, as it is to be read."""
        path = Path(name)
        if self.credentials is not None and path.parent.parent == CREDENTIALS_ROOT:
            return self.credentials / path.name
        base = base or self.base_dir
        return base / path if base is not None and not path.is_absolute() else path

    def add(self, path: str, message: str) -> None:
        where = f"{self.filename}: {path}: " if path else f"{self.filename}: "
        # One line per problem, whatever a channel module or a value put in it.
        self.lines.append(where + " ".join(message.splitlines()))

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)
