"""Grouping in the real daemon: 50 monitors failing within a second reach
aiosmtpd as one email listing all of them. Polls with timeouts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.harness import DaemonProcess, assert_never, free_port, wait_for
from tests.harness.smtp import SmtpSink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


def test_50_monitors_failing_in_one_second_send_one_email(
    daemon: DaemonProcess, smtp_sink: SmtpSink
) -> None:
    mail = (
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\nstarttls = false\n'
        'from = "heartbeatd <hb@example.com>"\n\n'
        '[channels.mail]\ntype = "email"\nto = ["ops@example.com"]\ngroup_wait = "5s"\n'
    )
    slugs = [f"job-{i:02d}" for i in range(50)]
    monitors = "".join(
        f'[monitors.{slug}]\nperiod = "1h"\ngrace = "1h"\nchannels = ["mail"]\n' for slug in slugs
    )
    daemon.write_config(monitors, channels=mail)
    daemon.start()
    started = time.monotonic()
    for slug in slugs:
        assert daemon.ping(f"{slug}/fail").status == 200
    assert time.monotonic() - started < 5, "the pings must land inside one window"
    [message] = wait_for(lambda: smtp_sink.messages, 20)
    assert message.message["Subject"] == "50 alerts: 50 down"
    body = message.message.get_content()
    for slug in slugs:
        assert f"\n{slug}:" in body, slug
    assert_never(lambda: len(smtp_sink.messages) > 1, 3, "a second email")
