"""The command channel: a real program run without a shell."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from heartbeatd.alerts import Alert
from heartbeatd.channels import command
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.clock import Clock, FakeClock
from tests.channels.samples import DOWN, TEST, advance_until_done, parse
from tests.harness import POLL, PROMPT


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


async def run(
    alert: Alert,
    argv: list[str],
    timeout: float = 10.0,
    clock: Clock | None = None,
    spawn: command.Spawn = asyncio.create_subprocess_exec,
) -> None:
    # The command channel uses only the clock of the send context.
    ctx = SendContext(session=None, clock=clock or Clock())  # type: ignore[arg-type]
    opts = command.Options(command=tuple(argv), timeout=timeout)
    await command.send(alert, opts, ctx, spawn=spawn)


# -- parse_options -------------------------------------------------------------------


def test_it_reads_the_argv_and_timeout() -> None:
    opts, problems = parse(
        command, {"command": ["/usr/local/bin/notify", "--urgent"], "timeout": "1m"}
    )
    assert problems == []
    assert opts == command.Options(command=("/usr/local/bin/notify", "--urgent"), timeout=60.0)


def test_a_program_name_is_looked_up_on_path() -> None:
    opts, problems = parse(command, {"command": ["notify-send"]})
    assert problems == []
    assert opts == command.Options(command=("notify-send",), timeout=30.0)


HINT = 'like ["/usr/local/bin/notify", "--urgent"] (it runs without a shell)'


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param({}, ["channels.x.command: is required"], id="missing"),
        pytest.param(
            {"command": "/usr/local/bin/notify --urgent"},
            [f"channels.x.command: expected a list of strings {HINT}"],
            id="a-string",
        ),
        pytest.param(
            {"command": []},
            [f"channels.x.command: needs at least the program to run, {HINT}"],
            id="empty",
        ),
        pytest.param(
            {"command": ["./notify.sh"]},
            [
                'channels.x.command: "./notify.sh" must be an absolute path '
                "or a program name looked up on PATH"
            ],
            id="relative",
        ),
        pytest.param(
            {"command": ["notify"], "timeout": "soon"},
            ['channels.x.timeout: expected a duration like "30s", "5m" or "1h30m", got "soon"'],
            id="timeout",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(command, data)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


# -- render --------------------------------------------------------------------------


def test_it_renders_environment_and_stdin() -> None:
    env, stdin = command.render(DOWN, command.Options(command=("notify",)))
    assert env == {
        "HEARTBEATD_EVENT": "down",
        "HEARTBEATD_MONITOR": "nightly-backup",
        "HEARTBEATD_NAME": "Nightly Postgres backup",
        "HEARTBEATD_STATUS": "down",
        "HEARTBEATD_REASON": "missed",
        "HEARTBEATD_AT": "2026-01-14T12:00:00Z",
        "HEARTBEATD_LAST_PING": "2026-01-13T11:30:00Z",
        "HEARTBEATD_EXPECTED_AT": "2026-01-14T11:30:00Z",
        "HEARTBEATD_DOWN_AT": "2026-01-14T12:00:00Z",
        "HEARTBEATD_URL": "https://hb.example.com/monitors/nightly-backup",
    }
    assert json.loads(stdin) == DOWN.to_json()


def test_missing_times_are_empty_strings() -> None:
    env, _ = command.render(TEST, command.Options(command=("notify",)))
    assert env["HEARTBEATD_LAST_PING"] == ""
    assert env["HEARTBEATD_URL"] == ""


# -- send ----------------------------------------------------------------------------


async def test_it_passes_the_alert_in_env_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTBEATD_FROM_THE_DAEMON", "kept")
    out = tmp_path / "out"
    program = script(
        tmp_path, "notify.sh", 'env | grep "^HEARTBEATD_" | sort > "$1.env"\ncat > "$1.json"\n'
    )
    await run(DOWN, [program, str(out)])
    lines = (tmp_path / "out.env").read_text().splitlines()
    expected, _ = command.render(DOWN, command.Options(command=(program,)))
    expected["HEARTBEATD_FROM_THE_DAEMON"] = "kept"
    assert lines == sorted(f"{k}={v}" for k, v in expected.items())
    assert json.loads((tmp_path / "out.json").read_text()) == DOWN.to_json()


async def test_a_program_on_path_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script(tmp_path, "hb-notify", 'touch "$1"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    await run(DOWN, ["hb-notify", str(tmp_path / "ran")])
    assert (tmp_path / "ran").exists()


async def test_a_non_zero_exit_is_retryable_with_the_last_stderr_line(tmp_path: Path) -> None:
    program = script(
        tmp_path, "fail.sh", "echo starting >&2\necho 'relay said no   ' >&2\necho >&2\nexit 3\n"
    )
    with pytest.raises(DeliveryError) as info:
        await run(DOWN, [program])
    assert str(info.value) == f"command {program}: exited with status 3: relay said no"
    assert info.value.permanent is False


async def test_a_long_stderr_line_is_trimmed(tmp_path: Path) -> None:
    program = script(tmp_path, "fail.sh", "printf '%0300d\\n' 0 >&2\nexit 1\n")
    with pytest.raises(DeliveryError) as info:
        await run(DOWN, [program])
    assert str(info.value) == f"command {program}: exited with status 1: {'0' * 200}"


async def test_a_program_that_ignores_stdin_still_counts(tmp_path: Path) -> None:
    await run(DOWN, [script(tmp_path, "quiet.sh", "exit 0\n")])


async def exited_first(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
    """Start a command as usual, but hand it over only once it has exited:
    the alert is then written to a pipe that is already closed."""
    proc = await asyncio.create_subprocess_exec(*args, **kwargs)
    await proc.wait()
    return proc


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_command_that_exits_before_reading_its_input_is_judged_by_its_status(
    tmp_path: Path, loop: str
) -> None:
    # uvloop reports the closed pipe as RuntimeError, asyncio as BrokenPipeError.
    new_loop = pytest.importorskip("uvloop").new_event_loop if loop == "uvloop" else None
    program = script(tmp_path, "refuse.sh", "echo 'could not notify' >&2\nexit 1\n")
    runner = (new_loop or asyncio.new_event_loop)()
    try:
        with pytest.raises(DeliveryError) as info:
            runner.run_until_complete(run(DOWN, [program], spawn=exited_first))
    finally:
        runner.close()
    assert str(info.value) == f"command {program}: exited with status 1: could not notify"


async def test_a_timeout_kills_the_program_and_its_children(
    tmp_path: Path, clock: FakeClock
) -> None:
    pidfile = tmp_path / "child.pid"
    program = script(tmp_path, "slow.sh", f'sleep 60 &\necho $! > "{pidfile}"\nwait\n')
    task = asyncio.ensure_future(run(DOWN, [program], timeout=30, clock=clock))
    assert await _is_written(pidfile)
    await advance_until_done(clock, task, 31)
    with pytest.raises(DeliveryError) as info:
        task.result()
    assert str(info.value) == f"command {program}: timed out after 30s, killed"
    assert info.value.permanent is False
    child = int(pidfile.read_text())
    assert await _is_gone(child)


async def test_a_missing_program_is_permanent(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(DeliveryError) as info:
        await run(DOWN, [missing])
    assert str(info.value) == f"command {missing}: not found"
    assert info.value.permanent is True


async def test_a_program_that_is_not_executable_is_permanent(tmp_path: Path) -> None:
    path = tmp_path / "notify.sh"
    path.write_text("#!/bin/sh\n")
    with pytest.raises(DeliveryError) as info:
        await run(DOWN, [str(path)])
    assert str(info.value) == f"command {path}: not executable (permission denied)"
    assert info.value.permanent is True


async def _is_written(path: Path) -> bool:
    """True once a line has been written to `path`.

    A real program writes it, on no clock of ours: this polls within a bound."""
    for _ in range(int(PROMPT / POLL)):
        if _has_a_line(path):
            return True
        await asyncio.sleep(POLL)
    return False


def _has_a_line(path: Path) -> bool:
    return path.exists() and path.read_text().endswith("\n")


async def _is_gone(pid: int) -> bool:
    """True once `pid` has died (a zombie counts: it no longer runs)."""
    for _ in range(int(PROMPT / POLL)):
        if _state(pid) in ("gone", "Z", "X"):
            return True
        # Delivery of SIGKILL is asynchronous, on the kernel's time: poll.
        await asyncio.sleep(POLL)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
