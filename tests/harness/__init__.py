"""What tests build heartbeatd with and talk to it through.

- net.py: `free_port`, `http` (one plain request), `wait_for` / `assert_never`
  (polling, every POLL seconds, for real processes).
- sink.py: `WebhookSink`, the one webhook receiver (its own thread), for
  channel, delivery, CLI and end-to-end tests.
- inprocess.py: `open_stack` (config -> store -> engine, and `.app()`) and
  `start_daemon` / `stop_daemon` / `settle`, all on the test's FakeClock;
  `advance_until_done` to let a timeout on the clock pass.
- process.py: `DaemonProcess`, the daemon as a subprocess.

The fixtures over these live in tests/conftest.py; sample data in tests/samples.py.
"""

from tests.harness.inprocess import (
    PROMPT,
    Stack,
    advance_until_done,
    healthy,
    open_stack,
    settle,
    start_daemon,
    stop_daemon,
)
from tests.harness.net import (
    POLL,
    START_TIMEOUT,
    Answer,
    assert_never,
    free_port,
    http,
    parse_time,
    utcnow,
    wait_for,
)
from tests.harness.process import DaemonProcess
from tests.harness.sink import Received, WebhookSink

__all__ = [
    "POLL",
    "PROMPT",
    "START_TIMEOUT",
    "Answer",
    "DaemonProcess",
    "Received",
    "Stack",
    "WebhookSink",
    "advance_until_done",
    "assert_never",
    "free_port",
    "healthy",
    "http",
    "open_stack",
    "parse_time",
    "settle",
    "start_daemon",
    "stop_daemon",
    "utcnow",
    "wait_for",
]
