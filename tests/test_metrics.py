"""/metrics text, rendered from a snapshot (no daemon), and checked by promtool."""

from __future__ import annotations

import cProfile
import pstats
import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from heartbeatd.config import load_config
from heartbeatd.exposition import escape_label_value
from heartbeatd.metrics import LoopFigures, Snapshot, render_metrics, render_pieces
from heartbeatd.monitorseries import CHUNK
from heartbeatd.views import MonitorView
from heartbeatd.web.scrape import _Table

NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)
T = int(NOW.timestamp())  # 1768392000


def monitor(slug: str, status: str = "up", **fields: object) -> MonitorView:
    """A monitor view (Engine.view); `fields` as in its JSON."""
    base = {
        "slug": slug,
        "name": slug,
        "status": status,
        "started_at": None,
        "last_ping": "2026-01-14T11:57:00Z",
        "expected_at": "2026-01-14T12:57:00Z",
        "down_at": "2026-01-14T13:02:00Z",
        "n_pings": 3,
        "last_duration": 83.5,
    }
    return MonitorView.from_json(base | fields)


def snapshot(**fields: object) -> Snapshot:
    base: dict = {
        "monitors": [
            monitor("backup", name="Nightly backup"),
            monitor(
                "web",
                "down",
                last_ping=None,
                expected_at="2026-01-14T11:00:00Z",
                down_at="2026-01-14T11:05:00Z",
                last_duration=None,
            ),
        ],
        "pings_by_kind": {"success": 7, "fail": 1},
        "alerts_sent": {"ops": 3},
        "alerts_failed": {"hook": 1},
        "channels": ("hook", "ops"),
        "outbox_pending": 2,
        "reloads_ok": 4,
        "reloads_failed": 1,
        "last_reload_at": NOW,
        "last_reload_ok": False,
        "version": "0.1.0",
        "python": "3.11.7",
    }
    return Snapshot(**(base | fields))


def samples(text: str) -> dict[str, float]:
    """{'name{labels}': value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_it_reports_whether_each_monitor_is_up():
    got = samples(render_metrics(snapshot()))
    assert got['heartbeatd_monitor_up{monitor="backup",name="Nightly backup"}'] == 1
    assert got['heartbeatd_monitor_up{monitor="web",name="web"}'] == 0


def test_it_reports_the_status_as_a_state_set():
    got = samples(render_metrics(snapshot()))
    web = {
        status: got[f'heartbeatd_monitor_status{{monitor="web",name="web",status="{status}"}}']
        for status in ("new", "up", "late", "down", "paused")
    }
    assert web == {"new": 0, "up": 0, "late": 0, "down": 1, "paused": 0}


def test_it_reports_times_as_unix_seconds():
    got = samples(render_metrics(snapshot()))
    labels = '{monitor="backup",name="Nightly backup"}'
    assert got["heartbeatd_monitor_last_ping_timestamp_seconds" + labels] == T - 180
    assert got["heartbeatd_monitor_expected_timestamp_seconds" + labels] == T + 3420
    assert got["heartbeatd_monitor_down_at_timestamp_seconds" + labels] == T + 3720
    assert got["heartbeatd_monitor_last_duration_seconds" + labels] == 83.5


def test_it_leaves_out_times_that_are_not_known():
    # A made-up 0 would read as "last ping in 1970" to `time() - metric`.
    text = render_metrics(snapshot())
    assert 'heartbeatd_monitor_last_ping_timestamp_seconds{monitor="web"' not in text
    assert 'heartbeatd_monitor_last_duration_seconds{monitor="web"' not in text
    assert 'heartbeatd_monitor_down_at_timestamp_seconds{monitor="web",name="web"}' in text


def test_it_reports_a_run_in_progress():
    running = monitor("backup", started_at="2026-01-14T11:59:00Z")
    got = samples(render_metrics(snapshot(monitors=[running, monitor("idle")])))
    assert got['heartbeatd_monitor_running{monitor="backup",name="backup"}'] == 1
    assert got['heartbeatd_monitor_running{monitor="idle",name="idle"}'] == 0


def test_it_counts_pings_by_kind_including_kinds_not_seen_yet():
    got = samples(render_metrics(snapshot()))
    assert {k: v for k, v in got.items() if k.startswith("heartbeatd_pings_total")} == {
        'heartbeatd_pings_total{kind="fail"}': 1,
        'heartbeatd_pings_total{kind="ignored"}': 0,
        'heartbeatd_pings_total{kind="log"}': 0,
        'heartbeatd_pings_total{kind="start"}': 0,
        'heartbeatd_pings_total{kind="success"}': 7,
    }


def test_it_counts_overlaps_and_anomalies_by_monitor():
    notices = {("overlap", "backup"): 2, ("anomaly", "backup"): 1, ("overlap", "etl"): 1}
    got = samples(render_metrics(snapshot(notices=notices)))
    assert got['heartbeatd_overlaps_total{monitor="backup"}'] == 2
    assert got['heartbeatd_overlaps_total{monitor="etl"}'] == 1
    assert got['heartbeatd_runtime_anomalies_total{monitor="backup"}'] == 1
    assert 'heartbeatd_runtime_anomalies_total{monitor="etl"}' not in got


def test_it_counts_alerts_for_every_configured_channel():
    got = samples(render_metrics(snapshot()))
    assert got['heartbeatd_alerts_sent_total{channel="ops"}'] == 3
    assert got['heartbeatd_alerts_sent_total{channel="hook"}'] == 0
    assert got['heartbeatd_alerts_failed_total{channel="hook"}'] == 1
    assert got['heartbeatd_alerts_failed_total{channel="ops"}'] == 0
    assert got["heartbeatd_outbox_pending"] == 2


def test_it_leaves_out_the_outbox_gauge_when_the_outbox_could_not_be_read():
    assert "heartbeatd_outbox_pending" not in render_metrics(snapshot(outbox_pending=None))


def test_it_reports_config_reloads():
    got = samples(render_metrics(snapshot()))
    assert got['heartbeatd_config_reloads_total{result="success"}'] == 4
    assert got['heartbeatd_config_reloads_total{result="failure"}'] == 1
    assert got["heartbeatd_config_last_reload_timestamp_seconds"] == T
    assert got["heartbeatd_config_last_reload_success"] == 0


def test_it_has_no_reload_time_before_the_first_reload():
    text = render_metrics(snapshot(last_reload_at=None, last_reload_ok=True))
    assert "heartbeatd_config_last_reload_timestamp_seconds" not in text
    assert "heartbeatd_config_last_reload_success 1\n" in text


def test_it_reports_the_build():
    text = render_metrics(snapshot())
    assert 'heartbeatd_build_info{version="0.1.0",python="3.11.7"} 1\n' in text


def test_every_family_has_help_and_type_before_its_samples():
    text = render_metrics(snapshot())
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in declared, f"{name} declared twice"
            declared[name] = ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in declared
            declared[name] = kind
        else:
            name = re.match(r"[a-z_]+", line).group(0)
            assert declared.get(name) in ("gauge", "counter"), line
    counters = {n for n, k in declared.items() if k == "counter"}
    assert counters == {
        "heartbeatd_pings_total",
        "heartbeatd_overlaps_total",
        "heartbeatd_runtime_anomalies_total",
        "heartbeatd_alerts_sent_total",
        "heartbeatd_alerts_failed_total",
        "heartbeatd_config_reloads_total",
        "heartbeatd_unknown_pings_total",
    }
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ('say "hi"', 'say \\"hi\\"'),
        ("C:\\backup", "C:\\\\backup"),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),
    ],
    ids=["plain", "quote", "backslash", "newline", "all"],
)
def test_it_escapes_label_values(value, escaped):
    assert escape_label_value(value) == escaped


def test_it_escapes_a_monitor_name_in_labels():
    odd = monitor("odd", name='Back\\up "nightly"\nrun')
    text = render_metrics(snapshot(monitors=[odd]))
    assert 'heartbeatd_monitor_up{monitor="odd",name="Back\\\\up \\"nightly\\"\\nrun"} 1\n' in text


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt install prometheus)"
)
def test_promtool_accepts_the_output():
    odd = monitor("odd", name='Back\\up "nightly"\nrun', started_at="2026-01-14T11:59:00Z")
    text = render_metrics(snapshot(monitors=[*snapshot().monitors, odd]))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # promtool prints lint problems (and exits non-zero) for bad names, units or HELP.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_it_counts_monitors_by_status():
    got = samples(render_metrics(snapshot()))
    assert {k: v for k, v in got.items() if k.startswith("heartbeatd_monitors{")} == {
        'heartbeatd_monitors{status="new"}': 0,
        'heartbeatd_monitors{status="up"}': 1,
        'heartbeatd_monitors{status="late"}': 0,
        'heartbeatd_monitors{status="down"}': 1,
        'heartbeatd_monitors{status="paused"}': 0,
    }


def test_it_leaves_out_the_per_monitor_families_when_told():
    text = render_metrics(snapshot(per_monitor=False))
    assert "monitor=" not in text
    assert 'heartbeatd_monitors{status="down"} 1\n' in text
    assert 'heartbeatd_pings_total{kind="success"} 7\n' in text
    assert "heartbeatd_outbox_pending 2\n" in text


def test_it_reports_the_event_loop_lag():
    got = samples(render_metrics(snapshot(loop=LoopFigures(last=0.002, worst=0.25, stalls=3))))
    assert got["heartbeatd_loop_lag_seconds"] == 0.002
    assert got["heartbeatd_loop_lag_max_seconds"] == 0.25
    assert got["heartbeatd_loop_stalls_total"] == 3


def test_it_comes_in_pieces_of_a_bounded_number_of_monitors():
    many = [monitor(f"m{i}") for i in range(3 * CHUNK)]
    pieces = list(render_pieces(snapshot(monitors=many)))
    assert "".join(pieces) == render_metrics(snapshot(monitors=many))
    # 5 lines a monitor in the status family, the longest.
    assert max(piece.count("\n") for piece in pieces) <= 5 * CHUNK


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt install prometheus)"
)
@pytest.mark.parametrize("per_monitor", [True, False], ids=["per-monitor", "aggregate"])
def test_promtool_accepts_the_output_with_the_loop_figures(per_monitor):
    loop = LoopFigures(last=0.001, worst=0.04, stalls=0)
    text = render_metrics(snapshot(per_monitor=per_monitor, loop=loop))
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


class CountedRow:
    """A monitor view that counts how often each of its figures is read."""

    def __init__(self, view: MonitorView) -> None:
        self.view = view
        self.reads: dict[str, int] = {}

    def __getattr__(self, figure: str) -> object:
        self.reads[figure] = self.reads.get(figure, 0) + 1
        return getattr(self.view, figure)


def test_it_reads_each_monitors_labels_and_derived_figures_once_a_page():
    # At 100,000 monitors the page was some twelve label strings and a row
    # object per monitor and family; now the labels are made once a page and
    # each figure is read by the family that shows it.
    rows = [CountedRow(monitor(f"m{i}", tags=["db"])) for i in range(3 * CHUNK)]
    text = render_metrics(snapshot(monitors=rows))
    assert text.count('heartbeatd_monitor_tag{monitor="m7",tag="db"} 1\n') == 1
    for row in rows:
        assert {f: row.reads.get(f, 0) for f in ("slug", "name", "down_at", "is_held", "tags")} == {
            "slug": 1,
            "name": 1,
            "down_at": 1,
            "is_held": 1,
            "tags": 1,
        }


def test_it_reports_held_monitors_and_tags():
    snoozed = monitor("nightly", "down", snoozed_until="2026-01-14T13:00:00Z", tags=["db", "eu"])
    got = samples(render_metrics(snapshot(monitors=[snoozed, monitor("web")])))
    assert got['heartbeatd_monitor_held{monitor="nightly",name="nightly"}'] == 1
    assert got['heartbeatd_monitor_held{monitor="web",name="web"}'] == 0
    assert {k: v for k, v in got.items() if k.startswith("heartbeatd_monitor_tag")} == {
        'heartbeatd_monitor_tag{monitor="nightly",tag="db"}': 1,
        'heartbeatd_monitor_tag{monitor="nightly",tag="eu"}': 1,
    }


def calls_by_function(work) -> Counter[tuple[str, str]]:
    """(module file name, function) -> calls while `work()` runs (cProfile)."""
    profile = cProfile.Profile()
    profile.runcall(work)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return Counter({(Path(f).name, name): calls[1] for (f, _, name), calls in stats.items()})


def test_a_scrape_derives_each_figure_once_a_monitor_and_each_window_once(tmp_path):
    # The daemon's table: the figures that take work (down_at, held) once a
    # monitor a page, and a maintenance window's cron walked once a page, not
    # once for each of the monitors it selects.
    n = 2 * CHUNK + 7
    path = tmp_path / "heartbeatd.toml"
    path.write_text(
        '[storage]\npath = "hb.db"\n'
        '[maintenance.patching]\nschedule = "0 3 * * 0"\nduration = "2h"\ntags = ["db"]\n'
        + "".join(f'[monitors.m{i}]\nperiod = "1h"\ntags = ["db"]\n' for i in range(n))
    )
    config = load_config(path)
    table = _Table(config, {}, NOW)
    text = []
    calls = calls_by_function(lambda: text.append(render_metrics(snapshot(monitors=table))))
    assert text[0].count("\nheartbeatd_monitor_held{") == n
    assert calls["windows.py", "span_at"] == 1
    assert calls["states.py", "down_at"] == n
    assert calls["policy.py", "held_by"] == n
