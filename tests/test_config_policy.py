"""The alert policy's config keys: read, defaulted, and worded when wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from heartbeatd.config import ConfigError, load_config

FILE = "heartbeatd.toml"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str):
    Path(FILE).write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(Path(FILE))


def test_it_reads_thresholds_and_defaults_them_to_one() -> None:
    config = load(
        """
        [monitors.a]
        period = "1h"
        alert_after = 3
        recover_after = 2

        [monitors.b]
        period = "1h"
        """
    )
    a, b = config.monitors["a"], config.monitors["b"]
    assert (a.alert_after, a.recover_after) == (3, 2)
    assert (b.alert_after, b.recover_after) == (1, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alert_after = 0", "monitors.a.alert_after: expected a number from 1, got 0"),
        ('alert_after = "3"', 'monitors.a.alert_after: expected a whole number, got "3"'),
        ("recover_after = true", "monitors.a.recover_after: expected a whole number, got true"),
    ],
    ids=["zero", "text", "bool"],
)
def test_a_bad_threshold_is_a_config_error_naming_the_key(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f'[monitors.a]\nperiod = "1h"\n{line}\n')
    assert caught.value.problems == [f"{FILE}: {message}"]
