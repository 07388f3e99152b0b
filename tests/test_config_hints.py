"""What `heartbeatd check` says about a config a new user got slightly
wrong: the message names the fix, and the exact text is asserted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


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
