from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from heartbeatd.clock import FakeClock
from tests.e2e.conftest import DaemonProcess, WebhookSink

# A fixed "now" for tests: a Wednesday, away from any DST change.
NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


# The real daemon and a webhook receiver: for tests/e2e and the CLI tests.


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    receiver = WebhookSink().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path)
    try:
        yield process
    finally:
        process.kill()
        # Shown by pytest only when the test failed.
        print(f"==== daemon log ({process.log_path}) ====")
        print(process.log())
    # Whatever the test checked: a traceback in the log is a bug.
    assert "Traceback" not in process.log()
