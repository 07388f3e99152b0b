"""Shared plumbing for the bench scripts: run heartbeatd as a subprocess and watch it.

Not a benchmark by itself; `ping_load.py` and `scale.py` import it (run them
from anywhere: `python bench/ping_load.py ...`, the script's own directory is
on sys.path).

Everything here talks only to 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Runs the daemon exactly as `heartbeatd run -c FILE` does, with one switch:
# "asyncio" hides uvloop (the CLI then keeps the default loop), "uvloop" fails
# early if uvloop cannot be imported, "auto" lets the CLI decide.
LAUNCHER = """\
import sys
mode, config = sys.argv[1], sys.argv[2]
if mode == "asyncio":
    sys.modules["uvloop"] = None
elif mode == "uvloop":
    import uvloop  # noqa: F401
from heartbeatd.cli import main
main(["run", "-c", config], prog_name="heartbeatd")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uvloop_importable() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def write_config(
    path: Path,
    *,
    port: int,
    db: Path,
    monitors: Iterable[tuple[str, dict[str, str | int | list[str]]]],
    synchronous: str = "full",
    ping_history: int = 10_000_000,
    channels: dict[str, dict[str, str]] | None = None,
) -> int:
    """Write a config; monitor values are TOML-quoted as needed. Returns the count."""
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "",
        "[storage]",
        f'path = "{db}"',
        f"ping_history = {ping_history}",
        f'synchronous = "{synchronous}"',
        "",
        "[defaults]",
        'grace = "5m"',
        "channels = []",
        "",
    ]
    for name, options in (channels or {}).items():
        lines.append(f"[channels.{name}]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in options.items())
        lines.append("")
    count = 0
    for slug, options in monitors:
        lines.append(f"[monitors.{slug}]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in options.items())
        count += 1
    path.write_text("\n".join(lines) + "\n")
    return count


def _toml(value: str | int | list[str]) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"'


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    data = Path(f"/proc/{pid}/stat").read_text()
    rest = data[data.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_uses_uvloop(pid: int) -> bool:
    """Whether uvloop's extension module is mapped into the process."""
    try:
        return "uvloop" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def http_get(port: int, path: str, timeout: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def count_rows(db: Path, table: str = "pings") -> int:
    """A read-only count; works while the daemon runs (WAL)."""
    uri = db.absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@dataclass
class LogLine:
    at: float  # time.monotonic() when the line was read
    text: str


@dataclass
class NotifyMessage:
    at: float
    text: str


class NotifySocket:
    """A stand-in for systemd's NOTIFY_SOCKET: records every datagram with its time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[NotifyMessage] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append(NotifyMessage(time.monotonic(), data.decode()))
                self._cond.notify_all()

    def wait_for(self, field: str, after: int, timeout: float) -> NotifyMessage | None:
        """The first message from index `after` on holding the line `field`."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.messages[after:]:
                    if field in msg.text.splitlines():
                        return msg
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@dataclass
class Daemon:
    """heartbeatd run as a subprocess, pinned to `cores`."""

    config: Path
    workdir: Path
    loop: str = "auto"
    cores: Sequence[int] = (0,)
    notify: NotifySocket | None = None
    cprofile: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    spawned_at: float = 0.0
    lines: list[LogLine] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        launcher = self.workdir / "launch_heartbeatd.py"
        launcher.write_text(LAUNCHER)
        cmd = [sys.executable]
        if self.cprofile is not None:
            cmd += ["-m", "cProfile", "-o", str(self.cprofile)]
        cmd += [str(launcher), self.loop, str(self.config)]
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        env.pop("NOTIFY_SOCKET", None)
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = str(self.notify.path)
        cores = set(self.cores)
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            # Set before exec, so every thread the daemon starts inherits it.
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with open(self.workdir / "daemon.log", "a") as out:
            for raw in self.proc.stderr:
                text = raw.decode(errors="replace").rstrip("\n")
                out.write(text + "\n")
                with self._cond:
                    self.lines.append(LogLine(time.monotonic(), text))
                    self._cond.notify_all()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_healthy(self, port: int, timeout: float = 120.0, poll: float = 0.01) -> float:
        """Seconds from spawn to the first 200 from /healthz."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(port, "/healthz", timeout=2) == 200:
                    return time.monotonic() - self.spawned_at
            time.sleep(poll)
        raise RuntimeError(f"no /healthz 200 within {timeout}s:\n{self.tail()}")

    def wait_log(self, pattern: str, after: int = 0, timeout: float = 60.0) -> LogLine | None:
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if regex.search(line.text):
                        return line
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def first_log(self, pattern: str) -> LogLine | None:
        regex = re.compile(pattern)
        with self._cond:
            return next((line for line in self.lines if regex.search(line.text)), None)

    def tail(self, n: int = 20) -> str:
        with self._cond:
            return "\n".join(line.text for line in self.lines[-n:])

    def stop(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; (exit code, seconds to exit). SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        return code, time.monotonic() - t0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN when empty."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))
    return values[rank]
