"""heartbeatd.pyz, the single-file build (.ci/build-pyz), run the way the
README's "Single-file build" says: `python3 heartbeatd.pyz run -c FILE`.

Each CPython 3.10-3.13 found on this machine runs the one file from an empty
directory, with an empty environment and no site-packages (`env -i python -S`),
so nothing but the file can supply heartbeatd or its dependencies; a ping must
then change the monitor's state as the API reports it, and the compiled
extensions built for that version must be the ones loaded.

It runs where $TEST_PYZ names the file: .ci/run builds it once and sets
TEST_PYZ for the default Python's suite only, so one CI run starts it once
per CPython rather than once per CPython and suite. TEST_PYZ=build builds
the file here first (about a minute). Without TEST_PYZ these tests skip,
saying so; the real-systemd test still builds the file itself.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import free_port, http, wait_for
from tests.samples import config_text

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / ".ci" / "build-pyz"
# .ci/build-pyz exits with this when it could not fetch shiv or the wheels.
CANNOT_FETCH = 3
# The first run unpacks the archive's site-packages into $SHIV_ROOT.
FIRST_START_TIMEOUT = 60.0
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


def interpreters() -> list[str]:
    """Every CPython 3.10-3.13 here: the system's and pyenv's, once each."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found: dict[str, str] = {}
    for version in SUPPORTED:
        candidates = [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
        candidates += sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))
        for path in candidates:
            if os.access(path, os.X_OK):
                found.setdefault(os.path.realpath(path), path)
    return sorted(found.values()) or [sys.executable]


def interpreter_id(path: str) -> str:
    """pyenv-3.12.1, usr-bin-python3.11: which interpreter, in a test's name."""
    if "/versions/" in path:
        return "pyenv-" + path.split("/versions/", 1)[1].split("/", 1)[0]
    return path.strip("/").replace("/", "-")


# Why these tests skip without $TEST_PYZ, for -rs and the CI log.
NO_PYZ = (
    "runs heartbeatd.pyz with every CPython 3.10-3.13 found: runs where TEST_PYZ names"
    " the file (.ci/build-pyz OUTPUT), as .ci/run sets it for the default Python's"
    " suite only, or TEST_PYZ=build to build it here (about a minute)"
)


def obtain_pyz(directory: Path) -> Path:
    """The file $TEST_PYZ names, or else a new build in `directory` (skips if
    it cannot be fetched)."""
    given = os.environ.get("TEST_PYZ")
    if given and given != "build":
        assert Path(given).is_file(), f"TEST_PYZ={given} is not a file"
        return Path(given)
    out = directory / "heartbeatd.pyz"
    built = subprocess.run(
        [str(BUILD), str(out)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if built.returncode == CANNOT_FETCH:
        pytest.skip(f"shiv or the wheels could not be fetched: {built.stderr[-500:]}")
    assert built.returncode == 0, built.stdout + built.stderr
    return out


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.environ.get("TEST_PYZ"):
        pytest.skip(NO_PYZ)
    return obtain_pyz(tmp_path_factory.mktemp("pyz"))


class PyzDaemon:
    """`env -i python -S heartbeatd.pyz run -c heartbeatd.toml` in `directory`."""

    def __init__(self, python: str, pyz: Path, directory: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.dir = directory / "run"
        self.dir.mkdir()
        (self.dir / "heartbeatd.toml").write_text(
            config_text('[monitors.backup]\nperiod = "1h"\ngrace = "5m"\n', port=self.port)
        )
        self.log_path = directory / "daemon.log"
        env = {"PATH": "/usr/bin:/bin", "SHIV_ROOT": str(directory / "shiv")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [python, "-S", str(pyz), "run", "-c", "heartbeatd.toml"],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.log()}"
            try:
                return http(self.base_url + "/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(ready, FIRST_START_TIMEOUT, "heartbeatd.pyz to answer /healthz")

    def get(self, path: str) -> object:
        answer = http(self.base_url + path)
        assert answer.status == 200, (path, answer.status, answer.text)
        return answer.json()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(params=interpreters(), ids=interpreter_id)
def run_pyz(request: pytest.FixtureRequest, pyz: Path, tmp_path: Path) -> Iterator[PyzDaemon]:
    daemon = PyzDaemon(request.param, pyz, tmp_path)
    try:
        yield daemon
    finally:
        daemon.kill()
        print(f"==== heartbeatd.pyz log ====\n{daemon.log()}")


def test_it_runs_from_an_empty_directory_with_nothing_installed(run_pyz: PyzDaemon) -> None:
    run_pyz.wait_ready()
    assert run_pyz.get("/api/v1/monitors/backup")["status"] == "new"

    assert http(run_pyz.base_url + "/ping/backup/start").status == 200
    answer = http(run_pyz.base_url + "/ping/backup", data=b"dumped 3 tables", method="POST")
    assert answer.status == 200, answer.text

    monitor = run_pyz.get("/api/v1/monitors/backup")
    assert (monitor["status"], monitor["n_pings"]) == ("up", 2)
    assert monitor["last_duration"] > 0
    pings = run_pyz.get("/api/v1/monitors/backup/pings")["pings"]
    assert [(p["kind"], p["body"]) for p in pings] == [
        ("success", "dumped 3 tables"),
        ("start", ""),
    ]

    assert http(run_pyz.base_url + "/ping/backup/fail").status == 200
    assert run_pyz.get("/api/v1/monitors/backup")["status"] == "down"
    # The status page: templates read from the unpacked package, not the zip.
    page = http(run_pyz.base_url + "/")
    assert page.status == 200 and 'href="monitors/backup"' in page.text, page.text[:500]

    run_pyz.proc.send_signal(signal.SIGTERM)
    assert run_pyz.proc.wait(15) == 0, run_pyz.log()
    assert "Traceback" not in run_pyz.log()
    # The database is where the config says, next to it, not in the archive's cache.
    assert (run_pyz.dir / "hb.db").is_file()


@pytest.mark.parametrize("python", interpreters(), ids=interpreter_id)
def test_it_loads_the_compiled_extensions_built_for_each_python(
    python: str, pyz: Path, tmp_path: Path
) -> None:
    # The pure-Python fallbacks would also run, slower: the build must carry
    # the wheels of every supported version, and each picks its own.
    probe = (
        "import sys, aiohttp.http_parser as h, yarl._quoting as q, multidict, frozenlist\n"
        "assert h.HttpRequestParser is not h.HttpRequestParserPy, 'aiohttp parser'\n"
        "assert q._Quoter.__module__ == 'yarl._quoting_c', q._Quoter.__module__\n"
        "assert multidict.MultiDict.__module__ == 'multidict._multidict'\n"
        "assert frozenlist.FrozenList.__module__ == 'frozenlist._frozenlist'\n"
        "print(sys.version_info[:2])\n"
    )
    done = subprocess.run(
        [python, "-S", str(pyz), "-c", probe],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SHIV_ROOT": str(tmp_path / "shiv"), "SHIV_INTERPRETER": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_it_skips_saying_why_without_test_pyz(tmp_path: Path) -> None:
    # In CI only the default Python's suite has TEST_PYZ; the others must
    # skip at once, neither building the file nor starting it.
    env = {k: v for k, v in os.environ.items() if k != "TEST_PYZ"}
    args = ["-q", "-rs", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'run'}"]
    args += ["-k", "not test_it_skips_saying_why", __file__]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" not in done.stdout and " skipped" in done.stdout, done.stdout
    assert "TEST_PYZ=build to build it here" in done.stdout, done.stdout
