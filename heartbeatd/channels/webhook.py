"""The `webhook` channel: an HTTP request per alert, JSON by default.

Templates: `url`, `body` and the per-event `body_down`, `body_up`,
`body_reminder` may hold `$NAME`-style variables (`${NAME}` works too, `$$`
is a literal `$`). A value put into the URL is URL-quoted; into a body sent as
JSON it is JSON-string-escaped (no quotes added), except `$JSON`, which is the
whole alert object of DESIGN §5 and goes in as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote

from heartbeatd.alerts import Alert
from heartbeatd.channels import http
from heartbeatd.channels.base import ParseEnv, SendContext
from heartbeatd.model import AlertEvent, Reason, Secret, Status
from heartbeatd.tables import Table
from heartbeatd.times import isoformat

METHODS = ("POST", "GET", "PUT", "PATCH")
VARIABLES = ("NAME", "SLUG", "STATUS", "EVENT", "REASON", "NOW", "LAST_PING", "BODY", "JSON")
# Events with their own body key; a test alert uses `body`.
EVENT_BODIES = (AlertEvent.DOWN, AlertEvent.UP, AlertEvent.REMINDER)
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"

_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# Filled into templates when checking them, with the characters that break JSON.
_SAMPLE = Alert(
    event=AlertEvent.DOWN,
    monitor="sample",
    name='A "quoted" name\\',
    status=Status.DOWN,
    reason=Reason.MISSED,
    at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    body='line one\nline "two"\t\\',
)


@dataclass(frozen=True)
class Options:
    url: Secret
    method: str = "POST"
    # Values may carry tokens ("Authorization: Bearer …"), so they are secrets.
    headers: tuple[tuple[str, Secret], ...] = ()
    # None: the default JSON body.
    body: str | None = None
    bodies: dict[AlertEvent, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """What `render` builds and `send` performs."""

    method: str
    url: Secret
    headers: tuple[tuple[str, Secret], ...]
    body: bytes | None


def parse_options(table: Table, env: ParseEnv) -> Options:
    url = http.secret_url(table, "url")
    if url is not None:
        url = _check_template(table, "url_file" if table.has("url_file") else "url", url)
    method = table.choice("method", METHODS, "POST")
    headers = _parse_headers(table, env)
    body = table.text("body", None)
    bodies = {}
    for event in EVENT_BODIES:
        text = table.text(f"body_{event.value}", None)
        if text is not None:
            bodies[event] = text
    content_type = _header(headers, "Content-Type")
    templates = {"body": body, **{f"body_{e.value}": t for e, t in bodies.items()}}
    for key, text in templates.items():
        if text is None:
            continue
        if method == "GET":
            table.error(key, 'a GET request carries no body; use method = "POST"')
            continue
        _check_body(table, key, text, content_type or TEXT_TYPE)
    return Options(
        url=url or Secret(""),
        method=method,
        headers=headers,
        body=body,
        bodies=bodies,
    )


def render(alert: Alert, opts: Options) -> Request:
    values = variables(alert)
    url = fill(opts.url.reveal(), values, lambda v: quote(v, safe=""))
    headers = opts.headers
    if opts.method == "GET":
        return Request(opts.method, Secret(url), headers, None)
    template = opts.bodies.get(alert.event, opts.body)
    content_type = _header(headers, "Content-Type")
    if template is None:
        body = json.dumps(alert.to_json(), ensure_ascii=False)
        content_type = content_type or JSON_TYPE
    else:
        content_type = content_type or TEXT_TYPE
        body = fill(template, values, _escaper(content_type))
    if _header(headers, "Content-Type") is None:
        headers = (*headers, ("Content-Type", Secret(content_type)))
    return Request(opts.method, Secret(url), headers, body.encode("utf-8"))


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    req = render(alert, opts)
    headers = {name: value.reveal() for name, value in req.headers}
    await http.request(ctx, req.method, req.url, what="webhook", data=req.body, headers=headers)


# -- templates ------------------------------------------------------------------


def variables(alert: Alert) -> dict[str, str]:
    return {
        "NAME": alert.name,
        "SLUG": alert.monitor,
        "STATUS": alert.status.value,
        "EVENT": alert.event.value,
        "REASON": alert.reason.value,
        "NOW": isoformat(alert.at) or "",
        "LAST_PING": isoformat(alert.last_ping) or "",
        "BODY": alert.body,
        "JSON": json.dumps(alert.to_json(), ensure_ascii=False),
    }


def fill(template: str, values: dict[str, str], escape: Callable[[str], str]) -> str:
    """Replace each variable with `escape(value)`; `$JSON` in a JSON body stays raw."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(3)
        value = values.get(name)
        if value is None:
            # parse_options rejects unknown names; keep the text if one slips by.
            return match.group(0)
        if name == "JSON" and escape is _json_escape:
            return value
        return escape(value)

    return _VARIABLE.sub(one, template)


def unknown_variables(template: str) -> list[str]:
    names = (m.group(2) or m.group(3) for m in _VARIABLE.finditer(template) if not m.group(1))
    return [name for name in names if name not in VARIABLES]


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_TYPE or media.endswith("+json")


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _escaper(content_type: str) -> Callable[[str], str]:
    return _json_escape if is_json_type(content_type) else str


def _check_template(table: Table, key: str, url: Secret) -> Secret | None:
    if unknown_variables(url.reveal()):
        # Not even the variable's name: "$…" may be a piece of the secret URL.
        known = ", ".join("$" + v for v in VARIABLES)
        table.error(key, f"holds an unknown $variable (known: {known}; write $$ for a literal $)")
        return None
    return url


def _check_body(table: Table, key: str, text: str, content_type: str) -> None:
    unknown = unknown_variables(text)
    if unknown:
        table.error(key, _unknown_message(unknown))
        return
    if is_json_type(content_type):
        try:
            json.loads(fill(text, variables(_SAMPLE), _json_escape))
        except ValueError as exc:
            table.error(key, f"is not valid JSON once its variables are filled in ({exc})")


def _unknown_message(names: list[str]) -> str:
    known = ", ".join("$" + v for v in VARIABLES)
    return f"unknown variable ${names[0]} (known: {known}; write $$ for a literal $)"


# -- headers --------------------------------------------------------------------


def _parse_headers(table: Table, env: ParseEnv) -> tuple[tuple[str, Secret], ...]:
    """`headers` (a table) merged with `headers_file` (lines of "Name: value")."""
    pairs: dict[str, tuple[str, str]] = {}
    for name, value in (table.text_map("headers", None) or {}).items():
        if _check_header(table, "headers", name, value):
            pairs[name.lower()] = (name, value)
    if table.has("headers_file"):
        for name, value in _read_header_file(table, env):
            if _check_header(table, "headers_file", name, value):
                pairs[name.lower()] = (name, value)
    return tuple((name, Secret(value)) for name, value in pairs.values())


def _read_header_file(table: Table, env: ParseEnv) -> list[tuple[str, str]]:
    text = table.file_text("headers_file", base=env.base_dir)
    out = []
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, colon, value = line.partition(":")
        if not colon:
            # The line may be a token: say where it is, not what it says.
            table.error("headers_file", f'line {number}: expected "Name: value"')
            continue
        out.append((name.strip(), value.strip()))
    return out


def _check_header(table: Table, key: str, name: str, value: str) -> bool:
    if not _HEADER_NAME.fullmatch(name):
        table.error(key, f'"{name}" is not a valid header name')
        return False
    if "\r" in value or "\n" in value:
        table.error(key, f'the value of "{name}" holds a line break')
        return False
    return True


def _header(headers: tuple[tuple[str, Secret], ...], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value.reveal()
    return None
