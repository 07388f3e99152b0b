"""Times as text: the one place that formats and parses them.

Two forms, both UTC:

- stored (SQLite columns): `2026-01-14T12:00:00.000000+00:00`, always the same
  width, so comparing the text compares the times and SQL can sort and filter
  on it;
- published (API, alerts, logs; DESIGN §6): `2026-01-14T12:00:00Z`, to the
  second.

A monitor's state is stored as JSON with epoch seconds (see model.py); that is
a number, not text, and not here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload


def format_stored(when: datetime) -> str:
    """The stored form of a time: fixed-width UTC ISO, so text order is time order."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: heartbeatd stores UTC times only")
    return when.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_stored(text: str) -> datetime:
    return datetime.fromisoformat(text)


@overload
def isoformat(when: datetime) -> str: ...
@overload
def isoformat(when: None) -> None: ...
@overload
def isoformat(when: datetime | None) -> str | None: ...
def isoformat(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the second: the form of every time we publish."""
    if when is None:
        return None
    return when.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@overload
def parse_isoformat(text: str) -> datetime: ...
@overload
def parse_isoformat(text: None) -> None: ...
@overload
def parse_isoformat(text: str | None) -> datetime | None: ...
def parse_isoformat(text: str | None) -> datetime | None:
    """A published time (or a stored one) as an aware UTC datetime."""
    if text is None:
        return None
    # Python 3.10's fromisoformat does not read the Z.
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def publish_stored(text: str | None) -> str | None:
    """A stored time in the published form."""
    return isoformat(parse_stored(text)) if text is not None else None
