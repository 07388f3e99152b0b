"""Reading a config file into TOML data, whatever the file holds.

A hostile or broken file (huge, endless, not UTF-8, nested thousands deep,
with 5,000-digit numbers) ends in a one-line ConfigError naming the file,
never in a traceback or a hang.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from heartbeatd.config.quicktoml import quick_loads
from heartbeatd.tables import INT64, ConfigError, join_key

if sys.version_info >= (3, 11):
    try:
        # tomli is optional here (the `speed` extra): its compiled wheels
        # parse a big config about 3x faster than the stdlib's tomllib.
        # Same grammar, same error messages.
        import tomli as tomllib
    except ImportError:
        import tomllib
else:
    import tomli as tomllib

# 100,000 monitors take about 10 MB; past this a file is a mistake (or
# /dev/zero), and reading it whole would only exhaust memory.
MAX_CONFIG_BYTES = 64 * 1024 * 1024


def read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError) as exc:
        # ValueError: a NUL in the path.
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([f"{path}: cannot read: {reason}"]) from None
    except MemoryError:
        raise ConfigError([f"{path}: too large to load: out of memory"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than 64 MiB: not a config file heartbeatd can load"])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason} on line {line}"]) from None


# A decimal integer long enough to make int() give up (4,300 digits), found to
# say where it is; not preceded by what would make it part of a word or string.
_LONG_INTEGER = re.compile(r"(?<![\w.\"'])[+-]?(\d[\d_]{4300,})")


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    # A file of many plain monitor tables is read by the quick reader; any
    # other, and every error, by tomllib.
    quick = quick_loads(text)
    if quick is not None:
        return quick
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {_one_line(exc)}"]) from None
    except RecursionError:
        # The parser recurses once per level of [ or {: ~300 levels reach
        # Python's limit (tomli stops at 400 itself, with the same error).
        where = f" (at line {_deepest_line(text)})"
        message = f"{path}: invalid TOML: arrays or inline tables nested too deeply{where}"
        raise ConfigError([message]) from None
    except ValueError as exc:
        # int() refuses more than 4,300 digits; TOMLDecodeError (a ValueError
        # too) was caught above.
        found = _LONG_INTEGER.search(text)
        if found is None:
            raise ConfigError([f"{path}: invalid TOML: {_one_line(exc)}"]) from None
        digits = len(found[1].replace("_", ""))
        line = text.count("\n", 0, found.start()) + 1
        raise ConfigError(
            [
                f"{path}: invalid TOML: a whole number of {digits} digits (at line {line});"
                " TOML integers fit in 64 bits"
            ]
        ) from None
    except MemoryError:
        raise ConfigError([f"{path}: too large to load: out of memory"]) from None
    return data


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


# What can open or close a level of nesting, and what hides brackets from it.
_NESTING_TOKEN = re.compile(
    r'"""(?:[^\\]|\\.)*?"""'  # a multi-line basic string
    r"|'''.*?'''"  # a multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # a basic string
    r"|'[^'\n]*'"  # a literal string
    r"|#[^\n]*"  # a comment
    r"|[\[\]{}\n]",
    re.DOTALL,
)


def _deepest_line(text: str) -> int:
    """The line where arrays and inline tables nest deepest, strings and
    comments skipped: where a "nested too deeply" file went wrong."""
    depth = deepest = 0
    line = deepest_line = 1
    for match in _NESTING_TOKEN.finditer(text):
        token = match[0]
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest, deepest_line = depth, line
        elif token in ("]", "}"):
            depth -= 1
        else:
            line += token.count("\n")
    return deepest_line


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).splitlines())


def describe_unexpected(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "cannot load: values nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large to load: out of memory"
    return (
        f"cannot load: unexpected {type(exc).__name__}: {_one_line(exc)}"
        " (a bug in heartbeatd; please report it)"
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Loading 100,000 monitors makes millions of objects and no cycles, yet
    every 700 allocations start a collection, and the older generations are
    walked again and again as the heap grows: a third of the load time. With
    collection paused, it catches up once when it resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Leave it off for a caller that had turned it off.
        if was_enabled:
            gc.enable()


# A table header line, and one of a [monitors.<slug>] table (or [monitors]).
_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)
_MONITORS_HEADER = re.compile(r"[ \t]*\[[ \t]*monitors[ \t]*[.\]]")


def without_monitors(text: str) -> str:
    """`text` without its [monitors.*] tables, which are most of a big file."""
    kept, last, dropping = [], 0, False
    for header in _HEADER.finditer(text):
        if not dropping:
            kept.append(text[last : header.start()])
        last = header.start()
        dropping = _MONITORS_HEADER.match(text, header.start()) is not None
    if not dropping:
        kept.append(text[last:])
    return "".join(kept)


def state_directory() -> Path | None:
    """systemd's StateDirectory= ($STATE_DIRECTORY; the first, if it lists several)."""
    first = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first) if first else None
