"""Escalation and acknowledgement in the real daemon: a subprocess, a
webhook receiver, and aiosmtpd for the mail whose link acknowledges. Polls
with timeouts, never fixed sleeps."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from heartbeatd.cli import main
from tests.harness import DaemonProcess, WebhookSink, assert_never, free_port, http, wait_for
from tests.harness.smtp import SmtpSink

SLOW = '[monitors.{slug}]\nperiod = "1h"\ngrace = "1h"\nchannels = {channels}\n'


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


def pager(sink: WebhookSink) -> str:
    return f'[channels.pager]\ntype = "webhook"\nurl = "{sink.url}/pager"\n'


def at_pager(sink: WebhookSink) -> list[dict[str, object]]:
    return [r.payload() for r in sink.received("/pager")]


def test_an_unacknowledged_down_escalates_after_the_wait_once_across_a_kill(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    channels = '["hook", {channel = "pager", after = "6s"}]'
    daemon.write_config(
        SLOW.format(slug="db", channels=channels),
        hook=webhook_sink.url,
        channels=pager(webhook_sink),
    )
    daemon.start()
    assert daemon.ping("db/fail").status == 200
    [down] = wait_for(lambda: webhook_sink.delivered("down", "db"), 5)
    sent = time.monotonic()
    assert down["ack_url"].startswith(f"{daemon.base_url}/ack/")
    assert at_pager(webhook_sink) == [], "the pager hears nothing but the escalation"
    # The due time is on disk: a kill -9 before it neither loses it nor
    # sends it twice.
    daemon.kill()
    daemon.start()
    assert_never(lambda: at_pager(webhook_sink), max(0.0, 4 - (time.monotonic() - sent)), "early")
    [escalation] = wait_for(lambda: at_pager(webhook_sink), 15)
    assert (escalation["event"], escalation["monitor"]) == ("escalation", "db")
    assert escalation["ack_url"] == down["ack_url"]
    assert_never(lambda: len(at_pager(webhook_sink)) > 1, 2, "one escalation only")
    # The hook heard the down alert alone (again, if the kill came before
    # its delivery was marked: at-least-once); only the pager escalates.
    assert {d["at"] for d in webhook_sink.delivered("down")} == {down["at"]}
    assert len(webhook_sink.delivered("escalation")) == 1


def test_no_escalation_after_an_ack_through_the_emailed_link(
    daemon: DaemonProcess, webhook_sink: WebhookSink, smtp_sink: SmtpSink
) -> None:
    mail = (
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\nstarttls = false\n'
        'from = "heartbeatd <hb@example.com>"\n\n'
        '[channels.mail]\ntype = "email"\nto = ["ops@example.com"]\n'
    )
    channels = '["mail", {channel = "pager", after = "8s"}]'
    daemon.write_config(
        SLOW.format(slug="db", channels=channels), channels=mail + pager(webhook_sink)
    )
    daemon.start()
    assert daemon.ping("db/fail").status == 200
    [message] = wait_for(lambda: smtp_sink.messages, 10)
    body = message.message.get_content()
    found = re.search(r"^Acknowledge:\s+(\S+)", body, re.MULTILINE)
    assert found is not None, body
    link = found.group(1)
    assert link.startswith(f"{daemon.base_url}/ack/")

    # What a mail scanner does: fetch the link. It shows a form, no more.
    page = http(link)
    assert page.status == 200
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    form = page.body.decode()
    assert '<form method="post">' in form
    token = re.search(r'name="token" value="([^"]+)"', form)
    assert token is not None and link.endswith("/ack/" + token.group(1))
    assert daemon.monitor("db")["acked_at"] is None

    # What a human does: press the button.
    data = urllib.parse.urlencode({"token": token.group(1), "by": "ana", "note": "on it"})
    done = http(
        link,
        method="POST",
        data=data.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status == 200, done.body
    shown = daemon.monitor("db")
    assert (shown["acked_by"], shown["ack_note"]) == ("ana", "on it")
    assert shown["acked_at"] is not None
    assert_never(lambda: at_pager(webhook_sink), 10, "an escalation after the ack")
    # The link now says who acknowledged.
    assert "Acknowledged by ana" in http(link).body.decode()


def test_the_cli_acks_through_the_write_api(
    daemon: DaemonProcess, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(
        SLOW.format(slug="db", channels='["hook"]'),
        hook=webhook_sink.url,
        server='api_token = "t0ken"',
    )
    daemon.config_path.chmod(0o600)
    daemon.start()
    config = str(daemon.config_path)
    assert daemon.ping("db/fail").status == 200
    wait_for(lambda: webhook_sink.delivered("down", "db"), 5)
    result = CliRunner().invoke(
        main, ["ack", "db", "--note", "disk full", "--by", "bo", "-c", config]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("db: acknowledged at ") and result.stdout.endswith(" by bo\n")
    shown = daemon.monitor("db", token="t0ken")
    assert (shown["acked_by"], shown["ack_note"]) == ("bo", "disk full")
