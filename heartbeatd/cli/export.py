"""export: print the monitors created through the API as TOML tables."""

from __future__ import annotations

import sqlite3
import sys

import click

from heartbeatd.cli.app import config_option, read_config
from heartbeatd.provision import to_toml
from heartbeatd.store.provisioned import read_file


@click.command()
@config_option
def export(config_path: str) -> None:
    """Print the monitors created through the API (source "api") as
    [monitors.<slug>] tables, to move them into the config file."""
    config = read_config(config_path)
    try:
        # Read-only: a running daemon may keep writing meanwhile.
        definitions = read_file(config.storage.path)
    except sqlite3.Error as exc:
        click.echo(f"{config.storage.path}: cannot read the database: {exc}", err=True)
        sys.exit(1)
    click.echo(to_toml(definitions), nl=False)
