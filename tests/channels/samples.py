"""The sample alerts under the names the channel tests use, and a parse helper."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from heartbeatd.channels.base import ParseEnv
from heartbeatd.tables import Problems, Table
from tests.harness import advance_until_done
from tests.samples import ALERTS

__all__ = ["ALL", "DOWN", "FAILED", "REMINDER", "TEST", "UP", "advance_until_done", "parse"]

FILE = "heartbeatd.toml"

DOWN, FAILED, REMINDER, UP, TEST = (ALERTS[k] for k in ("down", "failed", "reminder", "up", "test"))
ALL = {"down": DOWN, "up": UP, "reminder": REMINDER, "test": TEST}


def parse(
    module: ModuleType,
    data: dict[str, Any],
    *,
    smtp: Any = None,
    base_dir: Path = Path("/etc/heartbeatd"),
    name: str = "x",
) -> tuple[Any, list[str]]:
    """parse_options on `[channels.<name>]`; the options and every problem line."""
    problems = Problems(FILE, base_dir)
    table = Table(data, f"channels.{name}", problems)
    opts = module.parse_options(table, ParseEnv(base_dir=base_dir, smtp=smtp))
    return opts, problems.lines
