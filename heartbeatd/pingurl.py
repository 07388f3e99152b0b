"""The ping URL grammar of DESIGN §2, read and written in one place.

    /ping/<uuid>[/<action>]
    /ping/<ping_key>/<slug>[/<action>]   when [server] ping_key is set
    /ping/<slug>[/<action>]              when it is not
    <action> = start | fail | log | <exit status, 0-255>        ?rid=<uuid>
    /ping/<address>/snooze/<duration>    hold the monitor's alerts (policy.py)

The server parses what a job sent (`parse`); `heartbeatd check` and
`heartbeatd exec` build what a job should send (`build`, `extend`). Both sides
use the same constants, so the URLs we print are the URLs we accept. Pure: no
I/O and no engine; whether a monitor exists is asked of the caller.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, urlsplit, urlunsplit

from heartbeatd.model import PingKind
from heartbeatd.names import UUID

PREFIX = "/ping/"
# Any case: clients print UUIDs in upper case too. The one definition of what
# looks like a UUID, in a URL or as a slug (which may not look like one).
# The one UUID pattern lives with the other name rules.
UUID_SHAPE = UUID
ACTIONS = {"start": PingKind.START, "fail": PingKind.FAIL, "log": PingKind.LOG}
MAX_EXIT_STATUS = 255
# As many digits as 255 has: "0255" is refused, and no int() of 5,000 digits
# (Python's limit on digits raises ValueError there, which was a 500).
MAX_EXIT_STATUS_DIGITS = 3


class By(str, Enum):
    """How a ping URL names its monitor."""

    UUID = "uuid"
    SLUG = "slug"


class PingUrlError(Exception):
    """A path that is no ping: `status` is 404 when it names no monitor, 400
    when it names one but its exit status or rid is malformed."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class PingTarget:
    """What a ping URL says: which monitor, what happened, which run."""

    by: By
    # The monitor's uuid (lower case) or its slug.
    monitor: str
    kind: PingKind = PingKind.SUCCESS
    # Set by /<exit status> only; /fail and a plain success carry none.
    exit_status: int | None = None
    # The key of a slug URL when [server] ping_key is set; never with a uuid.
    ping_key: str | None = None
    rid: str | None = None

    def __post_init__(self) -> None:
        if self.exit_status is not None:
            if not 0 <= self.exit_status <= MAX_EXIT_STATUS:
                raise ValueError(f"exit status must be 0-{MAX_EXIT_STATUS}, got {self.exit_status}")
            if self.kind is not exit_kind(self.exit_status):
                raise ValueError(f"exit status {self.exit_status} is not a {self.kind.value} ping")
        if self.by is By.UUID and self.ping_key is not None:
            raise ValueError("a uuid URL carries no ping key")


def exit_kind(exit_status: int) -> PingKind:
    """0 is a success, anything else a failure (as a shell sees it)."""
    return PingKind.SUCCESS if exit_status == 0 else PingKind.FAIL


# -- reading ------------------------------------------------------------------------


def _anything(by: By, monitor: str) -> bool:
    return True


def parse(
    tail: str,
    *,
    ping_key: str | None,
    rid: str | None = None,
    exists: Callable[[By, str], bool] = _anything,
) -> PingTarget:
    """The target of `tail`, the path after /ping/ (decoded), or PingUrlError.

    `ping_key` is the configured key (None without one): it decides how a slug
    is addressed, and is compared in constant time. `rid` is the query's rid.
    `exists` is asked before the action is read, so an unknown monitor is a
    404 whatever follows it (an exit status of 999 included).
    """
    by, monitor, key, action = _address(tail.split("/"), ping_key)
    if not exists(by, monitor):
        raise PingUrlError(404, "not found")
    kind, exit_status = parse_action(action)
    return PingTarget(by, monitor, kind, exit_status, key, parse_rid(rid))


def _address(parts: list[str], ping_key: str | None) -> tuple[By, str, str | None, str | None]:
    """(by, monitor, ping key, action text) of the path's segments."""
    not_found = PingUrlError(404, "not found")
    if not parts or len(parts) > 3 or not all(parts):
        raise not_found
    if UUID_SHAPE.fullmatch(parts[0]):
        if len(parts) > 2:
            raise not_found
        return By.UUID, parts[0].lower(), None, _last(parts[1:])
    if ping_key is not None:
        # Constant time: how much of a guess matched must not show in the timing.
        if len(parts) < 2 or not hmac.compare_digest(parts[0].encode(), ping_key.encode()):
            raise not_found
        return By.SLUG, parts[1], ping_key, _last(parts[2:])
    if len(parts) > 2:
        raise not_found
    return By.SLUG, parts[0], None, _last(parts[1:])


def _last(rest: list[str]) -> str | None:
    return rest[0] if rest else None


def parse_action(action: str | None) -> tuple[PingKind, int | None]:
    """(kind, exit status) of the segment after the monitor (None: a plain success)."""
    if action is None:
        return PingKind.SUCCESS, None
    if action in ACTIONS:
        return ACTIONS[action], None
    if action.isdigit() and action.isascii():
        # Length first: int() of a 5,000-digit string raises ValueError.
        if len(action) > MAX_EXIT_STATUS_DIGITS or int(action) > MAX_EXIT_STATUS:
            raise PingUrlError(400, f"exit status must be 0-{MAX_EXIT_STATUS}")
        status = int(action)
        return exit_kind(status), status
    raise PingUrlError(404, "not found")


def parse_rid(rid: str | None) -> str | None:
    """The run id of `?rid=` (lower case); None when absent or empty."""
    if rid is None or rid == "":
        return None
    if not UUID_SHAPE.fullmatch(rid):
        raise PingUrlError(400, "rid must be a UUID")
    return rid.lower()


SNOOZE = "snooze"


def parse_snooze(
    tail: str, *, ping_key: str | None, exists: Callable[[By, str], bool] = _anything
) -> tuple[PingTarget, str] | None:
    """(target, duration text) of `<address>/snooze/<duration>`, None when
    `tail` is not of that form (then it is an ordinary ping, e.g. of a
    monitor named "snooze"), or PingUrlError(404) for an unknown monitor."""
    parts = tail.split("/")
    if len(parts) < 3 or parts[-2] != SNOOZE or not all(parts):
        return None
    head = parts[:-2]
    by_uuid = UUID_SHAPE.fullmatch(head[0]) is not None
    # The address has the length a ping's has: with a ping_key, a 3-part
    # path is <key>/<slug>/<action> (the slug may be "snooze").
    if len(head) == 1 and not (by_uuid or ping_key is None):
        return None
    if len(head) == 2 and (by_uuid or ping_key is None):
        return None
    if len(head) > 2:
        return None
    by, monitor, key, _ = _address(head, ping_key)
    if not exists(by, monitor):
        raise PingUrlError(404, "not found")
    return PingTarget(by, monitor, ping_key=key), parts[-1]


# -- writing ------------------------------------------------------------------------


def action_segment(kind: PingKind, exit_status: int | None = None) -> str:
    """The path segment after the monitor: "" for a plain success, "start",
    "fail", "log", or the exit status (which says success or failure itself)."""
    if exit_status is not None:
        return str(exit_status)
    if kind is PingKind.SUCCESS:
        return ""
    return kind.value


def build(base_url: str, target: PingTarget) -> str:
    """The URL to ping `target` at, under `base_url` (no trailing slash)."""
    if target.by is By.UUID:
        segments = [target.monitor]
    elif target.ping_key is not None:
        # Config keys are URL-safe already; a key given to `heartbeatd exec`
        # may hold anything, and must stay one segment.
        segments = [quote(target.ping_key, safe=""), target.monitor]
    else:
        segments = [target.monitor]
    action = action_segment(target.kind, target.exit_status)
    if action:
        segments.append(action)
    url = base_url + PREFIX + "/".join(segments)
    return f"{url}?rid={target.rid}" if target.rid is not None else url


def extend(
    url: str, kind: PingKind, exit_status: int | None = None, *, rid: str | None = None
) -> str:
    """A monitor's ping URL as a user gave it (any path, maybe a query) with an
    action and a rid added: what `heartbeatd exec` sends."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    action = action_segment(kind, exit_status)
    if action:
        path = f"{path}/{action}"
    query = "&".join(q for q in (parts.query, f"rid={rid}" if rid is not None else "") if q)
    return urlunsplit(parts._replace(path=path, query=query))
