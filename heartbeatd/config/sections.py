"""Readers of the top-level tables but the monitors: [server], [storage],
[alerts], [web] and [channels]. Each takes its Table and returns its frozen
value, recording problems on the Table instead of raising."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from heartbeatd.addresses import DEFAULT_LISTEN, split_address
from heartbeatd.apikeys import parse_keys
from heartbeatd.auth import HashError, parse_hash
from heartbeatd.channels import CHANNEL_TYPES
from heartbeatd.channels.base import ParseEnv
from heartbeatd.channels.email import SmtpOptions
from heartbeatd.config.values import (
    CHANNEL_EVENTS,
    DEFAULT_EVENTS,
    DEFAULT_RELOAD_MAX_REMOVED,
    MAX_BODY_LIMIT,
    AlertsConfig,
    ApiConfig,
    Channel,
    MetricsConfig,
    SelfPingConfig,
    ServerConfig,
    StorageConfig,
    WebConfig,
)
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.names import UUID, channel_name_problem
from heartbeatd.tables import Table, not_a_directory, show

_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def _secret(table: Table, key: str) -> Secret | None:
    value = table.secret(key, required=False)
    if value is not None and not value:
        table.error(key, "must not be empty")
        return None
    return value


def read_server(table: Table) -> ServerConfig:
    listen = table.text_list("listen", [DEFAULT_LISTEN], allow_text=True)
    if listen == []:
        table.error("listen", "needs at least one address")
    listen = listen or [DEFAULT_LISTEN]
    for address in listen:
        try:
            split_address(address)
        except ValueError as exc:
            table.error("listen", str(exc))
    base_url = table.check("base_url", table.text("base_url", None), _url_problem)
    ping_key = _secret(table, "ping_key")
    if ping_key is not None and not _URL_SAFE.fullmatch(ping_key.reveal()):
        # Never echo the key itself.
        table.error("ping_key", 'may use only letters, digits, "_" and "-"')
        ping_key = None
    elif ping_key is not None and UUID.fullmatch(ping_key.reveal()):
        # /ping/<uuid>/<slug> is a ping by uuid: every slug URL would be a 404.
        table.error(
            "ping_key",
            "must not look like a UUID: /ping/<ping_key>/<slug> would be read as a ping by uuid",
        )
        ping_key = None
    proxies = []
    for item in table.text_list("trusted_proxies", []) or []:
        try:
            proxies.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            example = "expected an IP address or network like "
            table.error("trusted_proxies", f'{example}"10.0.0.0/8" or "::1", got "{item}"')
    api_token = _secret(table, "api_token")
    badge_key = _secret(table, "badge_key")
    reload_max_removed = _read_percent(table, "reload_max_removed", DEFAULT_RELOAD_MAX_REMOVED)
    auto_provision = table.boolean("auto_provision", False)
    table.done()
    return ServerConfig(
        listen=tuple(listen),
        base_url=(base_url or "http://" + listen[0]).rstrip("/"),
        ping_key=ping_key,
        trusted_proxies=tuple(proxies),
        api_token=api_token,
        badge_key=badge_key,
        reload_max_removed=reload_max_removed,
        auto_provision=auto_provision,
    )


_PERCENT = re.compile(r"(\d{1,3})%")


def _read_percent(table: Table, key: str, default: int) -> int:
    value = table.raw(key, None)
    if value is None:
        return default
    found = _PERCENT.fullmatch(value) if isinstance(value, str) else None
    if found is None or int(found[1]) > 100:
        table.error(key, f'expected a percentage from "0%" to "100%" like "50%", got {show(value)}')
        return default
    return int(found[1])


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f'expected an http:// or https:// URL, got "{url}"'
    if parts.query or parts.fragment:
        return f'expected a URL without "?" or "#", got "{url}"'
    return None


def read_storage(table: Table, base_dir: Path) -> StorageConfig:
    path = table.check("path", table.text("path", "heartbeatd.db"), path_problem)
    ping_history = table.integer("ping_history", 100, at_least=1)
    max_body = table.integer("max_body", 10240, at_least=0, at_most=MAX_BODY_LIMIT)
    synchronous = table.choice("synchronous", ("full", "normal", "extra"), "full")
    flip_history = table.integer("flip_history", 1000, at_least=1)
    outbox_retention = table.duration("outbox_retention", 30 * 86400)
    table.done()
    # Relative to the state directory under systemd (ProtectSystem=strict
    # makes the config's directory read-only there), else to the config
    # file, not to wherever the daemon was started.
    full = base_dir / (path or "heartbeatd.db")
    if path is not None:
        table.check("path", full, parent_problem)
    return StorageConfig(
        path=full,
        ping_history=ping_history,
        max_body=max_body,
        synchronous=synchronous,
        flip_history=flip_history,
        outbox_retention=outbox_retention,
    )


def parent_problem(path: Path) -> str | None:
    # mkdir() would say only "[Errno 17] File exists"; the store creates a
    # missing directory, so only one that is not a directory is a problem.
    problem = not_a_directory(path)
    return problem and f"{problem}, so {show(str(path))} cannot be created"


def path_problem(path: str) -> str | None:
    if "\x00" in path:
        return "must not contain a NUL character"
    return "must not be empty" if not path.strip() else None


def read_alerts(table: Table, declared: tuple[str, ...] = ()) -> AlertsConfig:
    give_up_after = table.duration("give_up_after", 86400)
    send_timeout = table.duration("send_timeout", 30)
    dependency_wait = table.duration("dependency_wait", 60)
    gap_notice = table.duration("gap_notice", 300)
    silence = table.duration("silence", None)
    channels = table.text_list("channels", None)
    for name in channels or ():
        if name not in declared:
            known = ", ".join(declared) or "none"
            table.error("channels", f'no channel named "{name}" (configured: {known})')
    table.done()
    return AlertsConfig(
        give_up_after=give_up_after,
        send_timeout=send_timeout,
        gap_notice=gap_notice,
        silence=silence,
        channels=tuple(channels) if channels is not None else None,
        dependency_wait=dependency_wait,
    )


def read_self(table: Table) -> SelfPingConfig:
    """[self]: ping_url (or ping_url_file), every, stuck_after."""
    ping_url = _secret(table, "ping_url")
    if ping_url is not None:
        problem = _url_problem(ping_url.reveal())
        if problem is not None:
            # The URL usually holds the check's key: never echo it.
            table.error("ping_url", "expected an http:// or https:// URL (not shown: a secret)")
            ping_url = None
    every = table.duration("every", 60)
    stuck_after = table.duration("stuck_after", 600)
    table.done()
    return SelfPingConfig(ping_url=ping_url, every=every, stuck_after=stuck_after)


def read_web(table: Table) -> WebConfig:
    users_table = table.table("users")
    users = {}
    for name in list(users_table.data):
        value = users_table.raw(name)
        if not name or ":" in name:
            users_table.error(name, 'a user name must not be empty or contain ":"')
        elif not isinstance(value, str) or not value.startswith("scrypt$"):
            # Never echo the value: it may be a plain password typed by mistake.
            users_table.error(name, 'expected a password hash starting with "scrypt$"')
        else:
            try:
                parse_hash(value)
            except HashError as exc:
                users_table.error(name, f"{exc} (make one with `heartbeatd hash-password`)")
            else:
                users[name] = value
    users_table.done()
    table.done()
    return WebConfig(users=users)


def read_smtp(table: Table) -> SmtpOptions:
    """Read the [smtp] table. Problems are recorded on the table."""
    host = table.text("host")
    tls = table.boolean("tls", False)
    port = table.integer("port", 465 if tls else 587, at_least=1, at_most=65535)
    starttls = table.boolean("starttls", not tls)
    if tls and starttls and table.has("starttls"):
        table.error("starttls", "give either tls = true or starttls = true, not both")
    username = table.text("username", None)
    password = table.secret("password", required=False)
    if password is not None and username is None:
        table.error("password", "a password needs a username")
    sender = table.text("from")
    timeout = table.duration("timeout", 30)
    table.done()
    return SmtpOptions(
        host=host or "",
        port=port,
        tls=tls,
        starttls=starttls and not tls,
        username=username,
        password=password,
        sender=sender or "",
        timeout=float(timeout),
    )


def read_channels(table: Table, env: ParseEnv) -> dict[str, Channel]:
    channels = {}
    for name, sub in table.tables():
        table.check(name, name, channel_name_problem)
        kind = sub.text("type") if isinstance(table.data[name], dict) else None
        if kind is None:
            continue
        if kind not in CHANNEL_TYPES:
            known = ", ".join(sorted(CHANNEL_TYPES))
            sub.error("type", f'unknown channel type "{kind}"; known types: {known}')
            # Its other keys mean nothing without a type: don't call them unknown.
            continue
        events = _read_events(sub)
        group_wait = sub.duration("group_wait", 0)
        options = CHANNEL_TYPES[kind].parse_options(sub, env)
        sub.done()
        channels[name] = Channel(
            name=name, type=kind, options=options, events=events, group_wait=group_wait
        )
    table.done()
    return channels


def read_metrics(table: Table) -> MetricsConfig:
    per_monitor = table.boolean("per_monitor", True)
    table.done()
    return MetricsConfig(per_monitor=per_monitor)


def read_api(table: Table) -> ApiConfig:
    """[api]: the keys of the Healthchecks-compatible management API."""
    keys = []
    if table.has("keys_file"):
        text = table.file_text("keys_file")
        if text is not None:
            found, problems = parse_keys(text)
            for problem in problems:
                table.error("keys_file", problem)
            if not found and not problems:
                table.error("keys_file", "holds no key")
            keys = found
    table.done()
    return ApiConfig(keys=tuple(keys))


def _read_events(table: Table) -> frozenset[AlertEvent]:
    names = table.text_list("events", None)
    if names is None:
        return DEFAULT_EVENTS
    known = {event.value: event for event in CHANNEL_EVENTS}
    events = set()
    for name in names:
        if name in known:
            events.add(known[name])
        else:
            table.error("events", f'unknown event "{name}"; known events: {", ".join(known)}')
    return frozenset(events)
