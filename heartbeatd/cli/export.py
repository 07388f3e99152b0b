"""export: print the monitors created through the API as TOML tables."""

from __future__ import annotations

import json
import sqlite3
import sys

import click

from heartbeatd.cli.app import config_option, read_config
from heartbeatd.provision import to_toml
from heartbeatd.store import Definition


@click.command()
@config_option
def export(config_path: str) -> None:
    """Print the monitors created through the API (source "api") as
    [monitors.<slug>] tables, to move them into the config file."""
    config = read_config(config_path)
    path = config.storage.path
    if not path.exists():
        click.echo(f"{path}: no database yet: nothing to export", err=True)
        return
    try:
        # Read-only: a running daemon keeps writing meanwhile.
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT slug, uuid, definition FROM api_monitors ORDER BY slug"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            rows = []
        else:
            click.echo(f"{path}: cannot read the database: {exc}", err=True)
            sys.exit(1)
    definitions = [Definition(slug, code, json.loads(text)) for slug, code, text in rows]
    click.echo(to_toml(definitions), nl=False)
