"""`heartbeatd import timers`: units of the kinds Debian ships, an admin's
drop-in, hostile files; the TOML loads, and the drop-in reports for real."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from heartbeatd.cli import main
from heartbeatd.importers.timers import Settings, dropin, import_timers
from heartbeatd.importers.units import parse_timespan
from tests.import_helpers import (
    FIXTURES,
    load_printed,
    ping_log,
    tomllib,
)

__all__ = ["ping_log"]

ROOT = FIXTURES / "units-root"
BOOT_ONLY = "no OnCalendar= or OnUnitActiveSec=: it fires only after boot or start"
SETTINGS = Settings(timezone="Europe/Berlin")


def copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(ROOT, root, symlinks=True)
    return root


def test_it_imports_the_timers_debian_ships():
    result = import_timers(ROOT, SETTINGS)

    got = {d.slug: (d.name, d.oncalendar, d.period, d.timezone, d.grace) for d in result.monitors}
    assert got == {
        # The admin's drop-in replaced the packaged 6,18:00.
        "apt-daily": (
            "Daily apt download activities",
            ("*-*-* 03:00",),
            None,
            "Europe/Berlin",
            13 * 3600,
        ),
        "certbot": (
            "Run certbot twice daily",
            ("*-*-* 00,12:00:00",),
            None,
            "Europe/Berlin",
            13 * 3600,
        ),
        "e2scrub_all": (
            "Periodic ext4 Online Metadata Check for All Filesystems",
            ("Sun *-*-* 03:10:00",),
            None,
            "Europe/Berlin",
            3600 + 60,
        ),
        # AccuracySec=1h: systemd may start it up to an hour late too.
        "logrotate": ("Daily rotation of log files", ("daily",), None, "Europe/Berlin", 2 * 3600),
        "odd-job": (
            "Odd job",
            ("Mon..Fri *-*-* 09:00:00", "Sat *-*-* 12:00:00"),
            None,
            "Europe/Berlin",
            3600 + 5400,
        ),
        # Enabled by its package (a link under /lib), on a period after each run.
        "systemd-tmpfiles-clean": ("Daily Cleanup of Temporary Directories", (), 86400, None, None),
    }
    assert [line for line in result.toml.split("\n") if line.startswith("# skipped")] == [
        f"# skipped boot-only.timer: {BOOT_ONLY}",
        "# skipped fstrim.timer: not enabled (--all imports it too)",
        "# skipped pg_dump@.timer: a template; its instances are not listed here",
    ]
    assert [d.service for d in result.dropins] == [
        "apt-daily.service",
        "certbot.service",
        "e2scrub_all.service",
        "logrotate.service",
        "odd-worker.service",
        "systemd-tmpfiles-clean.service",
    ]
    assert result.dropins[4].path == "/etc/systemd/system/odd-worker.service.d/heartbeatd.conf"


def test_all_imports_timers_that_are_not_enabled():
    result = import_timers(ROOT, Settings(include_disabled=True, slug_prefix="h1-"))

    assert "h1-fstrim" in [d.slug for d in result.monitors]


def test_the_printed_toml_parses_and_loads(tmp_path):
    result = import_timers(ROOT, SETTINGS)

    data = tomllib.loads(result.toml)
    assert set(data["monitors"]) == {d.slug for d in result.monitors}
    config = load_printed(result.toml, tmp_path)
    assert list(config.monitors) == [d.slug for d in result.monitors]


def test_a_timer_on_a_period_loads_today(tmp_path):
    result = import_timers(ROOT, SETTINGS)
    toml = "\n".join(
        part for part in result.toml.split("\n\n") if "systemd-tmpfiles-clean]" in part
    )

    config = load_printed(toml, tmp_path)

    assert config.monitors["systemd-tmpfiles-clean"].schedule.describe() == "every 1d"


def test_it_survives_hostile_unit_files(tmp_path):
    root = copy_root(tmp_path)
    units = root / "etc/systemd/system"
    wants = units / "timers.target.wants"
    files = {
        "nul.timer": b"[Timer]\nOnCalendar=daily\x00\n",
        "latin1.timer": b"[Timer]\nOnCalendar=daily\n# \xe9t\xe9\n",
        "huge.timer": b"[Timer]\nOnCalendar=daily\n" + b"#" * (2 << 20),
        "empty.timer": b"",
        "garbage.timer": b"\xff\xfe garbage ]]] [[[ = = =\n[Timer\nOnCalendar\n",
        "quotes.timer": (
            b'[Unit]\nDescription=say "hi" \\ # [monitors.x]\n'
            b"[Timer]\nOnUnitActiveSec=90 min\nRandomizedDelaySec=forever\n"
        ),
        "badspan.timer": b"[Timer]\nOnUnitActiveSec=soon\n",
        "longline.timer": b"[Timer]\nOnCalendar=" + b"*" * 100_000 + b"\n",
    }
    for name, data in files.items():
        (units / name).write_bytes(data)
        (wants / name).symlink_to(units / name)
    (units / "masked.timer").symlink_to("/dev/null")
    (wants / "masked.timer").symlink_to(units / "masked.timer")

    result = import_timers(root, SETTINGS)

    skipped = sorted(line for line in result.toml.split("\n") if line.startswith("# skipped"))
    assert skipped == [
        f"# skipped badspan.timer: {BOOT_ONLY}",
        f"# skipped boot-only.timer: {BOOT_ONLY}",
        "# skipped empty.timer: it is empty (masked)",
        "# skipped fstrim.timer: not enabled (--all imports it too)",
        "# skipped garbage.timer: it is not UTF-8 text",
        "# skipped huge.timer: it is larger than 1 MiB",
        "# skipped latin1.timer: it is not UTF-8 text",
        "# skipped masked.timer: it is masked",
        "# skipped nul.timer: it is not text",
        "# skipped pg_dump@.timer: a template; its instances are not listed here",
    ]
    quotes = next(d for d in result.monitors if d.slug == "quotes")
    assert (quotes.period, quotes.grace) == (5400, None)
    data = tomllib.loads(result.toml)
    assert data["monitors"]["quotes"]["name"] == 'say "hi" \\ # [monitors.x]'
    # A schedule systemd would refuse is passed on for the config check to refuse.
    assert data["monitors"]["longline"]["oncalendar"] == "*" * 100_000


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("12h", 43200),
        ("60", 60),
        ("1h 30min", 5400),
        ("1.5d", 129600),
        ("6000", 6000),
        ("2w", 1209600),
        ("500ms", 1),
        ("1month", 2629800),
    ],
)
def test_it_reads_systemd_time_spans(text, seconds):
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "1e999h", "-5s", "h"])
def test_it_refuses_what_is_no_time_span(text):
    with pytest.raises(ValueError):
        parse_timespan(text)


def test_the_command_prints_toml_the_drop_ins_and_reads_the_roots_zone(tmp_path):
    runner = CliRunner()
    full = runner.invoke(main, ["import", "timers", "--root", str(ROOT)])
    toml = runner.invoke(main, ["import", "timers", "--root", str(ROOT), "--only", "toml"])
    dropins = runner.invoke(
        main,
        [
            "import",
            "timers",
            "--root",
            str(ROOT),
            "--only",
            "dropins",
            "--server",
            "https://hb.example.com",
            "--ping-key",
            "k3y",
        ],
    )

    assert full.exit_code == toml.exit_code == dropins.exit_code == 0
    assert tomllib.loads(full.output) == tomllib.loads(toml.output)
    assert "# ==> /etc/systemd/system/apt-daily.service.d/heartbeatd.conf <==" in full.output
    assert "==>" not in toml.output
    assert tomllib.loads(toml.output)["monitors"]["logrotate"]["timezone"] == "Europe/Berlin"
    assert dropins.output.startswith(
        "# ==> /etc/systemd/system/apt-daily.service.d/heartbeatd.conf <==\n"
        "# Reports each run of apt-daily.service to heartbeatd (monitor apt-daily).\n"
        "[Service]\n"
        "ExecStartPre=-/usr/bin/curl -fsS -m 10 --retry 3 -o /dev/null"
        " https://hb.example.com/ping/k3y/apt-daily/start\n"
    )


def test_heartbeatd_check_accepts_the_printed_toml(tmp_path):
    printed = CliRunner().invoke(main, ["import", "timers", "--root", str(ROOT)])
    config = tmp_path / "heartbeatd.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "hb.db"}"\n\n' + printed.output)

    checked = CliRunner().invoke(main, ["check", "-c", str(config)])

    assert checked.exit_code == 0, checked.output
    assert "OK, 6 monitors" in checked.output


@pytest.mark.skipif(
    not Path("/lib/systemd/system").is_dir(), reason="no systemd units on this machine"
)
def test_it_imports_this_machines_timers(tmp_path):
    printed = CliRunner().invoke(main, ["import", "timers", "--all"])

    assert printed.exit_code == 0, printed.output
    data = tomllib.loads(printed.output)
    timers = {
        p.name
        for d in ("/etc/systemd/system", "/lib/systemd/system")
        for p in Path(d).glob("*.timer")
    }
    # Each timer is a monitor or a line saying why not.
    for name in timers:
        slug = name.removesuffix(".timer")
        assert slug in data.get("monitors", {}) or f"# skipped {name}:" in printed.output
    load_printed(printed.output, tmp_path)


# -- the drop-in, run the way systemd runs it, with real curl against a real server --


def systemd_argv(line: str) -> list[str]:
    """An Exec*= value as systemd runs it: without the `-` prefix, with $$
    and %% unescaped, split into words."""
    value = line.split("=", 1)[1].removeprefix("-")
    return shlex.split(value.replace("$$", "$").replace("%%", "%"))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    "result, code, status, action",
    [
        ("success", "exited", "0", "0"),
        ("exit-code", "exited", "3", "3"),
        ("signal", "killed", "TERM", "fail"),
        ("timeout", "exited", "0", "fail"),
        ("core-dump", "dumped", "SEGV", "fail"),
    ],
)
async def test_the_drop_in_reports_start_and_how_the_service_ended(
    ping_log, result, code, status, action
):
    text = dropin("backup.service", "backup", Settings(server=ping_log.url)).text
    lines = dict(line.split("=", 1) for line in text.split("\n") if line.startswith("Exec"))
    env = {
        **os.environ,
        "SERVICE_RESULT": result,
        "EXIT_CODE": code,
        "EXIT_STATUS": status,
    }

    for key in ("ExecStartPre", "ExecStopPost"):
        proc = await asyncio.create_subprocess_exec(*systemd_argv(f"{key}={lines[key]}"), env=env)
        assert await asyncio.wait_for(proc.wait(), 30) == 0

    assert ping_log.pings == [
        ("backup", "start", ""),
        ("backup", action, f"service_result={result} exit_code={code} exit_status={status}"),
    ]
