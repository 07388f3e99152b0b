"""The daemon's memory with big ping bodies: a body is stored, not kept.

Every monitor's last body is in SQLite (the pings table); the daemon keeps only
its last few hundred characters in memory, so RSS does not grow with
monitors x `max_body`.
"""

from __future__ import annotations

from pathlib import Path

from tests.harness import DaemonProcess

MIB = 1024 * 1024
MONITORS = 30


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def test_it_keeps_ten_mib_bodies_of_thirty_monitors_out_of_memory(daemon: DaemonProcess):
    monitors = "".join(f'[monitors.job{n}]\nperiod = "1h"\n' for n in range(MONITORS))
    daemon.write_config(monitors, storage=f"max_body = {10 * MIB}")
    daemon.start()
    assert daemon.proc is not None
    for n in range(MONITORS):
        # Every body its own, as every job's output is.
        body = (f"job {n} output line\n".encode() * MIB)[: 10 * MIB]
        assert daemon.ping(f"job{n}", data=body).status == 200
    assert daemon.stored_pings("job29") == 1
    assert len(daemon.query("SELECT body FROM pings WHERE monitor = 'job7'")[0][0]) == 10 * MIB
    assert rss(daemon.proc.pid) < 100 * MIB
