"""What `heartbeatd exec` was asked to do: the monitor's URL and the options."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

from heartbeatd import pingurl

DEFAULT_TAIL = 10000


class Action(str, Enum):
    """The ping an ending sends, as runitor's --on-* options name them."""

    # A plain success ping, whatever the exit status.
    SUCCESS = "success"
    # /fail: down at once.
    FAIL = "fail"
    # /log: recorded with its output, no change of status.
    LOG = "log"
    # /<exit status>: 0 is a success, anything else a failure.
    EXIT_CODE = "exit-code"


@dataclass(frozen=True)
class ExecOptions:
    # The monitor's ping URL, e.g. http://127.0.0.1:8080/ping/nightly-backup.
    url: str
    # Seconds one ping request may take.
    timeout: float = 10.0
    # Seconds one ping may take in all, retries and their backoff included:
    # the most the start ping can delay the job.
    ping_timeout: float = 5.0
    # Extra attempts per ping after the first, on 5xx, timeouts and connection errors.
    retries: int = 3
    # Bytes of output tail to send when the server does not say (Ping-Body-Limit).
    tail_default: int = DEFAULT_TAIL
    # Send `/start` before the job (it measures the run and arms max_runtime).
    start_ping: bool = True
    # Send the output's tail with the finishing ping.
    send_output: bool = True
    # Which ping each ending sends (see Action): a success, a non-zero exit
    # status, and a command that could not be run at all.
    on_success: Action = Action.EXIT_CODE
    on_nonzero_exit: Action = Action.EXIT_CODE
    on_exec_fail: Action = Action.FAIL
    # Extra request headers for every ping: (name, value).
    headers: tuple[tuple[str, str], ...] = ()
    # Copy the job's stdout / stderr to ours (the tail is captured either way).
    copy_stdout: bool = True
    copy_stderr: bool = True
    # Print our own warnings (an unreachable server) on stderr.
    warnings: bool = True
    # Seconds from one run's start to the next (--every); None runs it once.
    every: float | None = None


def build_url(
    *,
    url: str | None,
    slug: str | None,
    server: str | None,
    ping_key: str | None,
    env_url: str | None = None,
) -> str:
    """The monitor's ping URL from `--url`, or from `--slug`, `--server` and `--ping-key`.

    `env_url` (HEARTBEATD_URL) is used only when no option names the monitor, so
    options given on the command line win over the environment.
    """
    if url is not None and (slug is not None or server is not None):
        raise ValueError("give either --url or --slug with --server, not both")
    if url is None and slug is None and server is None:
        url = env_url
    if url is not None:
        if ping_key is not None:
            raise ValueError(
                "--ping-key goes with --slug and --server; with --url, put it in the URL"
            )
        return _check_http_url(url, "--url")
    if slug is None or server is None:
        if slug is None and server is None:
            raise ValueError(
                "no monitor given: use --url URL (or HEARTBEATD_URL),"
                " or --slug SLUG with --server URL"
            )
        raise ValueError("--slug and --server go together; give both")
    if not slug or "/" in slug:
        raise ValueError(f"--slug must be a monitor's slug, got {slug!r}")
    base = _check_http_url(server, "--server")
    # An empty --ping-key is no key, as in the environment of a cron job.
    target = pingurl.PingTarget(pingurl.By.SLUG, slug, ping_key=ping_key or None)
    return pingurl.build(base, target)


def _check_http_url(url: str, option: str) -> str:
    parts = urlsplit(url.strip())
    # Name only the scheme: the rest of a ping URL may hold a ping key.
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"{option} must start with http:// or https://, got scheme {parts.scheme!r}"
        )
    if not parts.hostname:
        raise ValueError(f"{option} has no host name")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))
