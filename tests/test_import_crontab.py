"""`heartbeatd import crontab`: Debian's crontabs, a user's, hostile ones;
the TOML it prints loads, and the crontab it prints runs the same jobs."""

from __future__ import annotations

import asyncio
import glob
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeatd.cli import main
from heartbeatd.importers.crontab import (
    Settings,
    import_crontab,
    name_words,
    split_stdin,
    wrap_command,
)
from heartbeatd.importers.render import Slugs, toml_string
from tests.import_helpers import FIXTURES, load_printed, ping_log, tomllib

__all__ = ["ping_log"]

CRONTABS = FIXTURES / "crontabs"
REPO = FIXTURES.parent.parent
SYSTEM = Settings(timezone="Europe/Berlin", system=True, program="/usr/bin/heartbeatd")
USER = Settings(timezone="Europe/Berlin", program="/usr/bin/heartbeatd")


def read(name: str) -> str:
    return (CRONTABS / name).read_text()


def test_it_imports_debians_system_crontab(tmp_path):
    result = import_crontab(read("etc-crontab"), "/etc/crontab", SYSTEM)

    assert [(d.slug, d.schedule, d.timezone) for d in result.monitors] == [
        ("run-parts-cron-hourly", "17 * * * *", "Europe/Berlin"),
        ("run-parts-cron-daily", "25 6 * * *", "Europe/Berlin"),
        ("run-parts-cron-weekly", "47 6 * * 7", "Europe/Berlin"),
        ("run-parts-cron-monthly", "52 6 1 * *", "Europe/Berlin"),
    ]
    lines = result.crontab.split("\n")
    assert lines[:2] == [
        "# Rewritten by heartbeatd import crontab: each job reports to heartbeatd.",
        "HEARTBEATD_SERVER=http://127.0.0.1:8080",
    ]
    assert (
        "17 *\t* * *\troot\t/usr/bin/heartbeatd exec run-parts-cron-hourly --"
        " /bin/sh -c 'cd / && run-parts --report /etc/cron.hourly'" in lines
    )
    # Comments, blank lines and SHELL= pass through as they were.
    original = read("etc-crontab").split("\n")
    kept = [line for line in original if not line[:1].isdigit()]
    assert [line for line in lines[2:] if not line[:1].isdigit()] == kept
    config = load_printed(result.toml, tmp_path)
    assert list(config.monitors) == [d.slug for d in result.monitors]
    monitor = config.monitors["run-parts-cron-daily"]
    assert monitor.description == "/etc/crontab line 10, runs as root"


@pytest.mark.parametrize(
    "name, slugs",
    [
        ("cron.d-certbot", ["certbot-renew"]),
        ("cron.d-e2scrub_all", ["e2scrub_all_cron", "e2scrub_all"]),
    ],
)
def test_it_imports_cron_d_files_debian_packages_ship(tmp_path, name, slugs):
    result = import_crontab(read(name), f"/etc/cron.d/{name[7:]}", SYSTEM)

    assert [d.slug for d in result.monitors] == slugs
    assert list(load_printed(result.toml, tmp_path).monitors) == slugs


def test_it_imports_a_users_crontab(tmp_path):
    result = import_crontab(read("user-crontab"), "crontab", USER)

    assert [(d.slug, d.schedule, d.timezone) for d in result.monitors] == [
        ("pg_dump-app", "30 2 * * *", "Europe/Riga"),
        ("sync-mirror", "0 * * * *", "Europe/Riga"),
        ("sync-mirror-2", "0 0 * * *", "Europe/Riga"),
        ("php-artisan", "*/5 9-17 * * mon-fri", "Europe/Riga"),
        # CRON_TZ decides the schedule's zone; TZ= after it does not.
        ("invoice-run", "0 0 1 * *", "Europe/Riga"),
        ("mail", "15 8 * * 1", "Europe/Riga"),
    ]
    assert "# skipped crontab line 10: @reboot runs once at boot, not on a schedule" in (
        result.toml
    )
    assert "@reboot /usr/local/bin/start-tunnel" in result.crontab.split("\n")
    # SHELL=/bin/bash is what cron runs these lines with, so the wrap uses it too.
    assert (
        "30 2 * * * /usr/bin/heartbeatd exec pg_dump-app -- /bin/bash -c"
        " 'pg_dump -Fc app > /var/backups/app-$(date +\\%F).dump'" in result.crontab
    )
    assert (
        "15 8 * * 1 /usr/bin/heartbeatd exec mail -- /bin/bash -c"
        " 'mail -s \"weekly report\" boss@example.com'%Hello,%the report is attached.%"
        in result.crontab
    )
    config = load_printed(result.toml, tmp_path)
    assert (
        config.monitors["pg_dump-app"].name == "pg_dump -Fc app > /var/backups/app-$(date +%F).dump"
    )


def test_tz_sets_the_zone_when_cron_tz_does_not(tmp_path):
    result = import_crontab("TZ=Asia/Tokyo\n0 1 * * * backup\n", "crontab", USER)

    assert [d.timezone for d in result.monitors] == ["Asia/Tokyo"]


def test_an_unknown_zone_keeps_the_machines_and_says_so(tmp_path):
    result = import_crontab("CRON_TZ=Mars/Olympus\n0 1 * * * backup\n", "crontab", USER)

    assert [d.timezone for d in result.monitors] == ["Europe/Berlin"]
    assert '# "Mars/Olympus" is not a time zone heartbeatd knows; using Europe/Berlin' in (
        result.toml
    )
    load_printed(result.toml, tmp_path)


HOSTILE = "\n".join(
    [
        "0 1 * * * " + "x" * 100_000,
        "0 2 * * * echo nul\x00here",
        "0 3 * * * echo bad\ufffdbytes",
        "this is not a crontab line",
        "0 0 * *",
        "61 * * * * echo minute-61",
        "0 0 31 2 * echo never",
        "@every 5m echo nope",
        "0 0 * * * * /usr/bin/six-fields",
        "   ",
        "0 4 * * *   ",
        "0 5 * * * heartbeatd exec backup -- /usr/bin/backup",
        "0 6 * * * echo 'unbalanced",
        '0 7 * * * echo "[monitors.x]" # """ \\" \\\\',
        "0 8 * * * echo start",
        "0 9 * * * echo start",
        "0 10 * * * 12345",
        "0 11 * * * ''",
        "PATH = /usr/bin:/bin",
        "0 12 * * * echo crlf\r",
    ]
)


def test_it_survives_a_hostile_crontab_and_prints_toml_that_loads(tmp_path):
    result = import_crontab(HOSTILE, "hostile", USER)

    config = load_printed(result.toml, tmp_path)
    assert list(config.monitors) == [d.slug for d in result.monitors]
    assert [(d.slug, d.schedule) for d in result.monitors] == [
        # The 6th field of a 5-field crontab is the command's first word.
        ("cron", "0 0 * * *"),
        ("echo", "0 6 * * *"),
        ("echo-2", "0 7 * * *"),
        ("echo-start", "0 8 * * *"),
        ("echo-start-2", "0 9 * * *"),
        ("12345-2", "0 10 * * *"),
        ("cron-2", "0 11 * * *"),
        ("echo-crlf", "0 12 * * *"),
    ]
    skipped = [line for line in result.toml.split("\n") if line.startswith("# skipped")]
    assert skipped == [
        "# skipped hostile line 1: it is too long",
        "# skipped hostile line 2: it is not text",
        "# skipped hostile line 3: it is not text",
        '# skipped hostile line 4: bad minute in cron expression "this is not a crontab"',
        "# skipped hostile line 5: not a job line (five time fields and a command)",
        '# skipped hostile line 6: bad minute in cron expression "61 * * * *"',
        '# skipped hostile line 7: bad day-of-month in cron expression "0 0 31 2 *"',
        '# skipped hostile line 8: unknown schedule "@every"',
        "# skipped hostile line 11: no command",
        "# skipped hostile line 12: already wrapped in heartbeatd exec",
    ]
    # Every line it does not wrap is printed as it was.
    out = result.crontab.split("\n")
    for line in HOSTILE.split("\n"):
        if line.startswith(("0 1 ", "0 2 ", "0 3 ", "this", "61 ", "@every", "0 5 ", "PATH")):
            assert line in out


def test_the_command_prints_toml_and_the_crontab_as_comments(tmp_path):
    path = tmp_path / "crontab"
    path.write_bytes(b"MAILTO=root\n0 1 * * * /usr/bin/backup --all\n0 2 * * * echo \xff\x00\n")

    result = CliRunner().invoke(
        main,
        ["import", "crontab", str(path), "--timezone", "UTC", "--heartbeatd", "heartbeatd"],
    )

    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.output)
    assert data["monitors"] == {
        "backup": {
            "name": "/usr/bin/backup --all",
            "description": f"{path} line 2",
            "schedule": "0 1 * * *",
            "timezone": "UTC",
        }
    }
    assert "# 0 1 * * * heartbeatd exec backup -- /usr/bin/backup --all" in result.output
    only = CliRunner().invoke(
        main, ["import", "crontab", str(path), "--only", "crontab", "--heartbeatd", "hb"]
    )
    assert only.output.split("\n")[2:5] == [
        "MAILTO=root",
        "0 1 * * * hb exec backup -- /usr/bin/backup --all",
        "0 2 * * * echo \ufffd\x00",
    ]


def test_the_command_reads_stdin_and_checks_its_options(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        main,
        ["import", "crontab", "-", "--system", "--slug-prefix", "web1-", "--only", "toml"],
        input="0 1 * * * root /usr/bin/backup\n",
    )
    bad_prefix = runner.invoke(main, ["import", "crontab", "--slug-prefix", "Web 1"], input="")
    bad_zone = runner.invoke(main, ["import", "crontab", "--timezone", "Mars/X"], input="")
    missing = runner.invoke(main, ["import", "crontab", str(tmp_path / "nope")])

    assert ok.exit_code == 0, ok.output
    assert list(load_printed(ok.output, tmp_path).monitors) == ["web1-backup"]
    assert bad_prefix.exit_code == 2
    assert 'slug prefix "Web 1": a slug may use only a-z, 0-9' in bad_prefix.output
    assert bad_zone.exit_code == 2
    assert 'unknown time zone "Mars/X"' in bad_zone.output
    assert missing.exit_code == 1
    assert "nope: No such file or directory" in missing.output


def test_heartbeatd_check_accepts_the_printed_toml(tmp_path):
    printed = CliRunner().invoke(
        main, ["import", "crontab", str(CRONTABS / "etc-crontab"), "--system"]
    )
    config = tmp_path / "heartbeatd.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "hb.db"}"\n\n' + printed.output)

    checked = CliRunner().invoke(main, ["check", "-c", str(config)])

    assert checked.exit_code == 0, checked.output
    assert f"{config}: OK, 4 monitors, 0 channels" in checked.output


REAL = sorted(glob.glob("/etc/cron.d/*")) + (
    ["/etc/crontab"] if Path("/etc/crontab").exists() else []
)


@pytest.mark.skipif(not REAL, reason="no /etc/crontab or /etc/cron.d/* on this machine")
@pytest.mark.parametrize("path", REAL)
def test_it_imports_this_machines_system_crontabs(tmp_path, path):
    if not os.access(path, os.R_OK):
        pytest.skip(f"{path} is not readable")
    printed = CliRunner().invoke(main, ["import", "crontab", path, "--only", "toml"])

    assert printed.exit_code == 0, printed.output
    load_printed(printed.output, tmp_path)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("0123456789*/-, @abcdx%\\'\"=\t\n#\x00é")), max_size=300)
)
def test_any_text_makes_toml_that_loads(text):
    result = import_crontab(text, "fuzz", USER)

    data = tomllib.loads(result.toml)
    assert set(data.get("monitors", {})) == {d.slug for d in result.monitors}


@pytest.mark.parametrize(
    "command, words",
    [
        ("cd / && run-parts --report /etc/cron.daily", ["run-parts", "cron.daily"]),
        ("/usr/local/bin/backup.sh > /var/log/b.log 2>&1", ["backup"]),
        ("pg_dump mydb | gzip > /b/x.gz", ["pg_dump", "mydb"]),
        ("nice -n 19 ionice -c3 /usr/bin/updatedb", ["updatedb"]),
        ("flock -n /run/x.lock /usr/bin/rsync -a /a /b", ["rsync"]),
        ("FOO=1 BAR=2 /opt/job", ["job"]),
        ("sleep 30; true", []),
    ],
)
def test_it_names_a_job_by_what_it_runs(command, words):
    assert name_words(command) == words


def test_slugs_are_unique_and_valid():
    slugs = Slugs("db-")

    made = [slugs.make(["start"], "x"), slugs.make(["start"], "x"), slugs.make([], "")]
    made.append(slugs.make(["a" * 200], "x"))

    assert made[:3] == ["db-start", "db-start-2", "db-job"]
    assert len(made[3]) <= 64


def test_toml_strings_escape_what_toml_forbids():
    text = 'q" b\\ nl\n nul\x00 del\x7f tab\t é'

    assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


# -- the rewritten line runs the same job, through a real shell and heartbeatd exec --


def cron_split(command: str) -> tuple[str, bytes]:
    """What cron does with a command: `\\%` is `%`, the first other `%` ends
    the command, and the rest, with `%` as newlines, is its standard input."""
    out, stdin, i, target = [], None, 0, None
    target = out
    while i < len(command):
        if command[i] == "\\" and command[i + 1 : i + 2] == "%":
            target.append("%")
            i += 2
            continue
        if command[i] == "%":
            if stdin is None:
                stdin = []
                target = stdin
            else:
                target.append("\n")
            i += 1
            continue
        target.append(command[i])
        i += 1
    return "".join(out), "".join(stdin or []).encode()


async def run_as_cron(command: str, env: dict[str, str]) -> bytes:
    line, stdin = cron_split(command)
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", line,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
    return out


JOBS = [
    "echo plain",
    "echo 'it'\"'\"'s' | tr a-z A-Z",
    "date -d @0 -u +\\%Y-\\%m && echo done",
    "cat; echo after%line one%line two",
    "printf '\\%s\\n' \"$HOME\" >/dev/null; echo home",
]


@pytest.mark.parametrize("command", JOBS, ids=range(len(JOBS)))
async def test_the_wrapped_job_does_what_the_original_did_and_reports(ping_log, command):
    env = {
        **os.environ,
        "HEARTBEATD_SERVER": ping_log.url,
        "PYTHONPATH": str(REPO),
    }
    program = f"{sys.executable} -m heartbeatd"

    wrapped = wrap_command(command, "job", "/bin/sh", program)
    original = await run_as_cron(command, env)
    got = await run_as_cron(wrapped, env)

    assert got == original
    assert [(slug, action) for slug, action, _ in ping_log.pings] == [
        ("job", "start"),
        ("job", "0"),
    ]
    assert ping_log.pings[1][2] == original.decode()


def test_split_stdin_keeps_escaped_percent_signs():
    assert split_stdin("date +\\%F%in%put") == ("date +\\%F", "%in%put")
