"""A quick reader for the part of a big config that is only monitor tables.

A file with 100,000 monitors is 300,000 lines of `[monitors.<slug>]` and
`key = "value"`, and the stdlib's TOML parser (pure Python) spends about 14 µs
a line on it: most of a start-up. Those lines need only a small part of
TOML, which a regular expression a line reads several times faster.

`quick_loads` returns exactly what `tomllib.loads` would for the files it
takes, and None for any other: the caller then parses the whole text with
tomllib, which also words every error. It takes a file whose monitor tables
come last and use only that small part:

- everything before the first line that starts with `[monitors.` is parsed by
  tomllib on its own. That it parses alone proves the cut is not inside a
  string or an array (either would be left open), so the two halves are read
  as the whole file would be, and may not share a top-level table;
- from there on, each line is blank, a comment, a header of bare keys
  (`[monitors.db-backup]`), or `bare-key = value` with a value that is a
  string without escapes, a decimal integer of up to 19 digits, true, false,
  or a one-line array of such strings. Anything else (an escape, a float, an
  inline table, a quoted key, a table or key defined twice) declines.
"""

from __future__ import annotations

import re
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# Where the monitor tables begin: a header at the very start of a line.
_MONITORS = re.compile(r"^\[monitors\.", re.MULTILINE)

# TOML forbids control characters but tab in strings and comments.
_TEXT = r"[^\"\\\x00-\x08\x0a-\x1f\x7f]*"
_LITERAL = r"[^'\x00-\x08\x0a-\x1f\x7f]*"
_STRING = rf'"{_TEXT}"|\'{_LITERAL}\''
_COMMENT = r"(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?"
_KEY = r"[A-Za-z0-9_-]+"
_WS = r"[ \t]*"

_BLANK = re.compile(rf"{_WS}{_COMMENT}")
_HEADER = re.compile(rf"{_WS}\[({_KEY}(?:\.{_KEY})*)\]{_WS}{_COMMENT}")
_PAIR = re.compile(
    rf"{_WS}({_KEY}){_WS}={_WS}"
    rf'(?:"({_TEXT})"|\'({_LITERAL})\'|(-?(?:0|[1-9][0-9]{{0,18}}))|(true|false)'
    rf"|(\[{_WS}(?:(?:{_STRING}){_WS},{_WS})*(?:{_STRING})?{_WS}\]))"
    rf"{_WS}{_COMMENT}"
)
_ITEM = re.compile(rf'"({_TEXT})"|\'({_LITERAL})\'')


def quick_loads(text: str) -> dict[str, Any] | None:
    """tomllib.loads(text), or None where this reader does not take the file."""
    found = _MONITORS.search(text)
    if found is None:
        return None
    try:
        head: dict[str, Any] = tomllib.loads(text[: found.start()])
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return None
    tail = _monitor_tables(text[found.start() :])
    if tail is None or not head.keys().isdisjoint(tail):
        return None
    head.update(tail)
    return head


def _monitor_tables(text: str) -> dict[str, Any] | None:
    root: dict[str, Any] = {}
    table = root
    # Tables given a header: TOML allows one each (a parent made implicitly
    # by a header like [monitors.x] may get its own header once).
    headed: set[str] = set()
    pair, header, blank = _PAIR.fullmatch, _HEADER.fullmatch, _BLANK.fullmatch
    lines = text.split("\n")
    last = len(lines) - 1
    for index, line in enumerate(lines):
        # CRLF ends a line; a CR that ends the file ends nothing, and TOML
        # refuses it (the blank test below then declines the file).
        if index < last and line.endswith("\r"):
            line = line[:-1]
        m = pair(line)
        if m is not None:
            key, basic, literal, number, boolean, array = m.groups()
            if key in table:
                return None
            if basic is not None:
                table[key] = basic
            elif literal is not None:
                table[key] = literal
            elif number is not None:
                table[key] = int(number)
            elif boolean is not None:
                table[key] = boolean == "true"
            else:
                table[key] = [i[1] if i[1] is not None else i[2] for i in _ITEM.finditer(array)]
            continue
        m = header(line)
        if m is not None:
            path = m[1]
            if path in headed:
                return None
            headed.add(path)
            table = root
            for key in path.split("."):
                table = table.setdefault(key, {})
                if type(table) is not dict:
                    return None
            continue
        if blank(line) is None:
            return None
    return root
