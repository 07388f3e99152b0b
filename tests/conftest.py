"""Fixtures every test can take; what they build is in tests/harness/.

- `clock`: a FakeClock at samples.NOW.
- `make_stack(config_text)`: config -> store -> engine on `clock` (closed after the test);
  `make_client(config_text, **app_options)`: an aiohttp test client on the
  daemon's web app over such a stack (`client.stack`, `.engine`, `.store`).
- `make_daemon(path)`: the whole daemon in-process on `clock` (stopped after the test).
- `webhook_sink`: a real webhook receiver; `daemon`: the daemon as a subprocess.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from heartbeatd.clock import FakeClock
from heartbeatd.daemon import Daemon
from tests.harness import (
    DaemonProcess,
    Stack,
    WebhookSink,
    open_stack,
    start_daemon,
    stop_daemon,
)
from tests.samples import NOW

__all__ = ["NOW"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not started by systemd: nothing to notify, no watchdog."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)


# -- in-process, on the FakeClock -------------------------------------------------------


@pytest.fixture
async def make_stack(
    tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    stacks: list[Stack] = []

    async def make(config: str, *, name: str = "heartbeatd.toml") -> Stack:
        path = tmp_path / name
        path.write_text(textwrap.dedent(config))
        stack = await open_stack(path, clock)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        await stack.close()


@pytest.fixture
async def make_client(
    make_stack: Callable[..., Awaitable[Stack]], aiohttp_client: Callable[..., Any]
) -> Callable[..., Awaitable[TestClient]]:
    async def make(config: str, **app_options: Any) -> TestClient:
        stack = await make_stack(config)
        client = await aiohttp_client(stack.app(**app_options))
        client.stack, client.engine, client.store = stack, stack.engine, stack.store
        return client

    return make


@pytest.fixture
async def make_daemon(
    clock: FakeClock, no_systemd: None
) -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    """Start daemons with `await make_daemon(config_path)`; a test stops one
    with `stop_daemon(daemon, clock)`, and the others are stopped after it."""
    running: list[Daemon] = []

    async def make(path: Path, **kwargs: Any) -> Daemon:
        daemon = await start_daemon(path, clock, **kwargs)
        running.append(daemon)
        return daemon

    yield make
    for daemon in running:
        await stop_daemon(daemon, clock)


# -- real servers and processes ------------------------------------------------------


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    yield sink
    sink.stop()


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
