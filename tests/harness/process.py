"""The daemon as a subprocess: `python -m heartbeatd run` on a temp config,
database and port, with its stderr in a file."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness.net import START_TIMEOUT, Answer, free_port, http, wait_for
from tests.samples import config_text


class DaemonProcess:
    """`python -m heartbeatd run -c FILE` on a temp config, db and port."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.config_path = directory / "heartbeatd.toml"
        self.db_path = directory / "heartbeatd.db"
        self.log_path = directory / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self, monitors: str, **kwargs: Any) -> str:
        """A whole config on this daemon's port and database (samples.config_text)."""
        return config_text(monitors, port=self.port, db=self.db_path.name, **kwargs)

    def write_config(self, monitors: str, **kwargs: Any) -> Path:
        # A new inode: the daemon may read the file while we write.
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(self.config(monitors, **kwargs))
        tmp.replace(self.config_path)
        return self.config_path

    def write_raw_config(self, text: str) -> Path:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config_path)
        return self.config_path

    # -- process ------------------------------------------------------------------

    def start(self, *, env: dict[str, str] | None = None, wait: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "heartbeatd", "run", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.dir,
                env={**os.environ, **(env or {})},
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            self.assert_running()
            try:
                return http(self.base_url + "/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(ready, timeout, "the daemon to answer /healthz")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        assert code is None, f"the daemon exited with {code}:\n{self.log()}"

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, and the exit code (fails if it takes longer than `timeout`)."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 5.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the daemon did not exit within {timeout:g}s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(START_TIMEOUT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        def logged() -> bool:
            return text in self.log()

        wait_for(logged, timeout, f"{text!r} in the daemon's log")
        return self.log()

    # -- HTTP -----------------------------------------------------------------------

    def ping(self, path: str, *, data: bytes | None = None, method: str | None = None) -> Answer:
        return http(
            f"{self.base_url}/ping/{path}",
            data=data,
            method=method or ("POST" if data is not None else "GET"),
        )

    def api(self, path: str, *, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = http(f"{self.base_url}/api/v1/{path}", headers=headers)
        assert answer.status == 200, (answer.status, answer.text)
        return answer.json()

    def monitors(self) -> dict[str, Any]:
        return {m["slug"]: m for m in self.api("monitors")["monitors"]}

    def monitor(self, slug: str, *, token: str | None = None) -> Any:
        return self.api(f"monitors/{slug}", token=token)

    # -- the database (read-only: the daemon may be running) ------------------------

    def query(self, sql: str, *params: Any) -> list[Any]:
        uri = self.db_path.absolute().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            return db.execute(sql, params).fetchall()

    def stored_pings(self, slug: str) -> int:
        return int(self.query("SELECT count(*) FROM pings WHERE monitor = ?", slug)[0][0])
