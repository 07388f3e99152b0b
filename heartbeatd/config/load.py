"""Loading a config file (`load_config`), and what a reload must check
before the new config replaces the running one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from heartbeatd.channels.base import ParseEnv
from heartbeatd.config import sections
from heartbeatd.config.dependencies import check_dependencies
from heartbeatd.config.files import (
    describe_unexpected,
    find_big_integers,
    gc_paused,
    parse_toml,
    read_text,
    state_directory,
    without_monitors,
)
from heartbeatd.config.maintenance import read_maintenance
from heartbeatd.config.monitors import read_defaults, read_monitors
from heartbeatd.config.values import Config, index_dependents, index_tags
from heartbeatd.config.warnings import find_ignored_options, find_inline_secrets
from heartbeatd.tables import ConfigError, Problems, Table, show

log = logging.getLogger(__name__)


def load_config(
    path: str | Path, previous: Config | None = None, *, credentials: Path | None = None
) -> Config:
    """Read and validate a config file; ConfigError lists every problem.

    With `previous` (the running config, on a reload), monitors that did not
    change are the previous objects: the new copies die young, and memory
    does not grow with every reload. With `credentials`, *_file keys under
    /run/credentials/<unit>/ are read from that directory instead.
    """
    path = Path(path)
    text = read_text(path)
    with gc_paused():
        data = parse_toml(text, path)
        # The monitors' readers check their own numbers (as durations and
        # with Table.integer): skipping them keeps this walk off a big file.
        big = find_big_integers(data, skip=("monitors",))
        if big:
            raise ConfigError(
                [
                    f"{path}: {where}: expected a whole number that fits in 64 bits,"
                    f" got {show(value)}"
                    for where, value in big
                ]
            )
        try:
            return parse_config(data, path, previous, credentials=credentials)
        except ConfigError:
            raise
        except Exception as exc:
            # A bug in a reader, or a value no test thought of: still a
            # ConfigError, so `check` and `run` exit 2 with one line and a
            # reload keeps the running config. -v shows the traceback.
            log.debug("loading %s failed", path, exc_info=True)
            raise ConfigError([f"{path}: {describe_unexpected(exc)}"]) from None


def parse_config(
    data: dict[str, Any],
    path: str | Path,
    previous: Config | None = None,
    *,
    credentials: Path | None = None,
) -> Config:
    """Validate already-parsed TOML; `path` names the file in messages."""
    path = Path(path)
    base_dir = path.absolute().parent
    problems = Problems(filename=str(path), base_dir=base_dir, credentials=credentials)
    root = Table(data, "", problems)
    server = sections.read_server(root.table("server"))
    storage = sections.read_storage(root.table("storage"), state_directory() or base_dir)
    web = sections.read_web(root.table("web"))
    metrics = sections.read_metrics(root.table("metrics"))
    api = sections.read_api(root.table("api"))
    smtp_table = root.table("smtp")
    smtp = sections.read_smtp(smtp_table) if isinstance(data.get("smtp"), dict) else None
    channels_table = root.table("channels")
    # Monitors may name a channel that has problems of its own: that is one
    # error (on the channel), not one more for every monitor that uses it.
    declared = tuple(sorted(channels_table.data))
    channels = sections.read_channels(channels_table, ParseEnv(base_dir=base_dir, smtp=smtp))
    alerts = sections.read_alerts(root.table("alerts"), declared)
    selfping = sections.read_self(root.table("self"))
    defaults = read_defaults(root.table("defaults"), declared)
    reuse = previous.monitors if previous is not None else {}
    monitors = read_monitors(root.table("monitors"), defaults, declared, reuse)
    windows, monitors = read_maintenance(root.table("maintenance"), monitors, defaults.timezone)
    if any(m.depends_on for m in monitors.values()):
        check_dependencies(root.table("monitors"), monitors)
    root.done()
    problems.raise_if_any()
    return Config(
        path=path,
        server=server,
        storage=storage,
        alerts=alerts,
        web=web,
        smtp=smtp,
        channels=channels,
        monitors=monitors,
        inline_secrets=tuple(find_inline_secrets(data)),
        ignored_options=tuple(find_ignored_options(data)),
        metrics=metrics,
        tagged=index_tags(monitors),
        api=api,
        defaults_data=data["defaults"] if isinstance(data.get("defaults"), dict) else {},
        selfping=selfping,
        maintenance=windows,
        dependents=index_dependents(monitors),
    )


def reload_problem(running: Config, new: Config) -> str | None:
    """Why swapping `running` for `new` needs `heartbeatd reload --force`, or None.

    A file saved empty, or cut short before [monitors] (a non-atomic save
    caught by a reload), is valid TOML and a valid config that silently stops
    every alert. The running config's limit applies, so a file cannot loosen
    the rule for its own reload.
    """
    total = len(running.monitors)
    if not total:
        return None
    force = "`heartbeatd reload --force` applies it anyway"
    if not new.monitors:
        every = "the only monitor" if total == 1 else f"all {total} monitors"
        return (
            f"{new.path}: monitors: none in the file, so the reload would remove {every}"
            f" (a file cut short?); {force}"
        )
    removed = sum(1 for slug in running.monitors if slug not in new.monitors)
    percent = running.server.reload_max_removed
    allowed = total * percent // 100
    if removed <= allowed:
        return None
    return (
        f"{new.path}: monitors: the reload would remove {removed} of {total} monitors;"
        f' [server] reload_max_removed = "{percent}%" allows {allowed}; {force}'
    )


def find_database(path: str | Path) -> Path | None:
    """The database a config file names, read leniently; None if it is not TOML.

    For `heartbeatd reload`, which must find the running daemon's status
    next to its database even when the new file has errors. The
    [monitors.*] tables are left out before parsing: they are most of a big
    file, and say nothing about the database.
    """
    path = Path(path)
    try:
        data = parse_toml(without_monitors(read_text(path)), path)
    except ConfigError:
        return None
    storage = data.get("storage")
    name = storage.get("path", "heartbeatd.db") if isinstance(storage, dict) else "heartbeatd.db"
    if not isinstance(name, str) or sections.path_problem(name) is not None:
        return None
    return (state_directory() or path.absolute().parent) / name
