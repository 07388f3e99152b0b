"""What `heartbeatd check` says about a config a new user got slightly
wrong: the message names the fix, and the exact text is asserted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from heartbeatd.config import check_warnings, load_config
from heartbeatd.config.warnings import SERVICE_PATH
from heartbeatd.tables import ConfigError


def heartbeatd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_check_suggests_the_table_a_mistyped_header_meant(tmp_path: Path) -> None:
    config = tmp_path / "heartbeatd.toml"
    config.write_text(
        textwrap.dedent(
            """
            [monitor.backup]
            period = "1d"
            """
        )
    )
    result = heartbeatd("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"{config}: monitor: unknown key; did you mean `[monitors.backup]`?\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def test_a_timezone_beside_a_period_is_said_to_have_no_effect(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [channels.ops]
        type = "log"
        [defaults]
        channels = ["ops"]
        [monitors.backup]
        period = "1d"
        timezone = "Europe/Riga"
        [monitors.nightly]
        schedule = "0 2 * * *"
        timezone = "Europe/Riga"
        """,
    )
    assert check_warnings(load_config(path)) == [
        f"{path}: monitors.backup.timezone: has no effect with period (a period counts"
        " from the last ping); only a cron schedule uses it: remove it, or use schedule"
    ]


def test_a_command_channel_whose_program_is_missing_is_warned_about(tmp_path: Path) -> None:
    script = tmp_path / "notify.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    path = write(
        tmp_path,
        f"""
        [channels.gone]
        type = "command"
        command = ["{tmp_path}/missing.sh", "--flag"]
        [channels.plain]
        type = "command"
        command = ["{script}"]
        [channels.nowhere]
        type = "command"
        command = ["heartbeatd-no-such-program"]
        [channels.found]
        type = "command"
        command = ["sh", "-c", "true"]
        [monitors.backup]
        period = "1d"
        channels = ["gone", "plain", "nowhere", "found"]
        """,
    )
    assert check_warnings(load_config(path)) == [
        f'{path}: channels.gone.command: "{tmp_path}/missing.sh" does not exist',
        f'{path}: channels.plain.command: "{script}" is not executable: chmod +x it',
        f'{path}: channels.nowhere.command: "heartbeatd-no-such-program" is not found on'
        f" the PATH the service runs with ({SERVICE_PATH}): give its full path",
    ]


def test_a_database_outside_the_state_directory_is_warned_about_under_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    path = write(
        tmp_path,
        f"""
        [storage]
        path = "{tmp_path}/data/heartbeatd.db"
        [monitors.backup]
        period = "1d"
        channels = []
        """,
    )
    assert check_warnings(load_config(path))[:1] == [
        f"{path}: storage.path: {tmp_path}/data/heartbeatd.db is outside the state"
        f" directory ({state}), which the shipped unit's ProtectSystem=strict leaves the only"
        ' writable one: give a relative path (path = "heartbeatd.db"), or add'
        f" ReadWritePaths={tmp_path}/data with `systemctl edit heartbeatd`"
    ]


def test_a_database_inside_the_state_directory_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    path = write(tmp_path, '[storage]\npath = "db/heartbeatd.db"\n[monitors.a]\nperiod = "1d"\n')
    assert [w for w in check_warnings(load_config(path)) if "storage.path" in w] == []


def test_a_file_where_the_database_path_needs_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    path = write(
        tmp_path, '[storage]\npath = "data/db/heartbeatd.db"\n[monitors.a]\nperiod = "1d"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f'{path}: storage.path: "{tmp_path}/data" is a file, not a directory, so'
        f' "{tmp_path}/data/db/heartbeatd.db" cannot be created'
    ]


def test_a_file_in_the_way_of_a_secret_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "secrets").write_text("")
    path = write(
        tmp_path,
        '[server]\nping_key_file = "secrets/ping-key"\n[monitors.a]\nperiod = "1d"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f'{path}: server.ping_key_file: cannot read "{tmp_path}/secrets/ping-key":'
        f' "{tmp_path}/secrets" is a file, not a directory'
    ]
