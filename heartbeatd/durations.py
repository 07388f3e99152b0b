"""Durations as people write them in the config: "30s", "5m", "1h30m", "1d", "1w"."""

from __future__ import annotations

import re
from datetime import date, time
from functools import lru_cache

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

# Units must come in falling order, each at most once: "1h30m" but not "30m1h".
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")

# Ten years: beyond that a value is a typo, and timedelta arithmetic stays safe.
MAX_SECONDS = 10 * 365 * 86400
# More significant digits than this in one unit is more than ten years, and
# int() refuses strings of more than 4,300 digits outright.
_MAX_DIGITS = 12
# A value longer than this is echoed in a message by its start and its length.
_SHOWN_WHOLE = 256
_SHOWN_START = 40
# What a TOML basic string spells with a backslash; other control
# characters become \uXXXX, so an echoed value never breaks a line.
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_NEEDS_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f\x85\u2028\u2029]')

HINT = 'expected a duration like "30s", "5m" or "1h30m"'


class DurationError(ValueError):
    pass


def quote(text: str) -> str:
    """`text` as a one-line TOML string for a message: escaped, and cut short
    with its length when it is long (a hostile file may hold megabytes)."""
    suffix = ""
    if len(text) > _SHOWN_WHOLE:
        text, suffix = text[:_SHOWN_START] + "\u2026", f" ({len(text)} chars)"
    escaped = _NEEDS_ESCAPE.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text)
    return f'"{escaped}"{suffix}'


def _show(value: object) -> str:
    if isinstance(value, str):
        return quote(value)
    # str() of an int past 4,300 digits raises; TOML's own are 64-bit at most.
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a number of {value.bit_length()} bits"
    if isinstance(value, (date, time)):
        return value.isoformat()
    return repr(value)


def parse_duration(value: object) -> int:
    """Seconds in `value`, a string such as "1h30m" or a whole number of seconds."""
    # Checked before int: bool is an int in Python, but `grace = true` is not a number.
    if isinstance(value, bool):
        raise DurationError(f"{HINT}, got {value!r}")
    if isinstance(value, int):
        return _check_range(value, value)
    if isinstance(value, str):
        return _parse_text(value)
    raise DurationError(f"{HINT}, got {_show(value)}")


# A config with 100,000 monitors spells the same few durations ("1h", "5m")
# over and over. Only strings are cached: a cache keyed on ints would mix up
# 1 and True (equal and of equal hash), and errors are never cached.
@lru_cache(maxsize=4096)
def _parse_text(value: str) -> int:
    text = value.strip().lower()
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise DurationError(f"{HINT}, got {quote(value)}")
    if any(n and len(n.lstrip("0")) > _MAX_DIGITS for n in match.groups()):
        raise DurationError(f"must be at most 10 years, got {quote(value)}")
    seconds = sum(int(n) * s for n, s in zip(match.groups(), UNITS.values(), strict=True) if n)
    return _check_range(seconds, value)


def _check_range(seconds: int, value: object) -> int:
    if seconds <= 0:
        raise DurationError(f"must be longer than zero, got {_show(value)}")
    if seconds > MAX_SECONDS:
        raise DurationError(f"must be at most 10 years, got {_show(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form: 5400 -> "1h30m", 0 -> "0s"."""
    rest = int(seconds)
    if rest <= 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
