"""The alert policy in the real daemon: a subprocess, a webhook receiver,
and the CLI reading its API. Polls with timeouts, never fixed sleeps."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from heartbeatd.cli import main
from tests.harness import DaemonProcess, WebhookSink, assert_never, parse_time, utcnow, wait_for

# Never due by itself during a test: only pings move it.
THRESHOLDS = '[monitors.a]\nperiod = "1h"\ngrace = "1h"\nalert_after = 3\nrecover_after = 2\n'


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    return result.stdout


def test_thresholds_hold_alerts_across_a_kill_and_show_why(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(THRESHOLDS, hook=webhook_sink.url)
    daemon.start()
    config = str(daemon.config_path)
    assert daemon.ping("a").status == 200
    assert daemon.ping("a/fail").status == 200
    assert daemon.ping("a/1").status == 200

    shown = daemon.monitor("a")
    assert (shown["status"], shown["alert"], shown["held_by"]) == ("down", "quiet", "threshold")
    down_flip = daemon.api("monitors/a/flips")["flips"][0]
    assert (down_flip["new"], down_flip["event"], down_flip["held_by"]) == (
        "down",
        None,
        "threshold",
    )
    assert cli("status", "-c", config).splitlines()[1].split()[:5] == [
        "a",
        "down",
        "(held",
        "by",
        "threshold)",
    ]
    flips = cli("history", "a", "-c", config).split("FLIPS\n")[1].splitlines()
    # Newest first.
    assert flips[0].endswith("up -> down  (failed) held by threshold")

    # The count of failed runs is on disk: a kill -9 does not reset it.
    daemon.kill()
    daemon.start()
    assert_never(lambda: webhook_sink.delivered("down"), 1, "a down alert before the 3rd run")
    assert daemon.ping("a/fail").status == 200
    [down] = wait_for(lambda: webhook_sink.delivered("down", "a"), 5)
    assert (down["status"], down["reason"]) == ("down", "failed")
    assert daemon.monitor("a")["alert"] == "alerting"

    # The first success is held; the second sends the up alert.
    assert daemon.ping("a").status == 200
    shown = daemon.monitor("a")
    assert (shown["status"], shown["alert"], shown["held_by"]) == ("up", "alerting", "threshold")
    assert_never(lambda: webhook_sink.delivered("up"), 1, "an up alert after one success")
    assert daemon.ping("a").status == 200
    [up] = wait_for(lambda: webhook_sink.delivered("up", "a"), 5)
    assert up["reason"] == "recovered"
    assert len(webhook_sink.delivered("down")) == 1
    assert daemon.monitor("a")["alert"] == "quiet"


def test_a_silent_job_alerts_after_its_third_missed_period(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(
        "[monitors.s]\nperiod = 2\ngrace = 1\nalert_after = 3\n", hook=webhook_sink.url
    )
    daemon.start()
    assert daemon.ping("s").status == 200
    pinged = daemon.monitor("s")["last_ping"]
    # Down at +3 s (1), then +5 s (2) and +7 s (3): one count per period.
    wait_for(lambda: daemon.monitor("s")["status"] == "down", 8)
    # Read from the flip, not the monitor: by now it may have alerted.
    assert daemon.api("monitors/s/flips")["flips"][0]["held_by"] == "threshold"
    [down] = wait_for(lambda: webhook_sink.delivered("down", "s"), 12)
    assert (down["reason"], down["last_ping"]) == ("missed", pinged)
    assert_never(lambda: len(webhook_sink.delivered("down")) > 1, 3, "one down alert only")


SLOW = '[monitors.{slug}]\nperiod = "1h"\ngrace = "1h"\n'


def test_a_snooze_from_curl_holds_a_down_across_a_kill_and_alerts_once_at_its_end(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(
        SLOW.format(slug="deploy") + SLOW.format(slug="other"), hook=webhook_sink.url
    )
    daemon.start()
    # What a deploy script curls: mute its own monitor for a few seconds.
    answer = daemon.ping("deploy/snooze/6s")
    assert (answer.status, answer.text) == (200, "OK")
    until = daemon.monitor("deploy")["snoozed_until"]
    assert until is not None
    assert daemon.ping("deploy/fail").status == 200
    assert daemon.ping("other/fail").status == 200
    wait_for(lambda: webhook_sink.delivered("down", "other"), 5)
    shown = daemon.monitor("deploy")
    assert (shown["status"], shown["alert"], shown["held_by"]) == ("down", "quiet", "snooze")
    assert daemon.api("monitors/deploy/flips")["flips"][0]["held_by"] == "snooze"

    # The held alert is on disk with the snooze: a kill -9 loses neither.
    daemon.kill()
    daemon.start()
    assert daemon.monitor("deploy")["snoozed_until"] == until
    [down] = wait_for(lambda: webhook_sink.delivered("down", "deploy"), 12)
    assert (down["at"], down["reason"]) == (until, "failed")
    shown = daemon.monitor("deploy")
    assert (shown["alert"], shown["held_by"], shown["snoozed_until"]) == ("alerting", None, None)
    assert_never(
        lambda: len(webhook_sink.delivered("down", "deploy")) > 1, 2, "one down alert only"
    )


def test_the_cli_snoozes_and_unsnoozes_and_the_held_alert_goes_out(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(SLOW.format(slug="db"), hook=webhook_sink.url, server='api_token = "t0ken"')
    daemon.config_path.chmod(0o600)
    daemon.start()
    config = str(daemon.config_path)
    out = cli("snooze", "db", "--for", "2h", "--reason", "patching", "-c", config)
    assert out.startswith("db: snoozed until ")
    assert daemon.monitor("db", token="t0ken")["snooze_reason"] == "patching"
    assert daemon.ping("db/fail").status == 200
    assert_never(lambda: webhook_sink.delivered("down"), 1, "a down alert while snoozed")
    assert cli("unsnooze", "db", "-c", config) == "db: down, alert alerting\n"
    [down] = wait_for(lambda: webhook_sink.delivered("down", "db"), 5)
    assert down["reason"] == "failed"


def _open_for(daemon: DaemonProcess, seconds: float) -> dict[str, str]:
    """The window, once it is open with at least `seconds` left."""

    def open_long_enough() -> dict[str, str] | None:
        [window] = daemon.api("maintenance")["maintenance"]
        if not window["open"]:
            return None
        now = utcnow()
        left = (parse_time(window["ends_at"]) - now).total_seconds()
        # Open for a few seconds already: a monitor's view is as of the
        # daemon's last tick (once a second), which must be inside it too.
        opened = (now - parse_time(window["started_at"])).total_seconds()
        return window if left >= seconds and opened >= 3 else None

    return wait_for(open_long_enough, 70, "the window open with time left")


def test_a_window_holds_downs_and_at_its_end_alerts_once_for_what_is_still_down(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    # Opens at the start of every minute, for 40 seconds.
    window = '[maintenance.w]\nschedule = "* * * * *"\nduration = "40s"\nmonitors = ["*"]\n'
    daemon.write_config(
        SLOW.format(slug="still") + SLOW.format(slug="back") + window, hook=webhook_sink.url
    )
    daemon.start()
    opened = _open_for(daemon, 12)
    assert daemon.ping("still/fail").status == 200
    assert daemon.ping("back/fail").status == 200
    assert daemon.ping("back").status == 200
    shown = daemon.monitor("still")
    assert (shown["held_by"], shown["maintenance"]) == ("maintenance:w", "w")
    # A restart inside the window keeps the held alert.
    daemon.kill()
    daemon.start()
    [down] = wait_for(lambda: webhook_sink.delivered("down", "still"), 45)
    assert down["at"] == opened["ends_at"]
    assert_never(lambda: webhook_sink.delivered("down", "back"), 2, "a down alert for back")
    assert webhook_sink.delivered("up") == []
    assert len(webhook_sink.delivered("down")) == 1


def test_a_parent_down_holds_20_dependents_and_its_recovery_releases_them(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    dependents = [f"job-{i}" for i in range(20)]
    monitors = SLOW.format(slug="vps") + "".join(
        f'[monitors.{slug}]\nperiod = "1h"\ngrace = 8\ndepends_on = ["vps"]\n'
        for slug in dependents
    )
    daemon.write_config(monitors, hook=webhook_sink.url)
    daemon.start()
    assert daemon.ping("vps/fail").status == 200
    wait_for(lambda: webhook_sink.delivered("down", "vps"), 5)
    for slug in dependents:
        assert daemon.ping(f"{slug}/fail").status == 200
    assert daemon.monitor("job-0")["held_by"] == "dependency:vps"
    assert_never(lambda: len(webhook_sink.delivered("down")) > 1, 1, "a dependent's alert")

    assert daemon.ping("vps").status == 200
    wait_for(lambda: webhook_sink.delivered("up", "vps"), 5)
    # Half of them ping within their grace (8 s, room for a loaded machine)
    # after the parent's recovery.
    for slug in dependents[:10]:
        assert daemon.ping(slug).status == 200
    late = wait_for(lambda: len(webhook_sink.delivered("down")) >= 11 or None, 20)
    assert late
    assert_never(lambda: len(webhook_sink.delivered("down")) > 11, 2, "one alert each")
    downs = {d["monitor"]: d for d in webhook_sink.delivered("down") if d["monitor"] != "vps"}
    assert sorted(downs) == sorted(dependents[10:])
    one = downs["job-15"]
    assert one["held_by"] == "dependency:vps" and one["held_since"] is not None
    assert webhook_sink.delivered("up") == webhook_sink.delivered("up", "vps")


def test_the_cli_snoozes_every_monitor_with_a_tag(daemon: DaemonProcess) -> None:
    tagged = '[monitors.{slug}]\nperiod = "1h"\ntags = ["{tag}"]\n'
    daemon.write_config(
        tagged.format(slug="db-1", tag="db")
        + tagged.format(slug="db-2", tag="db")
        + tagged.format(slug="web", tag="web"),
        server='api_token = "t0ken"',
    )
    daemon.config_path.chmod(0o600)
    daemon.start()
    config = str(daemon.config_path)
    out = cli("snooze", "--tag", "db", "--for", "1h", "-c", config).splitlines()
    assert [line.split(":")[0] for line in out] == ["db-1", "db-2"]
    shown = {s: daemon.monitor(s, token="t0ken")["snoozed_until"] for s in ("db-1", "db-2", "web")}
    assert shown["db-1"] is not None and shown["db-2"] is not None and shown["web"] is None
    assert cli("unsnooze", "--tag", "db", "-c", config).splitlines() == [
        "db-1: new, alert quiet",
        "db-2: new, alert quiet",
    ]


def test_channels_hear_their_events_late_and_held_included(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    audit = (
        f'[channels.audit]\ntype = "webhook"\nurl = "{webhook_sink.url}/audit"\n'
        'events = ["late", "held"]\n'
    )
    daemon.write_config(
        '[monitors.a]\nperiod = 2\ngrace = 2\nalert_after = 2\nchannels = ["hook", "audit"]\n',
        hook=webhook_sink.url,
        channels=audit,
    )
    daemon.start()
    assert daemon.ping("a").status == 200

    def at_audit(event: str) -> list[Any]:
        return [
            r.payload() for r in webhook_sink.received("/audit") if r.payload()["event"] == event
        ]

    # Late at +2 s (a warning), held down at +4 s (1 of 2), down at +6 s.
    [late] = wait_for(lambda: at_audit("late"), 6)
    assert (late["monitor"], late["status"]) == ("a", "late")
    [held] = wait_for(lambda: at_audit("held"), 6)
    assert (held["status"], held["held_by"]) == ("down", "threshold")
    wait_for(lambda: webhook_sink.delivered("down", "a"), 8)

    def paths(event: str) -> list[str]:
        return [r.path for r in webhook_sink.received() if r.payload()["event"] == event]

    # The default channel hears neither late nor held; audit hears no down.
    assert (paths("late"), paths("held"), paths("down")) == (["/audit"], ["/audit"], ["/"])
