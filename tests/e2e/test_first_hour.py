"""README "Your first hour", run as written against a live daemon.

Each ```console block after a `<!-- first-hour -->` comment holds commands
(`$ ...`) and what they print (stdout and stderr together); `<time>` stands
for any one word (an age, a timestamp). The daemon runs config.example.toml
with its port and database moved to a temp dir, and the commands run in that
dir with the README's port replaced by the daemon's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.harness import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
README_PORT = "127.0.0.1:8080"


def first_hour_blocks() -> list[list[tuple[str, list[str]]]]:
    """Each marked block as (command, expected output lines) pairs."""
    text = (REPO / "README.md").read_text()
    blocks = []
    for match in re.finditer(r"<!-- first-hour -->\n```console\n(.*?)```\n", text, re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in match.group(1).splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"output before any command: {line!r}"
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def matches(expected: str, actual: str) -> bool:
    """Equal up to runs of spaces (columns widen with the values) and <time>."""
    words = [re.escape(w) for w in expected.split()]
    pattern = r"\s+".join(r"\S+" if w == re.escape("<time>") else w for w in words)
    return re.fullmatch(r"\s*" + pattern + r"\s*", actual) is not None


def test_the_readme_has_first_hour_blocks() -> None:
    blocks = first_hour_blocks()
    commands = [command for block in blocks for command, _ in block]
    assert len(blocks) >= 5
    for word in ("curl", "status --url", "history", "pause", "resume", "check", "reload"):
        assert any(word in c for c in commands), word


def test_your_first_hour_runs_as_the_readme_shows(daemon: DaemonProcess) -> None:
    example = (REPO / "config.example.toml").read_text()
    assert README_PORT in example
    here = f"127.0.0.1:{daemon.port}"
    daemon.write_raw_config(example.replace(README_PORT, here))
    daemon.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTBEATD_")}
    # The `heartbeatd` of this venv first on PATH, as after `pip install .`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for block in first_hour_blocks():
        for command, expected in block:
            command = command.replace(README_PORT, here)
            run = subprocess.run(
                ["sh", "-c", command],
                cwd=daemon.dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=60,
            )
            actual = run.stdout.splitlines()
            want = [line.replace(README_PORT, here) for line in expected]
            assert len(actual) == len(want) and all(
                matches(w, a) for w, a in zip(want, actual, strict=True)
            ), f"$ {command}\nREADME shows:\n" + "\n".join(want) + "\ngot:\n" + run.stdout
