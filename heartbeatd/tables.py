"""A TOML table that knows its key path, so every config error can name it.

Readers never raise on a bad value: they record a problem and return the
default, so one run of the loader reports every error in the file at once.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from datetime import date, time
from pathlib import Path
from typing import Any, TypeVar

from heartbeatd.durations import DurationError, parse_duration, quote
from heartbeatd.model import Secret

T = TypeVar("T")

MISSING: Any = object()

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


def find_big_integers(data: dict[str, Any], *, skip: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """(key path, value) of every integer beyond 64 bits in a parsed document,
    but for the top-level tables in `skip`.

    Walked with a stack, not recursion: a document may nest hundreds deep.
    """
    found = []
    top = {key: value for key, value in data.items() if key not in skip}
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(top, ())]
    while stack:
        node, where = stack.pop()
        for key, value in node.items() if type(node) is dict else enumerate(node):
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, (*where, key)))
            elif kind is int and value not in INT64:
                found.append((_path_of((*where, key)), value))
    return sorted(found)


def _path_of(parts: tuple[str | int, ...]) -> str:
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else join_key(path, part)
    return path


class Table:
    def __init__(self, data: dict[str, Any], path: str, problems: Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self._read: set[str] = set()

    # -- plumbing ---------------------------------------------------------------

    def key(self, key: str) -> str:
        return join_key(self.path, key)

    def error(self, key: str, message: str) -> None:
        self.problems.add(self.key(key) if key else self.path, message)

    def has(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> Iterator[str]:
        return iter(self.data)

    def _get(self, key: str, default: Any) -> Any:
        self._read.add(key)
        if key in self.data:
            return self.data[key]
        if default is MISSING:
            self.error(key, "is required")
            return None
        return default

    def _typed(self, key: str, default: Any, kind: type | tuple[type, ...], what: str) -> Any:
        value = self._get(key, default)
        if value is None or key not in self.data:
            return value
        # bool is an int in Python, but `grace = true` is not a number.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _tuple(kind)):
            self.error(key, f"expected {what}, got {show(value)}")
            return None if default is MISSING else default
        return value

    def done(self) -> None:
        """Report every key that no reader asked for: typos must not pass silently."""
        for key in self.data:
            if key not in self._read:
                self.error(key, "unknown key")

    # -- readers ----------------------------------------------------------------

    def raw(self, key: str, default: Any = MISSING) -> Any:
        return self._get(key, default)

    def str(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, str, "a string")

    def bool(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, bool, "true or false")

    def int(
        self, key: str, default: Any = MISSING, *, min: int | None = None, max: int | None = None
    ) -> Any:
        value = self._typed(key, default, int, "a whole number")
        if isinstance(value, int) and value not in INT64 and key in self.data:
            self.error(key, f"expected a whole number that fits in 64 bits, got {show(value)}")
            return None if default is MISSING else default
        out_of_range = isinstance(value, int) and (
            (min is not None and value < min) or (max is not None and value > max)
        )
        if out_of_range and key in self.data:
            low = "" if min is None else f" from {min}"
            high = "" if max is None else f" to {max}"
            self.error(key, f"expected a number{low}{high}, got {show(value)}")
            return None if default is MISSING else default
        return value

    def duration(self, key: str, default: Any = MISSING) -> Any:
        """Seconds, from "1h30m" or an integer."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        try:
            return parse_duration(value)
        except DurationError as exc:
            self.error(key, str(exc))
            return None if default is MISSING else default

    def choice(self, key: str, choices: tuple[str, ...], default: Any = MISSING) -> Any:
        value = self.str(key, default)
        if key in self.data and isinstance(value, str) and value not in choices:
            options = ", ".join(f'"{c}"' for c in choices)
            self.error(key, f"expected one of {options}, got {show(value)}")
            return None if default is MISSING else default
        return value

    def str_list(self, key: str, default: Any = MISSING, *, allow_str: bool = False) -> Any:
        """A list of strings; with `allow_str`, a single string counts as a list of one."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        if allow_str and isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, f"expected a list of strings, got {show(value)}")
            return None if default is MISSING else default
        return list(value)

    def str_map(self, key: str, default: Any = MISSING) -> Any:
        """A table of string values, such as HTTP headers."""
        value = self._get(key, default)
        if key not in self.data:
            return value
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.error(key, f"expected a table of strings, got {show(value)}")
            return None if default is MISSING else default
        return dict(value)

    def table(self, key: str, *, required: bool = False) -> Table:
        """A sub-table; an empty one when absent (or wrong, after recording it)."""
        value = self._get(key, MISSING if required else {})
        if not isinstance(value, dict):
            if value is not None:
                self.error(key, f"expected a table, got {show(value)}")
            value = {}
        return Table(value, self.key(key), self.problems)

    def entries(self) -> list[tuple[str, Any]]:
        """Every key with its raw value, all counted as read: for a caller that
        checks the values itself and reports a bad one through `table(key)`."""
        self._read.update(self.data)
        return list(self.data.items())

    def tables(self) -> Iterator[tuple[str, Table]]:
        """Each entry of this table as a sub-table: [channels.<name>], [monitors.<slug>]."""
        for key in list(self.data):
            yield key, self.table(key)

    def secret(self, key: str, *, required: bool = True, base: Path | None = None) -> Any:
        """`key`, or the content of the file named by `key_file` (trailing newline cut)."""
        file_key = key + "_file"
        has_inline, has_file = key in self.data, file_key in self.data
        self._read.update((key, file_key))
        if has_inline and has_file:
            self.error(key, f"give either {key} or {file_key}, not both")
            return None
        if has_file:
            name = self.str(file_key)
            if name is None:
                return None
            path = self.problems.locate(name, base)
            try:
                text = read_small_file(path)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                # ValueError: a path with a NUL byte in it.
                reason = getattr(exc, "strerror", None) or str(exc)
                self.error(file_key, f"cannot read {show(str(path))}: {reason}")
                return None
            text = text.rstrip("\r\n")
            if not text:
                self.error(file_key, f"{show(str(path))} is empty")
                return None
            return Secret(text)
        if has_inline:
            value = self.str(key)
            return None if value is None else Secret(value)
        if required:
            self.error(key, f"is required (or {file_key})")
        return None

    def check(self, key: str, value: T | None, test: Callable[[T], str | None]) -> T | None:
        """Run `test` on a value already read; it returns an error message or None."""
        if value is None:
            return None
        message = test(value)
        if message:
            self.error(key, message)
            return None
        return value


# Secrets and header files are a line or two; anything larger is a mistake.
SMALL_FILE = 64 * 1024


def read_small_file(path: Path) -> str:
    """A secret-sized regular file as UTF-8 text.

    A FIFO or a device (/dev/zero) would hang or fill memory at config load,
    so only regular files are read, and only the first 64 KiB of them.
    """
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = handle.read(SMALL_FILE + 1)
    if len(data) > SMALL_FILE:
        raise ValueError("larger than 64 KiB")
    return data.decode("utf-8")


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
