"""[metrics]: per_monitor switches the per-monitor families of /metrics."""

from __future__ import annotations

import pytest

from heartbeatd.config import load_config
from heartbeatd.tables import ConfigError


def load(tmp_path, text: str):
    path = tmp_path / "heartbeatd.toml"
    path.write_text('[storage]\npath = "hb.db"\n' + text, encoding="utf-8")
    return load_config(path)


def test_per_monitor_metrics_are_on_by_default(tmp_path):
    assert load(tmp_path, "").metrics.per_monitor is True


def test_per_monitor_metrics_can_be_turned_off(tmp_path):
    assert load(tmp_path, "[metrics]\nper_monitor = false\n").metrics.per_monitor is False


def test_a_wrong_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, '[metrics]\nper_monitor = "no"\nper_monitr = true\n')
    text = "\n".join(caught.value.problems)
    assert 'metrics.per_monitor: expected true or false, got "no"' in text
    assert "metrics.per_monitr" in text
