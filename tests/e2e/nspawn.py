"""A Debian 12 container with systemd as PID 1, for tests of the real unit.

`debian_rootfs()` builds a bookworm tree with mmdebstrap once and keeps it as
a tarball in CACHE, named by a hash of what went into it; `Container` boots a
fresh copy with `systemd-nspawn -b` and runs commands inside it with
`nsenter`. The host need not run systemd: `--register=no --keep-unit` keep
nspawn away from machined and the host's service manager, so `machinectl`
and `systemd-run -M` cannot reach the container, and nsenter into its PID 1's
namespaces can. `--private-network` gives it a loopback interface only.

Every failure to get that far raises `CannotBoot`, with the reason: the test
skips then, and says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("SYSTEMD_TEST_CACHE", "/var/cache/heartbeatd-ci"))
SUITE = "bookworm"
# procps: ExecReload=/bin/kill; every Debian install but minbase has it.
PACKAGES = ("systemd", "dbus", "python3", "python3-venv", "curl", "procps")
# Bump to rebuild cached trees after changing how they are made.
ROOTFS_FORMAT = 1
BUILD_TIMEOUT = 480.0
BOOT_TIMEOUT = 90.0
# The container's Python (bookworm's 3.11) and C library (glibc 2.36), for wheels.
CONTAINER_PYTHON = "3.11"
CONTAINER_GLIBC_MINOR = 36
# nspawn's exit status when the container asked for a reboot.
EXIT_REBOOT = 133
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "-q")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CannotBoot(Exception):
    """This host cannot build or boot the container; the message says why."""


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# -- what goes in ---------------------------------------------------------------------


def preflight() -> None:
    """Raise CannotBoot unless this host can try at all."""
    if not sys.platform.startswith("linux"):
        raise CannotBoot(f"systemd-nspawn needs Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        raise CannotBoot("systemd-nspawn and mmdebstrap need root")
    missing = [t for t in ("systemd-nspawn", "mmdebstrap", "nsenter") if not shutil.which(t)]
    if missing:
        raise CannotBoot(
            f"{', '.join(missing)} not installed (apt-get install systemd-container mmdebstrap)"
        )
    if not Path("/sys/fs/cgroup").is_dir() or not any(Path("/sys/fs/cgroup").iterdir()):
        raise CannotBoot("no cgroup file system mounted at /sys/fs/cgroup")


@contextlib.contextmanager
def cache_locked() -> Iterator[None]:
    """Two test runs at once build a cached thing once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def debian_rootfs() -> Path:
    """The cached bookworm tarball, built first if need be (about a minute)."""
    recipe = {"suite": SUITE, "variant": "minbase", "packages": PACKAGES, "v": ROOTFS_FORMAT}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    tarball = CACHE / f"{SUITE}-{key}.tar"
    with cache_locked():
        if tarball.exists():
            return tarball
        partial = tarball.with_suffix(".partial.tar")
        command = [
            "mmdebstrap",
            "--mode=root",
            "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            '--aptopt=Acquire::Retries "3"',
            SUITE,
            str(partial),
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            partial.unlink(missing_ok=True)
            raise CannotBoot(f"mmdebstrap took longer than {BUILD_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise CannotBoot(
                f"mmdebstrap failed (is the Debian mirror reachable?):\n{tail(done.stderr)}"
            )
        partial.replace(tarball)
        return tarball


def build_wheels(repo: Path, into: Path) -> list[Path]:
    """heartbeatd's wheel and its dependencies' wheels for the container's
    Python, whatever Python runs the tests: the container has no network, so
    pip installs there with --no-index from these. The dependencies are kept
    in CACHE, named by a hash of pyproject.toml."""
    source = into / "source"
    # A copy: building writes build/ and *.egg-info next to the sources.
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, source / name)
    shutil.copytree(
        repo / "heartbeatd", source / "heartbeatd", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = into / "wheels"
    _run([*PIP, "wheel", "--no-deps", "-w", str(wheels), str(source)], 300)
    [own] = wheels.glob("heartbeatd-*.whl")
    key = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest()[:16]
    deps = CACHE / f"wheels-cp{CONTAINER_PYTHON.replace('.', '')}-{key}"
    with cache_locked():
        if not deps.is_dir():
            _download_dependencies(own, deps)
    for wheel in deps.glob("*.whl"):
        shutil.copy2(wheel, wheels / wheel.name)
    return sorted(wheels.glob("*.whl"))


# Dependencies PyPI has no wheel of (oncalendar 1.1); .ci/build-pyz builds
# them the same way.
SDIST_ONLY = ("oncalendar",)


def _download_dependencies(own: Path, deps: Path) -> None:
    """Wheels of what `own` needs, for CPython CONTAINER_PYTHON on glibc Linux."""
    partial = deps.with_name(deps.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tag = "cp" + CONTAINER_PYTHON.replace(".", "")
    platforms = []
    for minor in range(CONTAINER_GLIBC_MINOR, 4, -1):
        platforms += ["--platform", f"manylinux_2_{minor}_x86_64"]
    platforms += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]
    # A download for another platform takes wheels only; these pure-Python
    # dependencies come from PyPI as sdists alone, so they are built here.
    pure = deps.with_name(deps.name + ".sdists")
    shutil.rmtree(pure, ignore_errors=True)
    _run([*PIP, "wheel", "--no-deps", "-w", str(pure), *SDIST_ONLY], 300)
    _run(
        [
            *PIP,
            "download",
            "--only-binary=:all:",
            *("--find-links", str(pure)),
            *platforms,
            *("--python-version", CONTAINER_PYTHON, "--implementation", "cp", "--abi", tag),
            *("-d", str(partial), str(own)),
        ],
        300,
    )
    (partial / own.name).unlink()
    partial.replace(deps)
    shutil.rmtree(pure, ignore_errors=True)


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{tail(done.stderr, 30)}")


# -- the container --------------------------------------------------------------------


class Container:
    """One booted container; `boot()` it, `run()` in it, `stop()` it."""

    def __init__(self, root: Path, name: str, log_path: Path) -> None:
        self.root = root
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1 = 0
        self.boots = 0

    @classmethod
    @contextlib.contextmanager
    def unpacked(cls, tarball: Path, work: Path) -> Iterator[Container]:
        """A fresh tree from `tarball` under `work`, removed afterwards."""
        root = Path(tempfile.mkdtemp(prefix="heartbeatd-nspawn-", dir=work))
        try:
            # --numeric-owner: the tree's system users are not the host's.
            _run(["tar", "--numeric-owner", "-C", str(root), "-xf", str(tarball)], 120)
            # A machine name allows only letters, digits, "-" and ".".
            name = f"heartbeatd-ci-{os.getpid()}"
            yield cls(root, name, work / f"{name}.log")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def boot(self) -> None:
        assert self.proc is None, "already booted"
        self.boots += 1
        command = [
            "systemd-nspawn",
            "--quiet",
            "-D",
            str(self.root),
            f"--machine={self.name}",
            "-b",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--console=pipe",
        ]
        if shutil.which("setpriv"):
            # Should the test run itself be killed, the container goes too.
            command = ["setpriv", "--pdeathsig", "TERM", *command]
        with self.log_path.open("ab") as log:
            log.write(f"---- boot {self.boots} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + BOOT_TIMEOUT
        self.pid1 = self._wait_for_init(deadline)
        # systemctl cannot connect until PID 1 has set up its socket; then
        # --wait waits for the boot to finish.
        while True:
            left = deadline - time.monotonic()
            state = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=max(1.0, left)
            )
            if state.stdout.strip() in ("running", "degraded"):
                return
            if left <= 0 or self.proc.poll() is not None:
                failed = self.run("systemctl", "--failed", "--no-legend", check=False)
                raise CannotBoot(
                    f"the container's systemd did not finish booting:"
                    f" {state.stdout.strip()} {state.stderr.strip()}\n{failed.stdout}"
                    f"\n{tail(self.log())}"
                )
            time.sleep(0.2)

    def _wait_for_init(self, deadline: float) -> int:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise CannotBoot(f"systemd-nspawn exited at boot:\n{tail(self.log())}")
            with contextlib.suppress(OSError):
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            time.sleep(0.1)
        raise CannotBoot(
            f"no systemd in the container after {BOOT_TIMEOUT:.0f}s:\n{tail(self.log())}"
        )

    def run(
        self, *command: str, check: bool = True, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`command` inside the container (its namespaces, root, a clean environment)."""
        assert self.pid1, "not booted"
        env = ["env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8", "SYSTEMD_COLORS=0"]
        done = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", *env, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode} in the container:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def sh(self, script: str, *, check: bool = True, timeout: float = 60.0) -> str:
        """A shell script inside the container; its stdout."""
        return self.run(
            "bash", "-euo", "pipefail", "-c", script, check=check, timeout=timeout
        ).stdout

    def write(self, path: str, text: str) -> None:
        self.run("tee", path, input=text)

    def reboot(self, timeout: float = 60.0) -> None:
        """`systemctl reboot` inside; nspawn exits asking for one; boot again."""
        assert self.proc is not None
        # The command may die with the container before it answers.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run("systemctl", "reboot", check=False, timeout=timeout)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the container did not shut down for the reboot within "
                f"{timeout:g}s:\n{tail(self.log())}"
            ) from None
        assert code == EXIT_REBOOT, f"nspawn exited {code}, not {EXIT_REBOOT}: {tail(self.log())}"
        self.proc, self.pid1 = None, 0
        self.boot()

    def stop(self, timeout: float = 30.0) -> None:
        """Halt the container (SIGTERM to nspawn); force it after `timeout`."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Killing a PID namespace's init kills everything in it.
            with contextlib.suppress(ProcessLookupError):
                if self.pid1:
                    os.kill(self.pid1, signal.SIGKILL)
                proc.kill()
            proc.wait(10)
        self.pid1 = 0

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
