from __future__ import annotations

import ipaddress
import os
import re
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heartbeatd.channels import CHANNEL_TYPES, log
from heartbeatd.channels.base import ParseEnv
from heartbeatd.config import (
    Config,
    Monitor,
    check_warnings,
    find_database,
    load_config,
    parse_config,
    ping_urls,
    reload_problem,
    sections,
)
from heartbeatd.model import Secret
from heartbeatd.names import name_problem
from heartbeatd.schedule import Schedule
from heartbeatd.tables import ConfigError, Table

FILE = "heartbeatd.toml"
UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
# `heartbeatd hash-password` output for "correct horse".
ADMIN_HASH = "scrypt$32768$8$1$/4pHQSq5mSEi2VHIiFDtxg$pzGI+ACmuGprwoDREHRAWiDhykoj6BorCS4HCocKhxc"
HINT = 'expected a duration like "30s", "5m" or "1h30m"'


def parse_stub(table: Table, env: ParseEnv) -> SimpleNamespace:
    """A channel type that keeps what the loader handed it."""
    to = table.text_list("to", allow_text=True)
    return SimpleNamespace(to=to, url=table.secret("url", required=False), env=env)


STUB = SimpleNamespace(parse_options=parse_stub)


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed registry, so these tests do not depend on which channel modules exist.
    monkeypatch.setattr(sections, "CHANNEL_TYPES", {"log": log, "email": STUB})


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages then name the file as a user would have typed it.
    monkeypatch.chdir(tmp_path)


def write(text: str, name: str = FILE, mode: int = 0o600) -> Path:
    path = Path(name)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


def load(text: str) -> Config:
    return load_config(write(text))


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value.problems


FULL = f"""
    [server]
    listen = ["127.0.0.1:8080", "[::1]:8080"]
    base_url = "https://hb.example.com/"
    ping_key_file = "ping-key"
    trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
    api_token_file = "api-token"

    [storage]
    path = "state/heartbeatd.db"
    ping_history = 50
    max_body = 20000
    synchronous = "normal"

    [alerts]
    give_up_after = "2d"
    send_timeout = "10s"

    [web.users]
    admin = "scrypt$32768$8$1$/4pHQSq5mSEi2VHIiFDtxg$pzGI+ACmuGprwoDREHRAWiDhykoj6BorCS4HCocKhxc"

    [defaults]
    grace = "5m"
    timezone = "Europe/Riga"
    channels = ["ops"]
    repeat = "1h"
    repeat_limit = 3

    [smtp]
    host = "smtp.example.com"
    port = 587
    starttls = true
    username = "alerts@example.com"
    password_file = "smtp-password"
    from = "heartbeatd <alerts@example.com>"

    [channels.ops]
    type = "email"
    to = ["ops@example.com"]

    [channels.journal]
    type = "log"
    level = "error"

    [monitors.nightly-backup]
    name = "Nightly Postgres backup"
    description = "pg_dump to the NAS"
    schedule = "0  2 * * *"
    grace = "30m"
    max_runtime = "2h"
    channels = ["ops", "journal"]
    uuid = "{UUID.upper()}"

    [monitors.queue-worker]
    period = "1m"
    timezone = "UTC"
    repeat = false
"""


def test_it_loads_a_full_config(tmp_path: Path) -> None:
    # *_file paths are relative to the config file's directory.
    (tmp_path / "ping-key").write_text("k3y_-abcdefgh\n")
    (tmp_path / "smtp-password").write_text("hunter2\n")
    (tmp_path / "api-token").write_text("t0ken")

    config = load(FULL)

    server = config.server
    assert server.listen == ("127.0.0.1:8080", "[::1]:8080")
    assert server.base_url == "https://hb.example.com"
    assert server.ping_key == Secret("k3y_-abcdefgh")
    assert server.api_token == Secret("t0ken")
    assert server.badge_key is None
    assert server.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )
    assert config.storage.path == tmp_path / "state" / "heartbeatd.db"
    assert (config.storage.ping_history, config.storage.max_body) == (50, 20000)
    assert config.storage.synchronous == "normal"
    assert (config.alerts.give_up_after, config.alerts.send_timeout) == (172800, 10)
    assert dict(config.web.users) == {"admin": ADMIN_HASH}
    assert config.smtp is not None
    assert config.smtp.password == Secret("hunter2")

    ops = config.channels["ops"]
    assert (ops.name, ops.type, ops.options.to) == ("ops", "email", ["ops@example.com"])
    assert ops.options.env == ParseEnv(base_dir=tmp_path, smtp=config.smtp)
    assert config.channels["journal"].options == log.Options(level="error")

    backup = config.monitors["nightly-backup"]
    assert backup.name == "Nightly Postgres backup"
    assert backup.description == "pg_dump to the NAS"
    assert backup.schedule == Schedule(cron="0 2 * * *", timezone="Europe/Riga")
    assert (backup.grace, backup.max_runtime) == (1800, 7200)
    assert backup.channels == ("ops", "journal")
    assert backup.uuid == UUID
    assert (backup.repeat, backup.repeat_limit) == (3600, 3)

    # Everything not set on the monitor comes from [defaults]; max_runtime
    # defaults to the monitor's grace; `repeat = false` turns reminders off.
    worker = config.monitors["queue-worker"]
    assert worker.name == "queue-worker"
    assert worker.description == ""
    assert worker.schedule == Schedule(period=60, timezone="UTC")
    assert (worker.grace, worker.max_runtime) == (300, 300)
    assert worker.channels == ("ops",)
    assert worker.uuid is None
    assert (worker.repeat, worker.repeat_limit) == (None, None)

    assert check_warnings(config) == [
        f"{FILE}: monitors.queue-worker.timezone: has no effect with period (a period counts"
        " from the last ping); only a cron schedule uses it: remove it, or use schedule"
    ]


def test_it_fills_in_defaults_for_an_almost_empty_file(tmp_path: Path) -> None:
    config = load(
        """
        [channels.b]
        type = "log"
        [channels.a]
        type = "log"
        [monitors.backup]
        schedule = "0 2 * * *"
        """
    )
    assert config.server.listen == ("127.0.0.1:8080",)
    assert config.server.base_url == "http://127.0.0.1:8080"
    assert config.server.ping_key is None
    assert config.server.trusted_proxies == ()
    assert config.storage.path == tmp_path / "heartbeatd.db"
    assert (config.storage.ping_history, config.storage.max_body) == (100, 10240)
    assert config.storage.synchronous == "full"
    assert (config.alerts.give_up_after, config.alerts.send_timeout) == (86400, 30)
    assert dict(config.web.users) == {}
    assert config.smtp is None

    backup = config.monitors["backup"]
    assert backup.schedule == Schedule(cron="0 2 * * *", timezone="UTC")
    # As Healthchecks: an hour of grace; every channel, sorted by name.
    assert (backup.grace, backup.max_runtime) == (3600, 3600)
    assert backup.channels == ("a", "b")
    assert (backup.repeat, backup.repeat_limit) == (None, None)


def test_it_loads_an_empty_file() -> None:
    config = load("")
    assert dict(config.monitors) == {}
    assert dict(config.channels) == {}


def test_it_keeps_an_absolute_storage_path() -> None:
    config = load('[storage]\npath = "/var/lib/heartbeatd/heartbeatd.db"\n')
    assert config.storage.path == Path("/var/lib/heartbeatd/heartbeatd.db")


def test_it_takes_a_single_listen_address_and_derives_the_base_url() -> None:
    config = load('[server]\nlisten = "[::1]:9000"\n')
    assert config.server.listen == ("[::1]:9000",)
    assert config.server.base_url == "http://[::1]:9000"


def test_it_inherits_max_runtime_and_repeat_limit_from_defaults() -> None:
    config = load(
        """
        [defaults]
        grace = "10m"
        max_runtime = "1h"
        repeat_limit = 5
        [monitors.a]
        period = "1d"
        repeat = "2h"
        [monitors.b]
        period = "1d"
        grace = "1m"
        """
    )
    a, b = config.monitors["a"], config.monitors["b"]
    assert (a.grace, a.max_runtime, a.repeat, a.repeat_limit) == (600, 3600, 7200, 5)
    # repeat_limit means nothing without repeat.
    assert (b.grace, b.max_runtime, b.repeat, b.repeat_limit) == (60, 3600, None, None)


def test_it_lets_a_channel_be_named_log() -> None:
    # Channel names never appear in ping URLs, so the ping actions are fine there.
    config = load(
        """
        [channels.log]
        type = "log"
        """
    )
    assert config.channels["log"].type == "log"


def test_it_lets_a_monitor_opt_out_of_default_channels() -> None:
    config = load(
        """
        [channels.ops]
        type = "log"
        [monitors.a]
        period = "1d"
        channels = []
        """
    )
    assert config.monitors["a"].channels == ()


def fleet(count: int) -> str:
    """A generated file of `count` monitors in five shapes, as big configs are written."""
    lines = [
        "[defaults]",
        'grace = "10m"',
        'timezone = "Europe/Riga"',
        'channels = ["ops"]',
        'repeat = "2h"',
        "repeat_limit = 3",
        "[channels.ops]",
        'type = "log"',
        "[channels.pager]",
        'type = "log"',
    ]
    shapes = [
        ['period = "1h"'],
        ['schedule = "0  2 * * *"', 'timezone = "UTC"', 'channels = ["pager", "ops"]'],
        ["period = 90", 'grace = "1m"', 'max_runtime = "2h"', "repeat = false", "channels = []"],
        ['schedule = "0 2 * * *"', 'name = "Job {i}"', 'description = "#{i}"', 'uuid = "{u}"'],
        ['period = "1h"', 'repeat = "30m"', "repeat_limit = 1"],
    ]
    for i in range(count):
        lines.append(f"[monitors.job-{i}]")
        u = str(uuid.UUID(int=i)).upper()
        lines.extend(line.format(i=i, u=u) for line in shapes[i % len(shapes)])
    return "\n".join(lines) + "\n"


def test_it_loads_a_fleet_of_monitors_sharing_equal_values() -> None:
    config = load_config(write(fleet(5000)))
    monitors = config.monitors
    assert len(monitors) == 5000
    hourly = Schedule(period=3600, timezone="Europe/Riga")
    # Everything but the period comes from [defaults].
    assert monitors["job-0"] == Monitor(
        slug="job-0",
        name="job-0",
        schedule=hourly,
        grace=600,
        max_runtime=600,
        channels=("ops",),
        repeat=7200,
        repeat_limit=3,
    )
    assert monitors["job-4001"] == Monitor(
        slug="job-4001",
        name="job-4001",
        schedule=Schedule(cron="0 2 * * *", timezone="UTC"),
        grace=600,
        max_runtime=600,
        channels=("pager", "ops"),
        repeat=7200,
        repeat_limit=3,
    )
    assert monitors["job-2502"] == Monitor(
        slug="job-2502",
        name="job-2502",
        schedule=Schedule(period=90, timezone="Europe/Riga"),
        grace=60,
        max_runtime=7200,
        channels=(),
    )
    assert monitors["job-3"] == Monitor(
        slug="job-3",
        name="Job 3",
        description="#3",
        schedule=Schedule(cron="0 2 * * *", timezone="Europe/Riga"),
        grace=600,
        max_runtime=600,
        channels=("ops",),
        uuid=str(uuid.UUID(int=3)),
        repeat=7200,
        repeat_limit=3,
    )
    assert (monitors["job-4999"].repeat, monitors["job-4999"].repeat_limit) == (1800, 1)
    assert monitors["job-4998"].uuid == str(uuid.UUID(int=4998))
    # One object for each distinct schedule and channel list, not one a monitor.
    assert len({id(m.schedule) for m in monitors.values()}) == 4
    assert len({id(m.channels) for m in monitors.values()}) == 3
    assert monitors["job-0"].schedule is monitors["job-4999"].schedule


def test_it_reports_one_bad_monitor_among_many_good_ones() -> None:
    text = fleet(1000) + '[monitors.job-1000]\nperiod = "1h"\nrepeat = true\n'
    assert problems(text) == [f"{FILE}: monitors.job-1000.repeat: {HINT}, got True"]


BAD_CONFIGS = [
    pytest.param(
        """
        [monitors.nightly-backup]
        period = "1d"
        grace = "5 min"
        """,
        [f'{FILE}: monitors.nightly-backup.grace: {HINT}, got "5 min"'],
        id="bad-duration",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1d"
        schedule = "0 2 * * *"
        """,
        [
            f"{FILE}: monitors.backup.schedule: give only one of period, schedule and oncalendar"
            " (got period and schedule)"
        ],
        id="period-and-schedule",
    ),
    pytest.param(
        """
        [monitors.backup]
        grace = "1h"
        """,
        [
            f'{FILE}: monitors.backup: needs period (like "1d"), schedule'
            ' (a cron expression like "0 2 * * *") or oncalendar'
            ' (a systemd calendar expression like "Mon..Fri 09:00")'
        ],
        id="neither-period-nor-schedule",
    ),
    pytest.param(
        """
        [monitors.backup]
        schedule = "0 2 * * 8"
        """,
        [f'{FILE}: monitors.backup.schedule: bad day-of-week in cron expression "0 2 * * 8"'],
        id="bad-cron",
    ),
    pytest.param(
        """
        [monitors.backup]
        schedule = "0 2 * * *"
        timezone = "Europe/Rīga"
        """,
        [
            f'{FILE}: monitors.backup.timezone: unknown time zone "Europe/Rīga";'
            ' expected an IANA name like "Europe/Riga" or "UTC"'
        ],
        id="bad-timezone",
    ),
    pytest.param(
        """
        [defaults]
        timezone = "CEST"
        """,
        [
            f'{FILE}: defaults.timezone: unknown time zone "CEST";'
            ' expected an IANA name like "Europe/Riga" or "UTC"'
        ],
        id="bad-default-timezone",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1d"
        graec = "1h"
        """,
        [f"{FILE}: monitors.backup.graec: unknown key; did you mean `grace`?"],
        id="unknown-key",
    ),
    pytest.param(
        """
        [monitor.backup]
        period = "1d"
        """,
        [
            f"{FILE}: monitor: unknown key; did you mean `[monitors.backup]`?",
        ],
        id="mistyped-monitors-table",
    ),
    pytest.param(
        """
        [monitors.backup]
        period = "1d"
        chanels = []
        [monitors.nightly]
        period = "1d"
        perod = "1h"
        """,
        [
            f"{FILE}: monitors.backup.chanels: unknown key; did you mean `channels`?",
            f"{FILE}: monitors.nightly.perod: unknown key; did you mean `period`?",
        ],
        id="mistyped-monitor-keys",
    ),
    pytest.param(
        """
        [server]
        listen = "127.0.0.1:8080"
        [logging]
        level = "debug"
        """,
        [f"{FILE}: logging: unknown key"],
        id="unknown-table",
    ),
    pytest.param(
        """
        [channels.ops]
        type = "log"
        [monitors.backup]
        period = "1d"
        channels = ["ops", "opz"]
        """,
        [f'{FILE}: monitors.backup.channels: no channel named "opz" in [channels] (known: ops)'],
        id="unknown-channel",
    ),
    pytest.param(
        """
        [defaults]
        channels = ["ops"]
        """,
        [f'{FILE}: defaults.channels: no channel named "ops" in [channels] (known: none)'],
        id="unknown-default-channel",
    ),
    pytest.param(
        """
        [monitors.Backup]
        period = "1d"
        """,
        [f'{FILE}: monitors.Backup: a slug may use only a-z, 0-9, "_" and "-", got "Backup"'],
        id="bad-slug",
    ),
    pytest.param(
        """
        [monitors."nightly backup"]
        period = "1d"
        """,
        [
            f'{FILE}: monitors."nightly backup": a slug may use only a-z, 0-9, "_" and "-",'
            ' got "nightly backup"'
        ],
        id="slug-with-space",
    ),
    pytest.param(
        """
        [monitors.start]
        period = "1d"
        """,
        [
            f'{FILE}: monitors.start: a slug may not be "start", "fail" or "log" (ping actions),'
            ' got "start"'
        ],
        id="reserved-slug",
    ),
    pytest.param(
        """
        [monitors.0042]
        period = "1d"
        """,
        [f'{FILE}: monitors.0042: a slug may not be all digits (an exit status), got "0042"'],
        id="digits-slug",
    ),
    pytest.param(
        f"""
        [monitors.{UUID}]
        period = "1d"
        """,
        [f'{FILE}: monitors.{UUID}: a slug may not look like a UUID, got "{UUID}"'],
        id="uuid-shaped-slug",
    ),
    pytest.param(
        f"""
        [monitors.{"a" * 65}]
        period = "1d"
        """,
        [f"{FILE}: monitors.{'a' * 65}: a slug may be at most 64 characters long, got 65"],
        id="long-slug",
    ),
    pytest.param(
        """
        [channels.Ops]
        type = "log"
        """,
        [f'{FILE}: channels.Ops: a channel name may use only a-z, 0-9, "_" and "-", got "Ops"'],
        id="bad-channel-name",
    ),
    pytest.param(
        f"""
        [monitors.a]
        period = "1d"
        uuid = "{UUID}"
        [monitors.b]
        period = "1d"
        uuid = "{UUID.upper()}"
        """,
        [f'{FILE}: monitors.b.uuid: "{UUID}" is already the uuid of monitors.a'],
        id="duplicate-uuid",
    ),
    pytest.param(
        """
        [monitors.a]
        period = "1d"
        uuid = "9c4a2f4e"
        """,
        [f'{FILE}: monitors.a.uuid: expected a UUID like "{UUID}", got "9c4a2f4e"'],
        id="bad-uuid",
    ),
    pytest.param(
        """
        [channels.pager]
        type = "pagerduty"
        routing_key = "abc"
        """,
        [f'{FILE}: channels.pager.type: unknown channel type "pagerduty"; known types: email, log'],
        id="unknown-channel-type",
    ),
    pytest.param(
        """
        [channels.pager]
        to = "ops@example.com"
        """,
        [f"{FILE}: channels.pager.type: is required"],
        id="missing-channel-type",
    ),
    pytest.param(
        """
        [smtp]
        host = "smtp.example.com"
        from = "hb@example.com"
        username = "hb"
        password = "x"
        password_file = "smtp-password"
        """,
        [f"{FILE}: smtp.password: give either password or password_file, not both"],
        id="password-and-password-file",
    ),
    pytest.param(
        """
        [smtp]
        host = "smtp.example.com"
        from = "hb@example.com"
        username = "hb"
        password_file = "missing-password"
        """,
        [
            f'{FILE}: smtp.password_file: cannot read "{{dir}}/missing-password":'
            " No such file or directory"
        ],
        id="unreadable-password-file",
    ),
    pytest.param(
        """
        [server]
        listen = ["127.0.0.1:80800", "::1:8080", "[::g]:80", "8080"]
        """,
        [
            f'{FILE}: server.listen: expected a port from 1 to 65535, got "127.0.0.1:80800"',
            f'{FILE}: server.listen: write an IPv6 address in brackets, like "[::1]:8080",'
            ' got "::1:8080"',
            f'{FILE}: server.listen: expected an IPv6 address in brackets, got "[::g]:80"',
            f'{FILE}: server.listen: expected "host:port" like "127.0.0.1:8080", got "8080"',
        ],
        id="bad-listen",
    ),
    pytest.param(
        """
        [server]
        base_url = "hb.example.com"
        ping_key = "not/url safe"
        trusted_proxies = ["10.0.0.0/33"]
        api_token = ""
        """,
        [
            f'{FILE}: server.base_url: expected an http:// or https:// URL, got "hb.example.com"',
            f'{FILE}: server.ping_key: may use only letters, digits, "_" and "-"',
            f"{FILE}: server.trusted_proxies: expected an IP address or network like"
            ' "10.0.0.0/8" or "::1", got "10.0.0.0/33"',
            f"{FILE}: server.api_token: must not be empty",
        ],
        id="bad-server",
    ),
    pytest.param(
        """
        [server]
        ping_key = "9C4A2F4E-1111-4222-8333-944445555666"
        """,
        [
            f"{FILE}: server.ping_key: must not look like a UUID: /ping/<ping_key>/<slug>"
            " would be read as a ping by uuid",
        ],
        id="uuid-shaped-ping-key",
    ),
    pytest.param(
        """
        [storage]
        ping_history = 0
        max_body = 20000000
        synchronous = "off"
        """,
        [
            f"{FILE}: storage.ping_history: expected a number from 1, got 0",
            f"{FILE}: storage.max_body: expected a number from 0 to 10485760, got 20000000",
            f'{FILE}: storage.synchronous: expected one of "full", "normal", "extra", got "off"',
        ],
        id="bad-storage",
    ),
    pytest.param(
        """
        [smtp]
        """,
        [f"{FILE}: smtp.host: is required", f"{FILE}: smtp.from: is required"],
        id="empty-smtp",
    ),
    pytest.param(
        """
        [web.users]
        admin = "hunter2"
        """,
        [f'{FILE}: web.users.admin: expected a password hash starting with "scrypt$"'],
        id="plain-password-for-web-user",
    ),
    pytest.param(
        """
        [web.users]
        admin = "scrypt$1000$8$1$c2FsdA$aGFzaA"
        """,
        [
            f"{FILE}: web.users.admin: n must be a power of 2 up to 1048576"
            " (make one with `heartbeatd hash-password`)"
        ],
        id="broken-password-hash",
    ),
    pytest.param(
        """
        [monitors.a]
        period = "1d"
        repeat_limit = 3
        """,
        [
            f"{FILE}: monitors.a.repeat_limit: needs repeat, the reminder interval"
            ' (e.g. repeat = "1h")'
        ],
        id="repeat-limit-without-repeat",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_it_reports_bad_configs(text: str, expected: list[str], tmp_path: Path) -> None:
    assert problems(text) == [line.replace("{dir}", str(tmp_path)) for line in expected]


def test_it_reports_every_problem_at_once() -> None:
    assert problems(
        """
        [server]
        listen = "localhost"

        [channels.ops]
        type = "log"
        levle = "error"

        [monitors.a]
        period = "5 min"
        [monitors.B]
        schedule = "0 2 * *"
        channels = ["pos"]
        """
    ) == [
        f'{FILE}: server.listen: expected "host:port" like "127.0.0.1:8080", got "localhost"',
        f"{FILE}: channels.ops.levle: unknown key; did you mean `level`?",
        f'{FILE}: monitors.a.period: {HINT}, got "5 min"',
        f'{FILE}: monitors.B: a slug may use only a-z, 0-9, "_" and "-", got "B"',
        f"{FILE}: monitors.B.schedule: expected a cron expression of 5 fields (minute hour"
        ' day-of-month month day-of-week), got 4 in "0 2 * *"',
        f'{FILE}: monitors.B.channels: no channel named "pos" in [channels] (known: ops)',
    ]


def test_an_email_channel_without_smtp_has_its_other_problems_reported_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The email channel itself says it needs [smtp]; the rest of its table is
    # still read, so a second round does not bring up new errors.
    monkeypatch.setattr(sections, "CHANNEL_TYPES", CHANNEL_TYPES)
    assert problems(
        """
        [channels.ops]
        type = "email"
        to = ["ops"]
        subjetc_prefix = "[hb]"
        [monitors.a]
        period = "1d"
        channels = ["ops"]
        """
    ) == [
        f'{FILE}: channels.ops.to: expected an email address like "ops@example.com", got "ops"',
        f"{FILE}: channels.ops.type: an email channel needs an [smtp] table",
        f"{FILE}: channels.ops.subjetc_prefix: unknown key; did you mean `subject_prefix`?",
    ]


def test_it_reports_a_missing_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("nope.toml")
    assert caught.value.problems == ["nope.toml: cannot read: No such file or directory"]


def test_it_reports_a_toml_syntax_error() -> None:
    path = write("[server]\nlisten = 127.0.0.1:8080\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{FILE}: invalid TOML: Expected newline or end of document after a statement"
        " (at line 2, column 15)"
    ]


def test_it_reports_a_file_that_is_not_utf8() -> None:
    Path(FILE).write_bytes(b'[monitors.a]\nname = "\xff"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(FILE)
    assert caught.value.problems == [f"{FILE}: not UTF-8 text: invalid start byte on line 2"]


def test_it_lists_ping_urls() -> None:
    config = load(
        f"""
        [server]
        base_url = "https://hb.example.com/base/"
        [monitors.backup]
        period = "1d"
        uuid = "{UUID}"
        [monitors.worker]
        period = "1m"
        """
    )
    assert ping_urls(config, config.monitors["backup"]) == [
        f"https://hb.example.com/base/ping/{UUID}",
        "https://hb.example.com/base/ping/backup",
    ]
    assert ping_urls(config, config.monitors["worker"]) == [
        "https://hb.example.com/base/ping/worker"
    ]


def test_it_puts_the_ping_key_in_slug_urls() -> None:
    config = load(
        """
        [server]
        ping_key = "s3cr3t-key"
        [monitors.worker]
        period = "1m"
        """
    )
    assert ping_urls(config, config.monitors["worker"]) == [
        "http://127.0.0.1:8080/ping/s3cr3t-key/worker"
    ]


def test_it_warns_about_an_open_daemon_and_a_monitor_without_channels() -> None:
    config = load(
        """
        [server]
        listen = ["127.0.0.1:8080", "0.0.0.0:8080"]
        [monitors.lonely]
        period = "1d"
        """
    )
    assert check_warnings(config) == [
        f"{FILE}: server.listen: listens on 0.0.0.0:8080 without [server] api_token_file"
        " or [web.users]: the status page, the read API and /metrics are open to anyone who"
        " can reach it, and the write API is off",
        f"{FILE}: server.listen: listens on 0.0.0.0:8080 without [server] ping_key:"
        " anyone who can reach it and guess a slug can ping a monitor",
        f"{FILE}: monitors.lonely: has no channels, so nobody hears of it",
    ]


def test_it_does_not_call_a_daemon_with_web_users_open() -> None:
    # With [web.users] alone, the page, the read API and /metrics need a login.
    config = load(
        f"""
        [server]
        listen = "0.0.0.0:8080"
        ping_key = "abcdefgh"
        base_url = "https://hb.example.com"
        [web.users]
        admin = "{ADMIN_HASH}"
        [channels.log]
        type = "log"
        [monitors.backup]
        period = "1d"
        """
    )
    assert check_warnings(config) == []


def test_it_warns_about_alert_links_to_a_wildcard_address() -> None:
    config = load(
        """
        [server]
        listen = "0.0.0.0:8080"
        ping_key = "abcdefgh"
        api_token = "t0ken"
        """
    )
    assert check_warnings(config) == [
        f"{FILE}: server.base_url: alert links will point to http://0.0.0.0:8080;"
        " set base_url to the address users reach heartbeatd at",
        f"{FILE}: monitors: none configured, so heartbeatd would watch nothing",
    ]


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, False)])
def test_it_warns_about_inline_secrets_in_a_file_others_can_read(mode: int, warned: bool) -> None:
    Path("api-token").write_text("t0ken")
    path = write(
        """
        [server]
        api_token_file = "api-token"
        [smtp]
        host = "smtp.example.com"
        from = "hb@example.com"
        username = "hb"
        password = "hunter2"
        [channels.ops]
        type = "email"
        to = "ops@example.com"
        url = "https://example.com/hook/t0ken"
        [monitors.a]
        period = "1d"
        """,
        mode=mode,
    )
    expected = [
        f"{FILE}: holds secrets inline (smtp.password, channels.ops.url) and other users"
        " can read it: chmod o-r the file, or move them to *_file keys"
    ]
    assert check_warnings(load_config(path)) == (expected if warned else [])


RESERVED = ("start", "fail", "log")


def follows_slug_rules(slug: str) -> bool:
    return (
        re.fullmatch(r"[a-z0-9_-]{1,64}", slug) is not None
        and slug not in RESERVED
        and not slug.isdigit()
        and re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", slug) is None
    )


slugs = (
    st.text(alphabet="abcxyz0189_-A .é/", max_size=70)
    | st.sampled_from(RESERVED)
    | st.uuids().map(str)
    | st.integers(min_value=0).map(str)
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slugs)
def test_a_slug_is_accepted_iff_it_follows_the_rules(slug: str) -> None:
    data: dict[str, Any] = {"monitors": {slug: {"period": "1d"}}}
    try:
        config = parse_config(data, Path(FILE))
    except ConfigError as exc:
        assert not follows_slug_rules(slug), exc.problems
        assert name_problem(slug) is not None
    else:
        assert follows_slug_rules(slug)
        assert list(config.monitors) == [slug]


def test_it_loads_the_design_example_with_the_real_channel_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sections, "CHANNEL_TYPES", CHANNEL_TYPES)
    if not {"email", "webhook"} <= set(CHANNEL_TYPES):
        pytest.skip("the email and webhook channel types are not registered")
    (tmp_path / "smtp-password").write_text("hunter2\n")
    config = load(
        f"""
        [server]
        listen = "127.0.0.1:8080"
        base_url = "https://hb.example.com"
        ping_key = "abcdefgh12"

        [storage]
        path = "heartbeatd.db"
        ping_history = 100
        max_body = 10240

        [defaults]
        grace = "5m"
        timezone = "UTC"
        channels = ["ops"]

        [smtp]
        host = "smtp.example.com"
        port = 587
        starttls = true
        username = "alerts@example.com"
        password_file = "{tmp_path}/smtp-password"
        from = "heartbeatd <alerts@example.com>"

        [channels.ops]
        type = "email"
        to = ["ops@example.com"]

        [channels.hook]
        type = "webhook"
        url = "https://example.com/hook"

        [monitors.nightly-backup]
        name = "Nightly Postgres backup"
        schedule = "0 2 * * *"
        timezone = "Europe/Riga"
        grace = "30m"
        max_runtime = "2h"
        channels = ["ops", "hook"]
        uuid = "{UUID}"
        """
    )
    assert set(config.channels) == {"ops", "hook"}
    assert config.monitors["nightly-backup"].channels == ("ops", "hook")


def test_a_reload_reuses_the_running_configs_unchanged_monitors() -> None:
    first = load(
        """
        [monitors.a]
        period = "1h"
        [monitors.b]
        period = "1h"
        """
    )
    path = write(
        """
        [monitors.a]
        period = "1h"
        [monitors.b]
        period = "2h"
        """
    )
    second = load_config(path, previous=first)
    assert second.monitors["a"] is first.monitors["a"]
    assert second.monitors["b"] is not first.monitors["b"]
    assert second.monitors["b"].schedule == Schedule(period=7200)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.write_bytes(b"x" * (64 * 1024 + 1)), "larger than 64 KiB"),
    ],
    ids=["fifo", "too-big"],
)
def test_a_secret_file_must_be_a_small_regular_file(tmp_path: Path, make, reason) -> None:
    secret = tmp_path / "api-token"
    make(secret)
    assert problems(f'[server]\napi_token_file = "{secret}"\n') == [
        f'{FILE}: server.api_token_file: cannot read "{secret}": {reason}'
    ]


def test_dev_zero_is_not_a_secret_file() -> None:
    assert problems('[server]\napi_token_file = "/dev/zero"\n') == [
        f'{FILE}: server.api_token_file: cannot read "/dev/zero": not a regular file'
    ]


# -- hostile files -------------------------------------------------------------------
#
# Whatever a file holds, loading it ends in a Config or a ConfigError whose
# problems are one line each and name the file: never a RecursionError from
# the TOML parser, nor a ValueError from int() on a 5,000-digit number.

DEEP = 600
DIGITS = "9" * 5000
HEX = "0x" + "f" * 5000
# How a message starts a long value: its first 40 characters.
NINES = "9" * 40


def one_line_problems(path: Path | str) -> list[str]:
    """The loader's problems, each checked to be one line that names the file."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    found = caught.value.problems
    assert found, "a ConfigError without a problem"
    for line in found:
        assert len(line.splitlines()) == 1, line
        assert line.startswith(f"{path}: "), line
    return found


HOSTILE = [
    pytest.param(
        '[monitors.a]\nperiod = "1h"\nname = ' + "[" * DEEP + "]" * DEEP + "\n",
        ["invalid TOML: arrays or inline tables nested too deeply (at line 3)"],
        id="nested-arrays",
    ),
    pytest.param(
        "[monitors.a]\nperiod = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n",
        ["invalid TOML: arrays or inline tables nested too deeply (at line 2)"],
        id="nested-inline-tables",
    ),
    pytest.param(
        '[monitors.a]\nname = "a # [[["\nperiod = ' + "[{a = " * DEEP + "}]" * DEEP + "\n",
        ["invalid TOML: arrays or inline tables nested too deeply (at line 3)"],
        id="nested-mixed",
    ),
    pytest.param(
        f"[monitors.a]\nperiod = {DIGITS}\n",
        ["invalid TOML: a whole number of 5000 digits (at line 2); TOML integers fit in 64 bits"],
        id="huge-integer",
    ),
    pytest.param(
        f"[storage]\nping_history = {HEX}\n",
        [
            "storage.ping_history: expected a whole number that fits in 64 bits,"
            " got a number of 20000 bits"
        ],
        id="huge-hex-integer",
    ),
    pytest.param(
        f'[alerts]\nsend_timeout = {HEX}\n[channels.ops]\ntype = "log"\nlevel = [1, -{2**70}]\n',
        [
            "alerts.send_timeout: expected a whole number that fits in 64 bits,"
            " got a number of 20000 bits",
            "channels.ops.level[1]: expected a whole number that fits in 64 bits,"
            " got a number of 71 bits",
        ],
        id="huge-integers-anywhere",
    ),
    pytest.param(
        f"[monitors.a]\nperiod = {HEX}\n",
        ["monitors.a.period: must be at most 10 years, got a number of 20000 bits"],
        id="huge-hex-duration",
    ),
    pytest.param(
        f'[monitors.a]\nperiod = "1h"\nrepeat = "1h"\nrepeat_limit = {2**64}\n',
        [
            "monitors.a.repeat_limit: expected a whole number that fits in 64 bits,"
            " got a number of 65 bits"
        ],
        id="huge-repeat-limit",
    ),
    pytest.param(
        f'[monitors.a]\nperiod = "{DIGITS}s"\n',
        [f'monitors.a.period: must be at most 10 years, got "{NINES}…" (5001 chars)'],
        id="huge-duration",
    ),
    pytest.param(
        f'[defaults]\nrepeat = "1w{DIGITS}d"\n',
        [f'defaults.repeat: must be at most 10 years, got "1w{NINES[2:]}…" (5003 chars)'],
        id="huge-duration-in-defaults",
    ),
    pytest.param(
        f'[monitors.a]\nschedule = "{DIGITS} * * * *"\n',
        [f'monitors.a.schedule: bad minute in cron expression "{NINES}…" (5008 chars)'],
        id="huge-cron-field",
    ),
    pytest.param(
        f'[server]\nlisten = "127.0.0.1:{DIGITS}"\n',
        [
            f'server.listen: expected a port from 1 to 65535, got "127.0.0.1:{NINES[10:]}…"'
            " (5010 chars)"
        ],
        id="huge-port",
    ),
    pytest.param(
        '[server]\nlisten = "127.0.0.1:²"\n',
        ['server.listen: expected a port from 1 to 65535, got "127.0.0.1:²"'],
        id="unicode-digit-port",
    ),
    pytest.param(
        '[monitors.a]\nperiod = "1h"\ngrace = "5\\nmin\\u0000"\n',
        [f'monitors.a.grace: {HINT}, got "5\\nmin\\u0000"'],
        id="control-characters",
    ),
    pytest.param(
        '[monitors.a]\nperiod = "1h"\nname = [[[1, 2], "x"], 2, 3, 4, 5, 6]\n',
        ['monitors.a.name: expected a string, got [[[…], "x"], 2, 3, 4, 5, …]'],
        id="nested-value-shown-short",
    ),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_a_hostile_file_is_a_config_error_naming_the_key(text: str, expected: list[str]) -> None:
    path = Path(FILE)
    path.write_text(text, encoding="utf-8")
    assert one_line_problems(path) == [f"{FILE}: {line}" for line in expected]


def test_an_endless_file_is_refused_without_reading_it_all() -> None:
    assert one_line_problems("/dev/zero") == [
        "/dev/zero: larger than 64 MiB: not a config file heartbeatd can load"
    ]


def test_a_directory_or_a_nul_in_the_path_is_a_config_error(tmp_path: Path) -> None:
    assert one_line_problems(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]
    assert one_line_problems("a\x00b.toml") == ["a\x00b.toml: cannot read: embedded null byte"]


def test_an_unexpected_error_while_loading_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A bug in a reader must not escape as a traceback (or end a reload).
    def broken(*args: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(sections, "read_storage", broken)
    assert one_line_problems(write("[monitors.a]\nperiod = 60\n")) == [
        f"{FILE}: cannot load: unexpected KeyError: 'boom' (a bug in heartbeatd; please report it)"
    ]


VALID = {
    "server": {"listen": '"127.0.0.1:8080"', "reload_max_removed": '"50%"'},
    "storage": {"path": '"hb.db"', "ping_history": "100", "max_body": "10240"},
    "alerts": {"send_timeout": '"30s"', "give_up_after": '"1d"'},
    "defaults": {"grace": '"5m"', "timezone": '"UTC"', "repeat_limit": "3", "repeat": '"1h"'},
    "channels.ops": {"type": '"log"', "level": '"error"'},
    "monitors.backup": {"period": '"1h"', "grace": '"5m"', "name": '"Backup"'},
    "monitors.cron": {"schedule": '"0 2 * * *"', "timezone": '"Europe/Riga"', "repeat": "false"},
}
SLOTS = [(table, key) for table, keys in VALID.items() for key in keys] + [
    ("monitors.backup", "typo"),
    ("", "typo"),
]


def nested(depth: int, kind: str) -> str:
    openers = {"[": ["["], "{": ["{a = "], "mixed": ["[", "{a = "]}[kind]
    opened = [openers[i % len(openers)] for i in range(depth)]
    closers = ["]" if o == "[" else "}" for o in reversed(opened)]
    return "".join(opened) + "1" + "".join(closers)


# Values no key may hold: TOML too deep for the parser, or numbers too big for
# TOML's 64-bit integers, written in every way TOML allows.
ALWAYS_WRONG = st.one_of(
    st.builds(nested, st.integers(500, 3000), st.sampled_from(["[", "{", "mixed"])),
    st.integers(4301, 6000).map(lambda n: "9" * n),
    st.integers(4301, 6000).map(lambda n: "-" + "1_" * (n // 2) + "1"),
    st.integers(2**63, 10**4000).map(str),
    st.integers(64, 40000).map(lambda bits: "0x" + "f" * (bits // 4)),
    st.integers(64, 20000).map(lambda bits: "0b1" + "0" * bits),
    st.integers(22, 9000).map(lambda n: "0o" + "7" * n),
)
# Values that may be right somewhere, wrong elsewhere, and huge.
ODD = st.one_of(
    st.integers(13, 6000).map(lambda n: f'"{"9" * n}s"'),
    st.integers(13, 6000).map(lambda n: f'"1h{"0" * n}1m"'),
    st.sampled_from(["1e99999", "-1e400", "nan", "inf", "9" * 5000 + ".5", "1979-05-27"]),
    st.sampled_from(['"a\\nb\\u0000c"', '"\\u2028"', '"' + "x" * 100_000 + '"']),
    st.integers(1, 6000).map(lambda n: f'"{"9" * n} * * * *"'),
    st.integers(1, 6000).map(lambda n: f'"127.0.0.1:{"9" * n}"'),
)


def render(slot: tuple[str, str], value: str) -> str:
    lines = []
    if slot[0] == "":
        lines.append(f"{slot[1]} = {value}")
    for table, keys in VALID.items():
        lines.append(f"[{table}]")
        for key, literal in keys.items():
            lines.append(f"{key} = {value if (table, key) == slot else literal}")
        if slot == (table, "typo"):
            lines.append(f"typo = {value}")
    return "\n".join(lines) + "\n"


HOSTILE_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_the_hostile_template_loads_as_it_is() -> None:
    # Guards the tests below against a template that is refused anyway.
    path = write(render(("nowhere", "nothing"), "1"))
    assert set(load_config(path).monitors) == {"backup", "cron"}


@HOSTILE_SETTINGS
@given(slot=st.sampled_from(SLOTS), value=ALWAYS_WRONG)
def test_a_value_too_deep_or_too_big_anywhere_is_a_one_line_config_error(
    slot: tuple[str, str], value: str
) -> None:
    one_line_problems(write(render(slot, value)))


@HOSTILE_SETTINGS
@given(slot=st.sampled_from(SLOTS), value=ODD)
def test_an_odd_value_anywhere_loads_or_is_a_one_line_config_error(
    slot: tuple[str, str], value: str
) -> None:
    path = write(render(slot, value))
    try:
        load_config(path)
    except ConfigError:
        one_line_problems(path)


@HOSTILE_SETTINGS
@given(cut=st.integers(0, 10_000))
def test_a_file_cut_short_anywhere_loads_or_is_a_one_line_config_error(cut: int) -> None:
    text = render(("monitors.backup", "name"), nested(800, "mixed"))
    path = write(text[: cut % (len(text) + 1)])
    try:
        load_config(path)
    except ConfigError:
        one_line_problems(path)


# -- a safe reload -------------------------------------------------------------------


def watching(*slugs: str, server: str = "") -> Config:
    """A config watching `slugs`, written to the file a reload reads."""
    monitors = "".join(f'[monitors.{slug}]\nperiod = "1h"\n' for slug in slugs)
    return load_config(write(f"[server]\n{server}\n{monitors}"))


@pytest.mark.parametrize(
    ("value", "percent"),
    [('"50%"', 50), ('"0%"', 0), ('"100%"', 100), ('"7%"', 7)],
)
def test_it_reads_reload_max_removed_as_a_percentage(value: str, percent: int) -> None:
    assert watching(server=f"reload_max_removed = {value}").server.reload_max_removed == percent


def test_reload_max_removed_defaults_to_half() -> None:
    assert watching("a").server.reload_max_removed == 50


@pytest.mark.parametrize("value", ['"101%"', '"50"', "50", "0.5", '"-1%"', '"50 %"', '""'])
def test_it_refuses_a_reload_max_removed_that_is_not_a_percentage(value: str) -> None:
    assert problems(f"[server]\nreload_max_removed = {value}\n") == [
        f'{FILE}: server.reload_max_removed: expected a percentage from "0%" to "100%"'
        f' like "50%", got {value}'
    ]


FORCE = "`heartbeatd reload --force` applies it anyway"


@pytest.mark.parametrize(
    ("before", "after", "server", "problem"),
    [
        (("a", "b", "c"), ("a", "b"), "", None),
        (("a", "b"), ("a",), "", None),
        (("a", "b", "c"), ("a", "b", "c", "d"), "", None),
        (("a", "b", "c"), ("x", "y", "z"), 'reload_max_removed = "100%"', None),
        ((), (), "", None),
        (
            ("a", "b", "c"),
            ("a",),
            "",
            'the reload would remove 2 of 3 monitors; [server] reload_max_removed = "50%"'
            f" allows 1; {FORCE}",
        ),
        (
            ("a", "b", "c", "d"),
            ("a", "b", "c"),
            'reload_max_removed = "0%"',
            'the reload would remove 1 of 4 monitors; [server] reload_max_removed = "0%"'
            f" allows 0; {FORCE}",
        ),
        (
            ("a",),
            (),
            "",
            "none in the file, so the reload would remove the only monitor (a file cut short?);"
            f" {FORCE}",
        ),
        (
            ("a", "b", "c"),
            (),
            'reload_max_removed = "100%"',
            "none in the file, so the reload would remove all 3 monitors (a file cut short?);"
            f" {FORCE}",
        ),
    ],
    ids=[
        "1-of-3",
        "1-of-2",
        "added",
        "all-renamed-at-100%",
        "nothing-to-remove",
        "2-of-3",
        "1-of-4-at-0%",
        "the-only-one",
        "all-at-100%",
    ],
)
def test_a_reload_may_remove_only_so_many_monitors(
    before: tuple[str, ...], after: tuple[str, ...], server: str, problem: str | None
) -> None:
    # The running config's limit applies; the new file's own is left at the default.
    running = watching(*before, server=server)
    new = watching(*after)
    expected = None if problem is None else f"{FILE}: monitors: {problem}"
    assert reload_problem(running, new) == expected


def test_the_new_files_limit_does_not_loosen_its_own_reload() -> None:
    running = watching("a", "b", "c", "d")
    new = watching("a", server='reload_max_removed = "100%"')
    assert reload_problem(running, new) == (
        f"{FILE}: monitors: the reload would remove 3 of 4 monitors; [server] reload_max_removed"
        f' = "50%" allows 2; {FORCE}'
    )


@pytest.mark.parametrize(
    ("text", "database"),
    [
        ('[storage]\npath = "state/hb.db"\n[monitors.a]\nperiod = "1h"\n', "state/hb.db"),
        # The monitors are skipped, errors and all: only [storage] matters here.
        ('[monitors.a]\nperiod = 5 min\n[storage]\npath = "/var/lib/hb.db"\n', "/var/lib/hb.db"),
        ('[monitors.a]\nperiod = "1h"\n', "heartbeatd.db"),
        ("", "heartbeatd.db"),
        ('storage.path = "x.db"\n', "x.db"),
        ("[storage]\npath = ", None),
        ('[storage]\npath = ""\n', None),
        ("[storage]\npath = " + "[" * 600 + "]" * 600 + "\n", None),
    ],
    ids=["storage", "after-broken-monitors", "default", "empty", "dotted", "cut", "blank", "deep"],
)
def test_it_finds_the_database_of_a_file_that_may_not_load(
    tmp_path: Path, text: str, database: str | None
) -> None:
    path = write(text)
    assert find_database(path) == (None if database is None else tmp_path / database)


def test_under_systemd_a_relative_storage_path_is_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # StateDirectory=heartbeatd: systemd sets it; the config dir is read-only there.
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/heartbeatd:/var/lib/other")
    assert load('[storage]\npath = "heartbeatd.db"\n').storage.path == Path(
        "/var/lib/heartbeatd/heartbeatd.db"
    )
    assert load("").storage.path == Path("/var/lib/heartbeatd/heartbeatd.db")
    absolute = load(f'[storage]\npath = "{tmp_path}/hb.db"\n')
    assert absolute.storage.path == tmp_path / "hb.db"
    monkeypatch.setenv("STATE_DIRECTORY", "")
    assert load("").storage.path == tmp_path / "heartbeatd.db"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[server]\nping_key = 8675309123\n", "server.ping_key"),
        ('[server]\nping_key = ["8675309123"]\n', "server.ping_key"),
        (
            '[smtp]\nhost = "h"\nfrom = "a@b.c"\nusername = "u"\npassword = 8675309123\n',
            "smtp.password",
        ),
    ],
    ids=["number", "list", "smtp-password"],
)
def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path, text: str, where: str) -> None:
    # Errors go to the journal, to `systemctl reload` and to the reload
    # status file: a PIN typed without quotes must not land there.
    path = tmp_path / "hb.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = "\n".join(caught.value.problems)
    assert "8675309123" not in problems
    assert f"{path}: {where}: expected a string, got " in problems
