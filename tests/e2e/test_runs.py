"""Schedules and run rules in the daemon as a sysadmin runs it: a TOML file,
real HTTP pings, alerts delivered to a real local webhook."""

from __future__ import annotations

from tests.harness import DaemonProcess, WebhookSink, wait_for

RUN_A = "1b4e28ba-2fa1-4d2b-883f-0016d3cca427"
RUN_B = "6fa459ea-ee8a-4ca4-894e-db77e160355e"

MONITORS = """
[monitors.etl]
name = "Nightly ETL"
oncalendar = ["Mon..Fri 02:00", "Sat,Sun 04:00"]
timezone = "Europe/Riga"
early = "2m"
min_runtime = 30
max_concurrent = 1

[monitors.hook]
schedule = ["0 2 * * *", "30 14 * * 1-5"]
methods = "post"
failure_keywords = ["ERROR"]
success_keywords = ["done"]
"""


def test_overlaps_too_short_runs_and_keyword_rules_reach_the_channels(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(MONITORS, hook=webhook_sink.url)
    daemon.start()
    etl = daemon.monitor("etl")
    assert etl["schedule"] == ("OnCalendar Mon..Fri 02:00; Sat,Sun 04:00 (Europe/Riga, early 2m)")

    assert daemon.ping(f"etl/start?rid={RUN_A}").status == 200
    assert daemon.ping(f"etl/start?rid={RUN_B}").status == 200
    [overlap] = wait_for(lambda: webhook_sink.delivered("overlap", "etl"), 5)
    assert (overlap["reason"], overlap["status"]) == ("overlap", "new")

    # b finishes a moment later: far too short for a 30 s minimum.
    assert daemon.ping(f"etl?rid={RUN_B}", data=b"copied 0 rows").status == 200
    [short] = wait_for(lambda: webhook_sink.delivered("down", "etl"), 5)
    assert short["reason"] == "ran_too_short"
    assert short["min_runtime"] == 30.0
    assert 0 <= short["duration"] < 30
    # a is still open, and watched.
    assert daemon.monitor("etl")["started_at"] is not None

    # A link preview's GET is recorded as ignored; a POST with ERROR fails.
    assert daemon.ping("hook").status == 200
    assert daemon.monitor("hook")["status"] == "new"
    assert daemon.ping("hook", data=b"rsync: ERROR 23").status == 200
    [down] = wait_for(lambda: webhook_sink.delivered("down", "hook"), 5)
    assert down["reason"] == "failed"
    kinds = daemon.query("SELECT method, kind FROM pings WHERE monitor = 'hook' ORDER BY id")
    assert kinds == [("GET", "ignored"), ("POST", "fail")]

    detail = daemon.monitor("etl")
    assert detail["runs"]["runs"] == 1
