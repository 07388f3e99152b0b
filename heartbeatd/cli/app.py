"""What every command shares: the config option and default path, exit
codes, logging set-up, and reading the config or failing with its errors."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from heartbeatd.config import Config, load_config
from heartbeatd.systemd import journal_logging
from heartbeatd.tables import ConfigError

DEFAULT_CONFIG = "/etc/heartbeatd/heartbeatd.toml"

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    envvar="HEARTBEATD_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    show_envvar=True,
    help="The TOML config file.",
)

# Exit codes of `heartbeatd check` / `run` for a bad config, as in the docs.
EXIT_CONFIG = 2
# `heartbeatd reload`: no daemon to ask, or no answer from it.
EXIT_NO_ANSWER = 1
# `status`, `history`, `pause`, `resume`: a monitor is down; nothing answers at
# the daemon's address; the daemon refused (401, 403, 404).
EXIT_DOWN = 1
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4


class JournalFormatter(logging.Formatter):
    """No timestamps (journald adds them); a <N> syslog prefix sets the priority."""

    PRIORITY = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{self.PRIORITY.get(record.levelno, 6)}>"
        return prefix + super().format(record)


class ClientErrorFilter(logging.Filter):
    """aiohttp logs at error level, with a traceback, every request it cannot
    parse, and every body that fails to decode (bad gzip, a broken chunk),
    raised again when it reads what a handler left of the body, on any URL:
    any client could flood the journal. Such a record becomes one debug line,
    shown only with -v."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, (HttpProcessingError, RequestPayloadError)):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # aiohttp's messages span lines ("400, message:\n  Can not decode ...").
        record.msg, record.args = "bad request from a client: %s", (" ".join(str(exc).split()),)
        record.exc_info = record.exc_text = None
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if journal_logging():
        handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # aiohttp logs each unhandled error itself; keep its access log quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorFilter) for f in server_log.filters):
        server_log.addFilter(ClientErrorFilter())


def fail_config(exc: ConfigError) -> NoReturn:
    for line in exc.problems:
        click.echo(line, err=True)
    sys.exit(EXIT_CONFIG)


def read_config(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail_config(exc)
