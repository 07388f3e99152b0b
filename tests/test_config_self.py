"""[self] (the outbound self-ping) and the [alerts] keys about heartbeatd
itself: gap_notice, silence, channels."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from heartbeatd.cli import main
from heartbeatd.config import load_config
from heartbeatd.model import Secret
from heartbeatd.reloading import needs_restart
from heartbeatd.tables import ConfigError

CHANNELS = '[channels.ops]\ntype = "log"\n[channels.pager]\ntype = "log"\n'


def load(tmp_path: Path, text: str):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(text + CHANNELS)
    return load_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    name = str(tmp_path / "heartbeatd.toml")
    return [line.replace(name, "FILE") for line in caught.value.problems]


def test_the_defaults_are_no_self_ping_a_5m_gap_notice_and_no_silence_alert(tmp_path: Path):
    config = load(tmp_path, "")
    assert config.selfping.ping_url is None
    assert (config.selfping.every, config.selfping.stuck_after) == (60, 600)
    assert (config.alerts.gap_notice, config.alerts.silence, config.alerts.channels) == (
        300,
        None,
        None,
    )


def test_it_reads_every_key(tmp_path: Path):
    (tmp_path / "hc-url").write_text("https://hc-ping.com/abc-key\n")
    config = load(
        tmp_path,
        '[self]\nping_url_file = "hc-url"\nevery = "30s"\nstuck_after = "2m"\n'
        '[alerts]\ngap_notice = "15m"\nsilence = "15m"\nchannels = ["pager"]\n',
    )
    assert config.selfping.ping_url == Secret("https://hc-ping.com/abc-key")
    assert (config.selfping.every, config.selfping.stuck_after) == (30, 120)
    assert (config.alerts.gap_notice, config.alerts.silence) == (900, 900)
    assert config.alerts.channels == ("pager",)


def test_errors_name_the_key_and_never_show_the_ping_url(tmp_path: Path):
    found = problems(
        tmp_path,
        '[self]\nping_url = "ftp://secret-key@example.com"\nevery = "soon"\nlater = 1\n'
        '[alerts]\nsilence = "0s"\nchannels = ["ops", "nobody"]\n',
    )
    assert found == [
        'FILE: alerts.silence: must be longer than zero, got "0s"',
        'FILE: alerts.channels: no channel named "nobody" (configured: ops, pager)',
        "FILE: self.ping_url: expected an http:// or https:// URL (not shown: a secret)",
        'FILE: self.every: expected a duration like "30s", "5m" or "1h30m", got "soon"',
        "FILE: self.later: unknown key",
    ]
    assert not any("secret-key" in line for line in found)


def test_a_reload_that_turns_the_self_ping_on_asks_for_a_restart(tmp_path: Path):
    off = load(tmp_path, "")
    on = load(tmp_path, '[self]\nping_url = "https://hc-ping.com/abc-key"\n')
    assert needs_restart(off, on) == ["self.ping_url"]
    assert needs_restart(on, off) == []


def test_check_shows_them_without_the_ping_urls_path(tmp_path: Path):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(
        '[self]\nping_url = "https://hc-ping.com/abc-key"\n'
        '[alerts]\nsilence = "15m"\nchannels = ["pager"]\n' + CHANNELS
    )
    result = CliRunner().invoke(main, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip("\n").endswith(
        "\nheartbeatd itself\n"
        "  downtime alert: after 5m; silence alert: 15m; to pager\n"
        "  self-ping: every 1m to https://hc-ping.com/…, outbox stuck after 10m"
    )
    assert "abc-key" not in result.output
    # A URL with the check's key in it, written into the config file.
    assert "self.ping_url" in result.stderr
