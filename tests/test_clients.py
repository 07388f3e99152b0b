"""Healthchecks ping clients from PyPI, unchanged, against the daemon as a
subprocess: each client pings as its users would, and the monitor's state,
run duration and stored pings (kind, body) must show what the client meant.

- healthchecks-decorator: `@healthcheck(url=..., send_start=..., send_diagnostics=...)`
- healthchecks-wrapper: `with HealthCheck(url):` and `async with HealthCheck(url):`
- health-ping: `HealthPing(url, ...).fire()`
- runitor (a Go binary, on neither PyPI nor Debian): when one is on PATH.

The clients sit in the `test` extra. Each ping is synchronous (urllib), so
when a client call returns, the daemon has answered and recorded the ping.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from health_ping import HealthPing
from healthchecks_decorator import healthcheck
from healthchecks_wrapper import HealthCheck

from tests.harness import DaemonProcess

# How long the wrapped jobs take: long enough to tell a measured run duration
# from none, short enough for the suite.
JOB_SECONDS = 0.2
UUID = "0f9c4d6e-2b7a-4e1c-9d3f-5a8b7c6d5e4f"
RUNITOR_UUID = "6b1e3c9a-8d2f-4a7b-b5c4-1e0d9f8a7b6c"
MONITORS = "".join(
    f'[monitors.{slug}]\nperiod = "1h"\ngrace = "1h"\n{extra}\n'
    for slug, extra in [
        ("decorated", f'uuid = "{UUID}"\n'),
        ("decorated-fail", ""),
        ("wrapped", ""),
        ("wrapped-fail", ""),
        ("wrapped-async", ""),
        ("health-ping", ""),
        ("health-ping-get", ""),
        ("health-ping-fail", ""),
        ("runitor", f'uuid = "{RUNITOR_UUID}"\n'),
    ]
)


@pytest.fixture(scope="module")
def hb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # One daemon for the module: every test has monitors of its own.
    process = DaemonProcess(tmp_path_factory.mktemp("clients"))
    process.write_config(MONITORS)
    try:
        process.start()
        yield process
    finally:
        process.kill()
        print(f"==== daemon log ====\n{process.log()}")
    assert "Traceback" not in process.log()


def pings(hb: DaemonProcess, slug: str) -> list[tuple[str, str]]:
    """(kind, body) of the monitor's stored pings, oldest first."""
    return [(p["kind"], p["body"]) for p in reversed(hb.api(f"monitors/{slug}/pings")["pings"])]


def job(result: Any = None, error: Exception | None = None) -> Any:
    time.sleep(JOB_SECONDS)
    if error is not None:
        raise error
    return result


# -- healthchecks-decorator --------------------------------------------------------------


def test_the_decorator_reports_a_run_with_its_start_and_its_result(hb: DaemonProcess) -> None:
    @healthcheck(url=f"{hb.base_url}/ping/{UUID}", send_start=True, send_diagnostics=True)
    def backup() -> dict[str, int]:
        return job({"tables": 3, "rows": 120})

    assert hb.monitor("decorated")["status"] == "new"
    assert backup() == {"tables": 3, "rows": 120}

    monitor = hb.monitor("decorated")
    assert (monitor["status"], monitor["n_pings"]) == ("up", 2)
    assert monitor["started_at"] is None
    assert monitor["last_duration"] >= JOB_SECONDS
    # send_diagnostics: the return value, form-encoded, as the success body.
    assert pings(hb, "decorated") == [("start", ""), ("success", "tables=3&rows=120")]


def test_the_decorator_reports_an_exception_as_a_failure(hb: DaemonProcess) -> None:
    @healthcheck(url=f"{hb.base_url}/ping/decorated-fail", send_start=True)
    def backup() -> None:
        job(error=RuntimeError("disk full"))

    with pytest.raises(RuntimeError, match="disk full"):
        backup()

    monitor = hb.monitor("decorated-fail")
    assert (monitor["status"], monitor["reason"]) == ("down", "failed")
    assert monitor["last_duration"] >= JOB_SECONDS
    assert [kind for kind, _ in pings(hb, "decorated-fail")] == ["start", "fail"]


# -- healthchecks-wrapper ----------------------------------------------------------------


def test_the_wrapper_reports_start_then_success(hb: DaemonProcess) -> None:
    with HealthCheck(f"{hb.base_url}/ping/wrapped"):
        job()
        # Inside the block the run has started and nothing else has happened.
        monitor = hb.monitor("wrapped")
        assert (monitor["status"], monitor["n_pings"]) == ("new", 1)
        assert monitor["started_at"] is not None

    monitor = hb.monitor("wrapped")
    assert (monitor["status"], monitor["started_at"]) == ("up", None)
    assert monitor["last_duration"] >= JOB_SECONDS
    assert pings(hb, "wrapped") == [("start", ""), ("success", "")]


def test_the_wrapper_sends_the_traceback_with_the_failure(hb: DaemonProcess) -> None:
    with pytest.raises(ValueError), HealthCheck(f"{hb.base_url}/ping/wrapped-fail"):
        job(error=ValueError("no space left on /backup"))

    monitor = hb.monitor("wrapped-fail")
    assert (monitor["status"], monitor["reason"]) == ("down", "failed")
    (start, _), (fail, body) = pings(hb, "wrapped-fail")
    assert (start, fail) == ("start", "fail")
    assert body.startswith("Traceback (most recent call last):")
    assert body.rstrip().endswith("ValueError: no space left on /backup")


def test_the_wrapper_as_an_async_context_manager(hb: DaemonProcess) -> None:
    async def run() -> None:
        async with HealthCheck(f"{hb.base_url}/ping/wrapped-async"):
            await asyncio.sleep(JOB_SECONDS)

    asyncio.run(run())

    monitor = hb.monitor("wrapped-async")
    assert (monitor["status"], monitor["n_pings"]) == ("up", 2)
    assert monitor["last_duration"] >= JOB_SECONDS
    assert pings(hb, "wrapped-async") == [("start", ""), ("success", "")]


# -- health-ping -------------------------------------------------------------------------


def test_health_ping_fires_a_success_with_its_body(hb: DaemonProcess) -> None:
    client = HealthPing(
        f"{hb.base_url}/ping/health-ping",
        method="POST",
        body=b"queue depth 0",
        headers={"Content-Type": "text/plain"},
    )
    client.fire()

    assert client.result.success, client.result.data
    assert client.result.data == "OK"
    monitor = hb.monitor("health-ping")
    assert (monitor["status"], monitor["n_pings"]) == ("up", 1)
    assert pings(hb, "health-ping") == [("success", "queue depth 0")]


def test_health_ping_with_its_defaults(hb: DaemonProcess) -> None:
    # method="GET", body={}: what a user who passes only the URL sends.
    client = HealthPing(f"{hb.base_url}/ping/health-ping-get")
    client.fire()

    assert client.result.success, client.result.data
    assert hb.monitor("health-ping-get")["status"] == "up"
    assert pings(hb, "health-ping-get") == [("success", "")]


def test_health_ping_to_a_fail_url_marks_the_monitor_down(hb: DaemonProcess) -> None:
    HealthPing(f"{hb.base_url}/ping/health-ping", method="POST", body=b"ok").fire()
    client = HealthPing(
        f"{hb.base_url}/ping/health-ping-fail/fail", method="POST", body=b"3 replicas behind"
    )
    client.fire()

    assert client.result.success, client.result.data
    monitor = hb.monitor("health-ping-fail")
    assert (monitor["status"], monitor["reason"]) == ("down", "failed")
    assert pings(hb, "health-ping-fail") == [("fail", "3 replicas behind")]


# -- runitor -----------------------------------------------------------------------------

RUNITOR = shutil.which("runitor")


@pytest.mark.skipif(
    RUNITOR is None,
    reason="no runitor binary on PATH (it is a Go program on neither PyPI nor Debian;"
    " put one on PATH to run this test)",
)
def test_runitor_reports_start_and_the_exit_status_with_the_output(hb: DaemonProcess) -> None:
    assert RUNITOR is not None
    done = subprocess.run(
        [
            RUNITOR,
            "-api-url",
            f"{hb.base_url}/ping",
            "-uuid",
            RUNITOR_UUID,
            "--",
            "sh",
            "-c",
            "echo rotated 4 logs; exit 3",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    # runitor passes the command's exit status on.
    assert done.returncode == 3, done.stdout + done.stderr

    monitor = hb.monitor("runitor")
    assert (monitor["status"], monitor["reason"]) == ("down", "exit_status")
    assert monitor["last_exit_status"] == 3
    assert monitor["last_duration"] is not None
    # /start, then /3 with the command's output as the body.
    (start, _), (fail, body) = pings(hb, "runitor")
    assert (start, fail) == ("start", "fail")
    assert "rotated 4 logs" in body
