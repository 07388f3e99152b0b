"""What may name a monitor or a channel, and what a UUID looks like.

The rules live here, below everything else, because the config (which
refuses a bad name) and the ping URL grammar (which must never read a slug
as something else) have to agree on them.
"""

from __future__ import annotations

import re
import uuid

# Ping actions: /ping/<key>/<slug>/log must not be readable as a monitor named "log".
RESERVED_NAMES = ("start", "fail", "log")
# What a /ping/<uuid> path and a ?rid= hold; the case is the client's.
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)

_NAME = re.compile(r"[a-z0-9_-]+")
_MAX_LENGTH = 64


def _charset_problem(name: str, what: str) -> str | None:
    if not name:
        return f"{what} must not be empty"
    if len(name) > _MAX_LENGTH:
        return f"{what} may be at most {_MAX_LENGTH} characters long, got {len(name)}"
    if not _NAME.fullmatch(name):
        return f'{what} may use only a-z, 0-9, "_" and "-", got "{name}"'
    return None


def channel_name_problem(name: str) -> str | None:
    """None if `name` may name a channel, else why not.

    Channel names never appear in ping URLs, so "log" is fine (and natural).
    """
    return _charset_problem(name, "a channel name")


def name_problem(name: str, what: str = "a slug") -> str | None:
    """None if `name` may be a monitor slug, else why not."""
    problem = _charset_problem(name, what)
    if problem:
        return problem
    if name in RESERVED_NAMES:
        return f'{what} may not be "start", "fail" or "log" (ping actions), got "{name}"'
    # /ping/<uuid>/<exit-status> and /ping/<uuid> would be ambiguous with these.
    if name.isdigit():
        return f'{what} may not be all digits (an exit status), got "{name}"'
    if UUID.fullmatch(name):
        return f'{what} may not look like a UUID, got "{name}"'
    return None


def tag_problem(tag: str) -> str | None:
    """None if `tag` may label monitors, else why not.

    Tags appear in URLs (`?tag=`, /badge/tag/<tag>.svg) and metric labels,
    so they follow the channel-name rules.
    """
    return _charset_problem(tag, "a tag")


def uuid_problem(text: str) -> str | None:
    """None if `text` may be a monitor's `uuid` (any spelling `uuid.UUID` reads), else why not."""
    try:
        uuid.UUID(text)
    except ValueError:
        return f'expected a UUID like "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b", got "{text}"'
    return None


def canonical_uuid(text: str) -> str:
    """The one spelling a monitor's uuid is stored in: lower case, with dashes."""
    return str(uuid.UUID(text))
