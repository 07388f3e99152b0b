"""A TOML table that knows its key path, so every config error can name it.

Readers never raise on a bad value: they record a problem and return the
default, so one run of the loader reports every error in the file at once.
"""

from __future__ import annotations

import difflib
import enum
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar, overload

from heartbeatd.durations import DurationError, parse_duration
from heartbeatd.model import Secret
from heartbeatd.problems import CREDENTIALS_ROOT as CREDENTIALS_ROOT
from heartbeatd.problems import INT64 as INT64
from heartbeatd.problems import ConfigError as ConfigError
from heartbeatd.problems import Problems as Problems
from heartbeatd.problems import join_key as join_key
from heartbeatd.problems import show as show

T = TypeVar("T")
# What a reader gives back when a value is missing or wrong: its default.
D = TypeVar("D")


class _Missing(enum.Enum):
    """The default of a required key: no value given means "is required"."""

    MISSING = enum.auto()


MISSING: Final = _Missing.MISSING


class Table:
    """One TOML table. A reader takes a key and a default: without a default
    the key is required. A missing or wrong value is recorded as a problem,
    and the reader returns the default (None for a required key)."""

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

    def _get(self, key: str) -> object:
        """The value of `key`, counted as read; MISSING when it is not there."""
        self._read.add(key)
        return self.data.get(key, MISSING)

    def _absent(self, key: str, default: D | _Missing) -> D | None:
        if default is MISSING:
            self.error(key, "is required")
            return None
        return default

    def _wrong(self, key: str, default: D | _Missing, message: str) -> D | None:
        self.error(key, message)
        return None if default is MISSING else default

    def done(self, known: Iterable[str] = ()) -> None:
        """Report every key that no reader asked for: typos must not pass silently.

        `known` adds keys a reader may have skipped (`schedule` beside
        `period`), so a typo of one is still matched to it.
        """
        unknown = [key for key in self.data if key not in self._read]
        if not unknown:
            # [monitors] has 100,000 keys: sorting them for no suggestion costs.
            return
        candidates = sorted(self._read.union(known))
        for key in unknown:
            self.error(key, "unknown key" + _suggestion(self, key, candidates))

    # -- readers ----------------------------------------------------------------

    def raw(self, key: str, default: object = MISSING) -> object:
        """The value as TOML gave it, for a reader that checks it itself."""
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        return value

    @overload
    def text(self, key: str, default: _Missing = MISSING) -> str | None: ...
    @overload
    def text(self, key: str, default: str) -> str: ...
    @overload
    def text(self, key: str, default: None) -> str | None: ...
    def text(self, key: str, default: str | _Missing | None = MISSING) -> str | None:
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        if isinstance(value, str):
            return value
        return self._wrong(key, default, f"expected a string, got {show(value)}")

    @overload
    def boolean(self, key: str, default: _Missing = MISSING) -> bool | None: ...
    @overload
    def boolean(self, key: str, default: bool) -> bool: ...
    @overload
    def boolean(self, key: str, default: None) -> bool | None: ...
    def boolean(self, key: str, default: bool | _Missing | None = MISSING) -> bool | None:
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        if isinstance(value, bool):
            return value
        return self._wrong(key, default, f"expected true or false, got {show(value)}")

    @overload
    def integer(
        self,
        key: str,
        default: _Missing = MISSING,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
    ) -> int | None: ...
    @overload
    def integer(
        self, key: str, default: int, *, at_least: int | None = None, at_most: int | None = None
    ) -> int: ...
    @overload
    def integer(
        self, key: str, default: None, *, at_least: int | None = None, at_most: int | None = None
    ) -> int | None: ...
    def integer(
        self,
        key: str,
        default: int | _Missing | None = MISSING,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
    ) -> int | None:
        """A whole number from `at_least` to `at_most` (each optional, inclusive)."""
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        # bool is an int in Python, but `ping_history = true` is not a number.
        if not isinstance(value, int) or isinstance(value, bool):
            return self._wrong(key, default, f"expected a whole number, got {show(value)}")
        if value not in INT64:
            message = f"expected a whole number that fits in 64 bits, got {show(value)}"
            return self._wrong(key, default, message)
        if (at_least is not None and value < at_least) or (at_most is not None and value > at_most):
            low = "" if at_least is None else f" from {at_least}"
            high = "" if at_most is None else f" to {at_most}"
            return self._wrong(key, default, f"expected a number{low}{high}, got {show(value)}")
        return value

    @overload
    def duration(self, key: str, default: _Missing = MISSING) -> int | None: ...
    @overload
    def duration(self, key: str, default: int) -> int: ...
    @overload
    def duration(self, key: str, default: None) -> int | None: ...
    def duration(self, key: str, default: int | _Missing | None = MISSING) -> int | None:
        """Seconds, from "1h30m" or an integer."""
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        try:
            return parse_duration(value)
        except DurationError as exc:
            return self._wrong(key, default, str(exc))

    @overload
    def choice(
        self, key: str, choices: tuple[str, ...], default: _Missing = MISSING
    ) -> str | None: ...
    @overload
    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str: ...
    @overload
    def choice(self, key: str, choices: tuple[str, ...], default: None) -> str | None: ...
    def choice(
        self, key: str, choices: tuple[str, ...], default: str | _Missing | None = MISSING
    ) -> str | None:
        """One of `choices`, a string."""
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        if not isinstance(value, str):
            return self._wrong(key, default, f"expected a string, got {show(value)}")
        if value not in choices:
            options = ", ".join(f'"{c}"' for c in choices)
            return self._wrong(key, default, f"expected one of {options}, got {show(value)}")
        return value

    @overload
    def text_list(
        self, key: str, default: _Missing = MISSING, *, allow_text: bool = False
    ) -> list[str] | None: ...
    @overload
    def text_list(self, key: str, default: list[str], *, allow_text: bool = False) -> list[str]: ...
    @overload
    def text_list(
        self, key: str, default: None, *, allow_text: bool = False
    ) -> list[str] | None: ...
    def text_list(
        self, key: str, default: list[str] | _Missing | None = MISSING, *, allow_text: bool = False
    ) -> list[str] | None:
        """A list of strings; with `allow_text`, one string counts as a list of one."""
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        if allow_text and isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return self._wrong(key, default, f"expected a list of strings, got {show(value)}")
        return list(value)

    @overload
    def text_map(self, key: str, default: _Missing = MISSING) -> dict[str, str] | None: ...
    @overload
    def text_map(self, key: str, default: dict[str, str]) -> dict[str, str]: ...
    @overload
    def text_map(self, key: str, default: None) -> dict[str, str] | None: ...
    def text_map(
        self, key: str, default: dict[str, str] | _Missing | None = MISSING
    ) -> dict[str, str] | None:
        """A table of string values, such as HTTP headers."""
        value = self._get(key)
        if value is MISSING:
            return self._absent(key, default)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            return self._wrong(key, default, f"expected a table of strings, got {show(value)}")
        return dict(value)

    def table(self, key: str, *, required: bool = False) -> Table:
        """A sub-table; an empty one when absent (or wrong, after recording it)."""
        value = self._get(key)
        if value is MISSING:
            if required:
                self.error(key, "is required")
            value = {}
        elif not isinstance(value, dict):
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

    def secret(self, key: str, *, required: bool = True, base: Path | None = None) -> Secret | None:
        """`key`, or the content of the file named by `key_file` (trailing newline cut)."""
        file_key = key + "_file"
        has_inline, has_file = key in self.data, file_key in self.data
        self._read.update((key, file_key))
        if has_inline and has_file:
            self.error(key, f"give either {key} or {file_key}, not both")
            return None
        if has_file:
            found = self._read_file(file_key, base)
            if found is None:
                return None
            path, text = found
            text = text.rstrip("\r\n")
            if not text:
                self.error(file_key, f"{show(str(path))} is empty")
                return None
            return Secret(text)
        if has_inline:
            value = self._get(key)
            if not isinstance(value, str):
                # Never echo a secret, whatever its type (a PIN without quotes).
                self.error(key, f"expected a string, got {_toml_type(value)} (not shown: a secret)")
                return None
            return Secret(value)
        if required:
            self.error(key, f"is required (or {file_key})")
        return None

    def file_text(self, key: str, *, base: Path | None = None) -> str | None:
        """The text of the file that `key` names (relative to `base`, or to the
        config file), or None after recording why it cannot be read."""
        found = self._read_file(key, base)
        return None if found is None else found[1]

    def _read_file(self, key: str, base: Path | None) -> tuple[Path, str] | None:
        name = self.text(key)
        if name is None:
            return None
        path = self.problems.locate(name, base)
        try:
            return path, _read_small_file(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            # ValueError: a path with a NUL byte in it, or not a small regular file.
            reason = getattr(exc, "strerror", None) or str(exc)
            if isinstance(exc, NotADirectoryError):
                reason = not_a_directory(path) or reason
            self.error(key, f"cannot read {show(str(path))}: {reason}")
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


# difflib's ratio of a typo to the key meant: "chanels" to "channels" is
# 0.93, "graec" to "grace" 0.8; unrelated words stay under 0.5.
_CLOSE = 0.75


def _suggestion(table: Table, key: str, candidates: list[str]) -> str:
    """ "; did you mean `…`?" for the known key closest to `key`, or ""."""
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=_CLOSE)
    if not close:
        return ""
    value = table.data[key]
    if not isinstance(value, dict):
        return f"; did you mean `{close[0]}`?"
    # A mistyped table was written as a header: suggest the header to write,
    # [monitors.a] for [monitor.a].
    header = join_key(table.path, close[0])
    first = next(iter(value), None)
    if first is not None and isinstance(value[first], dict):
        header = join_key(header, first)
    return f"; did you mean `[{header}]`?"


def not_a_directory(path: Path) -> str | None:
    """Which directory on the way to `path` is not one, in words, if any.

    The OS says only "Not a directory" or "[Errno 17] File exists", naming
    the whole path. A missing directory is not this problem.
    """
    for parent in reversed(path.parents):
        try:
            mode = parent.stat().st_mode
        except OSError:
            return None
        if not stat.S_ISDIR(mode):
            what = "is a file, not a directory" if stat.S_ISREG(mode) else "is not a directory"
            return f"{show(str(parent))} {what}"
    return None


# Secrets and header files are a line or two; anything larger is a mistake.
SMALL_FILE = 64 * 1024


def _read_small_file(path: Path) -> str:
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


def _toml_type(value: object) -> str:
    """What kind of TOML value `value` is, in words, without showing it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"
