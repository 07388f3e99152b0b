"""The TOML config file, read into frozen values.

`load_config` reports every problem in the file at once (as `ConfigError`), so
a user fixes a config in one round; a config that loads is whole and valid,
and a reload swaps it in with one assignment.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from heartbeatd import pingurl
from heartbeatd.auth import HashError, parse_hash
from heartbeatd.channels import CHANNEL_TYPES
from heartbeatd.channels.base import ParseEnv
from heartbeatd.channels.email import SmtpOptions, parse_smtp
from heartbeatd.durations import DurationError, parse_duration, quote
from heartbeatd.model import Secret
from heartbeatd.schedule import CRON_FIELDS, Schedule, cron_problem, timezone_problem
from heartbeatd.tables import INT64, ConfigError, Problems, Table, find_big_integers, show

try:
    # tomli: required before Python 3.11; after, optional (the `speed` extra),
    # where its compiled wheels parse a big config about 3x faster than the
    # stdlib's tomllib. Same grammar, same error messages.
    import tomli as tomllib
except ImportError:
    import tomllib

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_LISTEN = "127.0.0.1:8080"
# As Healthchecks: an hour after the expected time before a monitor goes down.
DEFAULT_GRACE = 3600
MAX_BODY_LIMIT = 10 * 1024 * 1024
# 100,000 monitors take about 10 MB; past this a file is a mistake (or
# /dev/zero), and reading it whole would only exhaust memory.
MAX_CONFIG_BYTES = 64 * 1024 * 1024
# [server] reload_max_removed: the share of monitors one reload may remove
# without `heartbeatd reload --force`.
DEFAULT_RELOAD_MAX_REMOVED = 50

# Ping actions: /ping/<key>/<slug>/log must not be readable as a monitor named "log".
RESERVED_NAMES = ("start", "fail", "log")
_NAME = re.compile(r"[a-z0-9_-]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
# Keys that hold a secret when given inline; each has a *_file twin.
SECRET_KEYS = ("password", "token", "api_token", "bot_token", "ping_key", "badge_key", "url")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    base_url: str
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    ping_key: Secret | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    api_token: Secret | None = None
    badge_key: Secret | None = None
    # Percent of the running monitors a reload may remove without --force.
    reload_max_removed: int = DEFAULT_RELOAD_MAX_REMOVED


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: Path
    ping_history: int = 100
    max_body: int = 10240
    # PRAGMA synchronous: "full" makes a 200 answer mean the ping survives power loss.
    synchronous: str = "full"
    # Flips kept per monitor, and seconds a finished (sent, failed, moved)
    # outbox row is kept; pending alerts and their flips are always kept.
    flip_history: int = 1000
    outbox_retention: int = 30 * 86400


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    # Seconds after which the outbox stops retrying an alert.
    give_up_after: int = 86400
    # Seconds one delivery attempt may take.
    send_timeout: int = 30


@dataclass(frozen=True, slots=True)
class WebConfig:
    # User name -> "scrypt$..." password hash, for basic auth on the status page.
    users: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str
    # The channel module's own frozen Options.
    options: Any


# slots: a config may hold 100,000 of these, and a __dict__ each doubles that.
@dataclass(frozen=True, slots=True)
class Monitor:
    slug: str
    name: str
    schedule: Schedule
    grace: int
    max_runtime: int
    channels: tuple[str, ...]
    uuid: str | None = None
    repeat: int | None = None
    repeat_limit: int | None = None
    description: str = ""


# No slots: cached_property keeps its value in the instance __dict__.
@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    storage: StorageConfig
    alerts: AlertsConfig
    web: WebConfig
    smtp: SmtpOptions | None
    channels: Mapping[str, Channel]
    monitors: Mapping[str, Monitor]
    # Key paths of secrets written into the file itself, for check_warnings().
    inline_secrets: tuple[str, ...] = ()

    @cached_property
    def by_uuid(self) -> Mapping[str, str]:
        """uuid -> slug, for /ping/<uuid>."""
        return {m.uuid: slug for slug, m in self.monitors.items() if m.uuid}


@dataclass(frozen=True, slots=True)
class _Defaults:
    """[defaults]: None means "not set there", so the built-in default applies."""

    grace: int
    timezone: str
    channels: tuple[str, ...]
    max_runtime: int | None
    repeat: int | None
    repeat_limit: int | None


# -- names -----------------------------------------------------------------------


def _charset_problem(name: str, what: str) -> str | None:
    if not name:
        return f"{what} must not be empty"
    if len(name) > 64:
        return f"{what} may be at most 64 characters long, got {len(name)}"
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
    if _UUID.fullmatch(name):
        return f'{what} may not look like a UUID, got "{name}"'
    return None


def split_address(address: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (host, port); ValueError with a message."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f'expected "host:port" like "{DEFAULT_LISTEN}", got {quote(address)}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"expected an IPv6 address in brackets, got {quote(address)}"
            ) from None
    elif ":" in host:
        raise ValueError(
            f'write an IPv6 address in brackets, like "[::1]:8080", got {quote(address)}'
        )
    # isascii: "²" is a digit to isdigit() and not to int(); the length
    # check keeps int() away from a 5,000-digit "port".
    is_number = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not is_number or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, got {quote(address)}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- loading ---------------------------------------------------------------------


def load_config(path: str | Path, previous: Config | None = None) -> Config:
    """Read and validate a config file; ConfigError lists every problem.

    With `previous` (the running config, on a reload), monitors that did not
    change are the previous objects: the new copies die young, and memory
    does not grow with every reload.
    """
    path = Path(path)
    text = _read_text(path)
    with _gc_paused():
        data = _parse_toml(text, path)
        # The monitors' readers check their own numbers (as durations and
        # with Table.int): skipping them keeps this walk off a big file.
        big = find_big_integers(data, skip=("monitors",))
        if big:
            raise ConfigError(
                [
                    f"{path}: {where}: expected a whole number that fits in 64 bits,"
                    f" got {show(value)}"
                    for where, value in big
                ]
            )
        try:
            return parse_config(data, path, previous)
        except ConfigError:
            raise
        except Exception as exc:
            # A bug in a reader, or a value no test thought of: still a
            # ConfigError, so `check` and `run` exit 2 with one line and a
            # reload keeps the running config. -v shows the traceback.
            log.debug("loading %s failed", path, exc_info=True)
            raise ConfigError([f"{path}: {_unexpected(exc)}"]) from None


def _read_text(path: Path) -> str:
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


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
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


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "cannot load: values nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large to load: out of memory"
    return (
        f"cannot load: unexpected {type(exc).__name__}: {_one_line(exc)}"
        " (a bug in heartbeatd; please report it)"
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
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


def parse_config(data: dict[str, Any], path: str | Path, previous: Config | None = None) -> Config:
    """Validate already-parsed TOML; `path` names the file in messages."""
    path = Path(path)
    base_dir = path.absolute().parent
    problems = Problems(filename=str(path), base_dir=base_dir)
    root = Table(data, "", problems)
    server = _read_server(root.table("server"))
    storage = _read_storage(root.table("storage"), base_dir)
    alerts = _read_alerts(root.table("alerts"))
    web = _read_web(root.table("web"))
    smtp_table = root.table("smtp")
    smtp = parse_smtp(smtp_table) if isinstance(data.get("smtp"), dict) else None
    channels_table = root.table("channels")
    # Monitors may name a channel that has problems of its own: that is one
    # error (on the channel), not one more for every monitor that uses it.
    declared = tuple(sorted(channels_table.data))
    channels = _read_channels(channels_table, ParseEnv(base_dir=base_dir, smtp=smtp))
    defaults = _read_defaults(root.table("defaults"), declared)
    reuse = previous.monitors if previous is not None else {}
    monitors = _read_monitors(root.table("monitors"), defaults, declared, reuse)
    root.done()
    problems.raise_if_any()
    return Config(
        path=path,
        server=server,
        storage=storage,
        alerts=alerts,
        web=web,
        smtp=smtp,
        channels=channels,
        monitors=monitors,
        inline_secrets=tuple(_find_inline_secrets(data)),
    )


def _secret(table: Table, key: str) -> Secret | None:
    value = table.secret(key, required=False)
    if value is not None and not value:
        table.error(key, "must not be empty")
        return None
    return value


def _read_server(table: Table) -> ServerConfig:
    listen = table.str_list("listen", [DEFAULT_LISTEN], allow_str=True)
    if listen == []:
        table.error("listen", "needs at least one address")
    listen = listen or [DEFAULT_LISTEN]
    for address in listen:
        try:
            split_address(address)
        except ValueError as exc:
            table.error("listen", str(exc))
    base_url = table.check("base_url", table.str("base_url", None), _url_problem)
    ping_key = _secret(table, "ping_key")
    if ping_key is not None and not _URL_SAFE.fullmatch(ping_key.reveal()):
        # Never echo the key itself.
        table.error("ping_key", 'may use only letters, digits, "_" and "-"')
        ping_key = None
    proxies = []
    for item in table.str_list("trusted_proxies", []) or []:
        try:
            proxies.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            example = "expected an IP address or network like "
            table.error("trusted_proxies", f'{example}"10.0.0.0/8" or "::1", got "{item}"')
    api_token = _secret(table, "api_token")
    badge_key = _secret(table, "badge_key")
    reload_max_removed = _read_percent(table, "reload_max_removed", DEFAULT_RELOAD_MAX_REMOVED)
    table.done()
    return ServerConfig(
        listen=tuple(listen),
        base_url=(base_url or "http://" + listen[0]).rstrip("/"),
        ping_key=ping_key,
        trusted_proxies=tuple(proxies),
        api_token=api_token,
        badge_key=badge_key,
        reload_max_removed=reload_max_removed,
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


def _read_storage(table: Table, base_dir: Path) -> StorageConfig:
    path = table.check("path", table.str("path", "heartbeatd.db"), _path_problem)
    ping_history = table.int("ping_history", 100, min=1)
    max_body = table.int("max_body", 10240, min=0, max=MAX_BODY_LIMIT)
    synchronous = table.choice("synchronous", ("full", "normal", "extra"), "full")
    flip_history = table.int("flip_history", 1000, min=1)
    outbox_retention = table.duration("outbox_retention", 30 * 86400)
    table.done()
    return StorageConfig(
        # Relative to the config file, not to wherever the daemon was started.
        path=base_dir / (path or "heartbeatd.db"),
        ping_history=ping_history,
        max_body=max_body,
        synchronous=synchronous,
        flip_history=flip_history,
        outbox_retention=outbox_retention,
    )


def _path_problem(path: str) -> str | None:
    if "\x00" in path:
        return "must not contain a NUL character"
    return "must not be empty" if not path.strip() else None


def _read_alerts(table: Table) -> AlertsConfig:
    give_up_after = table.duration("give_up_after", 86400)
    send_timeout = table.duration("send_timeout", 30)
    table.done()
    return AlertsConfig(give_up_after=give_up_after, send_timeout=send_timeout)


def _read_web(table: Table) -> WebConfig:
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


def _read_channels(table: Table, env: ParseEnv) -> dict[str, Channel]:
    channels = {}
    for name, sub in table.tables():
        table.check(name, name, channel_name_problem)
        kind = sub.str("type") if isinstance(table.data[name], dict) else None
        if kind is None:
            continue
        if kind not in CHANNEL_TYPES:
            known = ", ".join(sorted(CHANNEL_TYPES))
            sub.error("type", f'unknown channel type "{kind}"; known types: {known}')
            # Its other keys mean nothing without a type: don't call them unknown.
            continue
        if kind == "email" and env.smtp is None:
            sub.error("type", "an email channel needs an [smtp] table")
            continue
        options = CHANNEL_TYPES[kind].parse_options(sub, env)
        sub.done()
        channels[name] = Channel(name=name, type=kind, options=options)
    table.done()
    return channels


def _channel_list(table: Table, key: str, declared: tuple[str, ...]) -> Any:
    names = table.str_list(key, None)
    if names is None:
        return None
    for name in names:
        if name not in declared:
            known = ", ".join(declared) or "none"
            table.error(key, f'no channel named "{name}" in [channels] (known: {known})')
    return tuple(names)


def _read_defaults(table: Table, declared: tuple[str, ...]) -> _Defaults:
    grace = table.duration("grace", DEFAULT_GRACE)
    zone = table.check("timezone", table.str("timezone", "UTC"), timezone_problem)
    names = _channel_list(table, "channels", declared)
    defaults = _Defaults(
        grace=grace,
        timezone=zone or "UTC",
        channels=declared if names is None else names,
        max_runtime=table.duration("max_runtime", None),
        repeat=table.duration("repeat", None),
        repeat_limit=table.int("repeat_limit", None, min=1),
    )
    table.done()
    return defaults


# Every key a [monitors.<slug>] table may have.
_MONITOR_KEYS = frozenset(
    (
        "name",
        "description",
        "period",
        "schedule",
        "timezone",
        "grace",
        "max_runtime",
        "channels",
        "uuid",
        "repeat",
        "repeat_limit",
    )
)


# A value `_plain_duration` could not read, unlike None, which [defaults] may hold.
_BAD: Any = object()


class _Shared:
    """What monitors read alike: [defaults], the declared channels, and one
    copy of each equal Schedule and channel list, so 100,000 monitors with
    `period = "1h"` hold one Schedule between them."""

    def __init__(self, defaults: _Defaults, declared: tuple[str, ...]) -> None:
        self.defaults = defaults
        self.declared = declared
        self.known_channels = frozenset(declared)
        self._schedules: dict[tuple[int | None, str | None, str], Schedule] = {}
        self._channel_lists: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._zones: dict[str, bool] = {defaults.timezone: True}

    def schedule(self, period: int | None, cron: str | None, zone: str) -> Schedule:
        key = (period, cron, zone)
        found = self._schedules.get(key)
        if found is None:
            found = self._schedules[key] = Schedule(period=period, cron=cron, timezone=zone)
        return found

    def channels(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return self._channel_lists.setdefault(names, names)

    def is_zone(self, name: str) -> bool:
        known = self._zones.get(name)
        if known is None:
            known = self._zones[name] = timezone_problem(name) is None
        return known


def _read_monitors(
    table: Table,
    defaults: _Defaults,
    declared: tuple[str, ...],
    reuse: Mapping[str, Monitor],
) -> dict[str, Monitor]:
    monitors: dict[str, Monitor] = {}
    owners: dict[str, str] = {}  # uuid -> the slug that claimed it first
    shared = _Shared(defaults, declared)
    for slug, data in table.entries():
        monitor = _read_plain_monitor(slug, data, shared) if isinstance(data, dict) else None
        if monitor is None:
            # Anything unusual, and every error, takes the long way that words it.
            monitor = _read_monitor_entry(table, slug, shared)
            if monitor is None:
                continue
        if monitor.uuid is not None:
            if monitor.uuid in owners:
                other = owners[monitor.uuid]
                where = table.table(slug)
                where.error("uuid", f'"{monitor.uuid}" is already the uuid of monitors.{other}')
            owners.setdefault(monitor.uuid, slug)
        before = reuse.get(slug)
        if before == monitor:
            # The old key too: a new key string would pin the arena it was
            # parsed into, full of garbage otherwise.
            monitors[before.slug] = before
        else:
            monitors[slug] = monitor
    table.done()
    return monitors


def _read_monitor_entry(table: Table, slug: str, shared: _Shared) -> Monitor | None:
    sub = table.table(slug)
    table.check(slug, slug, name_problem)
    if not isinstance(table.data[slug], dict):
        return None
    monitor = _read_monitor(slug, sub, shared)
    sub.done()
    return monitor


def _read_plain_monitor(slug: str, data: dict[str, Any], shared: _Shared) -> Monitor | None:
    """The common case, read straight from the dict without a Table.

    None unless every key is known and every value valid: then `_read_monitor`
    reads the entry again and reports what is wrong, so messages are worded
    in one place. Whatever this accepts, `_read_monitor` reads the same.
    """
    if not data.keys() <= _MONITOR_KEYS or name_problem(slug) is not None:
        return None
    defaults = shared.defaults
    name = data.get("name", slug)
    description = data.get("description", "")
    schedule = _plain_schedule(data, shared)
    grace = _plain_duration(data["grace"]) if "grace" in data else defaults.grace
    max_runtime = defaults.max_runtime
    if "max_runtime" in data:
        max_runtime = _plain_duration(data["max_runtime"])
    repeat = defaults.repeat
    if "repeat" in data:
        # `repeat = false` turns off reminders inherited from [defaults].
        repeat = None if data["repeat"] is False else _plain_duration(data["repeat"])
    repeat_limit = data.get("repeat_limit", defaults.repeat_limit)
    if (
        type(name) is not str
        or type(description) is not str
        or schedule is None
        or _BAD in (grace, max_runtime, repeat)
        or (
            "repeat_limit" in data
            and (type(repeat_limit) is not int or repeat_limit < 1 or repeat_limit not in INT64)
        )
        or ("repeat_limit" in data and repeat is None)
    ):
        return None
    channels = defaults.channels
    if "channels" in data:
        names = data["channels"]
        if type(names) is not list or not all(
            type(n) is str and n in shared.known_channels for n in names
        ):
            return None
        channels = shared.channels(tuple(names))
    uuid_text = data.get("uuid")
    if uuid_text is not None:
        if type(uuid_text) is not str or _uuid_problem(uuid_text) is not None:
            return None
        # Stored in one spelling: lower case, with dashes, whatever the file says.
        uuid_text = str(uuid.UUID(uuid_text))
    return Monitor(
        slug=slug,
        name=name,
        description=description,
        schedule=schedule,
        grace=grace,
        max_runtime=max_runtime or grace,
        channels=channels,
        uuid=uuid_text,
        repeat=repeat,
        repeat_limit=repeat_limit if repeat is not None else None,
    )


def _plain_duration(value: Any) -> Any:
    # bool is an int, and a duration error is worded by Table.duration.
    if type(value) is not str and type(value) is not int:
        return _BAD
    try:
        return parse_duration(value)
    except DurationError:
        return _BAD


def _plain_schedule(data: dict[str, Any], shared: _Shared) -> Schedule | None:
    zone = data.get("timezone", shared.defaults.timezone)
    if type(zone) is not str or not shared.is_zone(zone):
        return None
    has_period, has_cron = "period" in data, "schedule" in data
    if has_period == has_cron:
        return None
    if has_period:
        period = _plain_duration(data["period"])
        return None if period is _BAD else shared.schedule(period, None, zone)
    cron = data["schedule"]
    if type(cron) is not str or _cron_problem(cron) is not None:
        return None
    return shared.schedule(None, " ".join(cron.split()), zone)


def _read_monitor(slug: str, table: Table, shared: _Shared) -> Monitor | None:
    defaults = shared.defaults
    name = table.str("name", slug)
    description = table.str("description", "")
    schedule = _read_schedule(table, shared)
    grace = table.duration("grace", defaults.grace)
    max_runtime = table.duration("max_runtime", defaults.max_runtime) or grace
    names = _channel_list(table, "channels", shared.declared)
    uuid_text = table.check("uuid", table.str("uuid", None), _uuid_problem)
    repeat = _read_repeat(table, defaults)
    repeat_limit = table.int("repeat_limit", defaults.repeat_limit, min=1)
    if table.has("repeat_limit") and repeat is None:
        table.error("repeat_limit", 'needs repeat, the reminder interval (e.g. repeat = "1h")')
    if schedule is None or name is None or grace is None or description is None:
        return None
    return Monitor(
        slug=slug,
        name=name,
        description=description,
        schedule=schedule,
        grace=grace,
        max_runtime=max_runtime,
        channels=defaults.channels if names is None else shared.channels(names),
        uuid=None if uuid_text is None else str(uuid.UUID(uuid_text)),
        repeat=repeat,
        repeat_limit=repeat_limit if repeat is not None else None,
    )


def _read_schedule(table: Table, shared: _Shared) -> Schedule | None:
    zone = table.check(
        "timezone", table.str("timezone", shared.defaults.timezone), timezone_problem
    )
    if table.has("period") and table.has("schedule"):
        table.error("schedule", "give either period or schedule, not both")
        table.raw("period")
        table.raw("schedule")
        return None
    if table.has("period"):
        period = table.duration("period")
        return None if period is None else shared.schedule(period, None, zone or "UTC")
    if table.has("schedule"):
        cron = table.check("schedule", table.str("schedule"), _cron_problem)
        if cron is None or zone is None:
            return None
        return shared.schedule(None, " ".join(cron.split()), zone)
    table.error("", 'needs period (like "1d") or schedule (a cron expression like "0 2 * * *")')
    return None


# Far past any value a cron field takes, and far short of the 4,300 digits
# at which cronsim's int() would raise instead of reporting a bad field.
_LONG_CRON_NUMBER = re.compile(r"\d{20}")


def _cron_problem(expr: str) -> str | None:
    fields = expr.split()
    if len(fields) == len(CRON_FIELDS):
        for name, text in zip(CRON_FIELDS, fields, strict=True):
            if _LONG_CRON_NUMBER.search(text):
                return f"bad {name} in cron expression {quote(expr)}"
    problem = cron_problem(expr)
    # schedule.py echoes the expression whole; a long one is cut short here.
    return problem and problem.replace(f'"{expr}"', quote(expr))


def _read_repeat(table: Table, defaults: _Defaults) -> int | None:
    # `repeat = false` turns off reminders inherited from [defaults].
    if table.data.get("repeat") is False:
        table.raw("repeat")
        return None
    return table.duration("repeat", defaults.repeat)


def _uuid_problem(text: str) -> str | None:
    try:
        uuid.UUID(text)
    except ValueError:
        return f'expected a UUID like "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b", got "{text}"'
    return None


def _find_inline_secrets(data: dict[str, Any]) -> list[str]:
    found = []
    server = data.get("server", {})
    for key in ("ping_key", "api_token", "badge_key"):
        if isinstance(server, dict) and key in server:
            found.append(f"server.{key}")
    smtp = data.get("smtp", {})
    if isinstance(smtp, dict) and "password" in smtp:
        found.append("smtp.password")
    channels = data.get("channels", {})
    for name, options in channels.items() if isinstance(channels, dict) else ():
        for key in options if isinstance(options, dict) else ():
            if key in SECRET_KEYS:
                found.append(f"channels.{name}.{key}")
    return found


# -- after loading ---------------------------------------------------------------


def ping_urls(config: Config, monitor: Monitor) -> list[str]:
    """The URLs a job may ping for `monitor`: by uuid (if any), then by slug."""
    key = config.server.ping_key
    targets = [pingurl.PingTarget(pingurl.By.UUID, monitor.uuid)] if monitor.uuid else []
    slug_key = None if key is None else key.reveal()
    targets.append(pingurl.PingTarget(pingurl.By.SLUG, monitor.slug, ping_key=slug_key))
    return [pingurl.build(config.server.base_url, target) for target in targets]


def check_warnings(config: Config) -> list[str]:
    """Things that are valid but probably not what the user wants."""
    where = f"{config.path}: "
    warnings = []
    public = [a for a in config.server.listen if not is_loopback(split_address(a)[0])]
    if public and config.server.api_token is None:
        warnings.append(
            f"{where}server.listen: listens on {public[0]} without [server] api_token_file:"
            " the read-only API, /metrics and the status page are open to anyone"
            " who can reach it, and the write API is off"
        )
    if public and config.server.ping_key is None:
        warnings.append(
            f"{where}server.listen: listens on {public[0]} without [server] ping_key:"
            " anyone who can reach it and guess a slug can ping a monitor"
        )
    host = urlsplit(config.server.base_url).hostname or ""
    if host in ("0.0.0.0", "::"):
        warnings.append(
            f"{where}server.base_url: alert links will point to {config.server.base_url};"
            " set base_url to the address users reach heartbeatd at"
        )
    if not config.monitors:
        warnings.append(f"{where}monitors: none configured, so heartbeatd would watch nothing")
    for slug, monitor in config.monitors.items():
        if not monitor.channels:
            warnings.append(f"{where}monitors.{slug}: has no channels, so nobody hears of it")
    if config.inline_secrets and _is_world_readable(config.path):
        keys = ", ".join(config.inline_secrets)
        warnings.append(
            f"{where}holds secrets inline ({keys}) and other users can read it:"
            " chmod o-r the file, or move them to *_file keys"
        )
    return warnings


def _is_world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o004)
    except OSError:
        return False


def reload_problem(running: Config, new: Config) -> str | None:
    """Why swapping `running` for `new` needs `heartbeatd reload --force`, or None.

    A file saved empty, or cut short before [monitors] (a non-atomic save
    caught by a reload), is valid TOML and a valid config that silently stops
    every alert. The running config's limit applies, so a file cannot loosen
    the rule for its own reload.
    """
    total = len(running.monitors)
    if not total:
        return None
    force = "`heartbeatd reload --force` applies it anyway"
    if not new.monitors:
        return (
            f"{new.path}: monitors: none in the file, so the reload would remove all {total}"
            f" monitors (a file cut short?); {force}"
        )
    removed = sum(1 for slug in running.monitors if slug not in new.monitors)
    percent = running.server.reload_max_removed
    allowed = total * percent // 100
    if removed <= allowed:
        return None
    return (
        f"{new.path}: monitors: the reload would remove {removed} of {total} monitors;"
        f' [server] reload_max_removed = "{percent}%" allows {allowed}; {force}'
    )


# A table header line, and one of a [monitors.<slug>] table (or [monitors]).
_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)
_MONITORS_HEADER = re.compile(r"[ \t]*\[[ \t]*monitors[ \t]*[.\]]")


def find_database(path: str | Path) -> Path | None:
    """The database a config file names, read leniently; None if it is not TOML.

    For `heartbeatd reload`, which must find the running daemon's status
    next to its database even when the new file has errors. The
    [monitors.*] tables are left out before parsing: they are most of a big
    file, and say nothing about the database.
    """
    path = Path(path)
    try:
        text = _read_text(path)
        kept, last, dropping = [], 0, False
        for header in _HEADER.finditer(text):
            if not dropping:
                kept.append(text[last : header.start()])
            last = header.start()
            dropping = _MONITORS_HEADER.match(text, header.start()) is not None
        if not dropping:
            kept.append(text[last:])
        data = tomllib.loads("".join(kept))
    except (ConfigError, RecursionError, ValueError, MemoryError):
        return None
    storage = data.get("storage")
    name = storage.get("path", "heartbeatd.db") if isinstance(storage, dict) else "heartbeatd.db"
    if not isinstance(name, str) or _path_problem(name) is not None:
        return None
    return path.absolute().parent / name
