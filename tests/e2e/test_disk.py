"""The database on a real filesystem that fills up.

A tiny tmpfs holds the database (root only; skipped where mounting is not
allowed). Pings answer 503 while nothing can be written, so `curl --retry`
tries again; the daemon logs the cause, keeps running, and recovers by itself
once the disk takes writes again. A flip that could not be stored is not
lost: its alert goes out when the ping is retried.

(A read-only filesystem takes the same path, any failed SQLite write; Linux
refuses to remount a filesystem read-only while the daemon holds its files
open for writing, so tests/test_engine.py and tests/test_web.py make writes
fail with a trigger instead.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import DaemonProcess, WebhookSink, http, wait_for

BODY = b"x" * 150_000


def mount(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["mount", *args], capture_output=True, check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0 or mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)).returncode:
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; return it."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as out:
        while True:
            out.write(b"\0" * 65536)
    return filler


def start(daemon: DaemonProcess, disk: Path, webhook_sink: WebhookSink) -> None:
    daemon.db_path = disk / "heartbeatd.db"
    daemon.write_raw_config(
        f'[server]\nlisten = "127.0.0.1:{daemon.port}"\n'
        f'[storage]\npath = "{daemon.db_path}"\nmax_body = 200000\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{webhook_sink.url}"\n'
        '[monitors.backup]\nperiod = "1h"\n'
    )
    daemon.start()


def test_a_full_disk_answers_503_and_recovers_without_losing_an_alert(
    daemon: DaemonProcess, disk: Path, webhook_sink: WebhookSink
):
    start(daemon, disk, webhook_sink)
    assert daemon.ping("backup").status == 200
    filler = fill(disk)

    # Bodies big enough that SQLite must grow its files: nothing fits now.
    answers = [daemon.ping("backup/fail", data=BODY).status for _ in range(3)]
    assert 503 in answers, answers
    daemon.wait_for_log("ping not stored monitor=backup")
    assert "full" in daemon.log()
    assert http(f"{daemon.base_url}/healthz").status == 503
    daemon.assert_running()
    assert webhook_sink.delivered("down") == []

    filler.unlink()
    # The client's retry now lands, and the flip it carries alerts once.
    wait_for(lambda: daemon.ping("backup/fail", data=b"disk was full").status == 200)
    wait_for(lambda: webhook_sink.delivered("down"), message="the down alert after recovery")
    assert len(webhook_sink.delivered("down")) == 1
    assert http(f"{daemon.base_url}/healthz").status == 200
