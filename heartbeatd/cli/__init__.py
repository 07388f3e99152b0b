"""The `heartbeatd` command. The only package that installs signal handlers.

What lives where (the command modules import only app.py, never each other;
import-linter keeps it so):

    __init__.py  the click group `main`, which gathers the commands below
    app.py       what they share: -c/--config and the default path, exit
                 codes, logging set-up, reading the config or failing with
                 its errors
    serve.py     run (installs SIGTERM, SIGINT and SIGHUP handlers), check,
                 reload (signals the daemon and waits for its answer)
    remote.py    status, pause, resume, history, snooze, unsnooze, ack: the commands that talk to a
                 running daemon through its API, and how they log in to it
    jobs.py      exec, and its forwarding of signals to the job
    admin.py     test-alert, hash-password, verify-db
    export.py    export (the monitors created through the API, as TOML)
    importing.py import crontab, import timers: monitors for existing jobs
"""

from __future__ import annotations

import click

from heartbeatd import __version__
from heartbeatd.cli import admin, export, importing, jobs, remote, serve


@click.group()
@click.version_option(__version__, prog_name="heartbeatd")
def main() -> None:
    """heartbeatd: a self-hosted dead man's switch for cron jobs and scripts."""


for _command in (
    serve.run,
    serve.check,
    serve.reload_command,
    remote.status,
    remote.pause,
    remote.resume,
    remote.history,
    remote.snooze,
    remote.unsnooze,
    remote.ack,
    jobs.exec_command,
    admin.test_alert,
    admin.verify_db,
    admin.hash_password,
    export.export,
    importing.import_group,
):
    main.add_command(_command)

__all__ = ["main"]
