"""The TOML config file, read into frozen values.

`load_config` reports every problem in the file at once (as `ConfigError`), so
a user fixes a config in one round; a config that loads is whole and valid,
and a reload swaps it in with one assignment.

Where things live (lower modules never import higher ones; import-linter
keeps it so):

- `load.py`     `load_config` and `parse_config`, which call the readers below
                in order; `reload_problem` (may a reload replace the running
                config?) and `find_database` (for `heartbeatd reload`).
- `sections.py` one reader per top-level table: [server], [storage], [alerts],
                [web], [smtp], [channels]. A new key in one of them goes here
                (and into its dataclass in `values.py`).
- `monitors.py` [monitors.<slug>] and the [defaults] they inherit: the full
                reader that words errors. A new monitor key goes here, into
                the fast path in `plain.py` (or its `SLOW_KEYS`), and into
                `MONITOR_KEYS`.
- `plain.py`    the fast path for plain monitor tables (each table shape read
                once), and what both monitor readers share.
- `warnings.py` `check_warnings` (valid but probably wrong) and the inline
                secrets it warns about.
- `values.py`   the frozen dataclasses (`Config`, `Monitor`, …), their
                defaults, and `ping_urls`.
- `files.py`    file to TOML data: size, encoding, nesting and 64-bit guards, so a
                hostile file is a one-line ConfigError.
- `quicktoml.py` a quick reader for the plain monitor tables that make up
                most of a big file; it answers as tomllib would, or declines.

Rules shared with other modules live outside the package: slugs, channel
names and UUIDs in `heartbeatd.names`, listen addresses in
`heartbeatd.addresses`, the Table readers and `ConfigError` in
`heartbeatd.tables`.
"""

from heartbeatd.config.load import find_database, load_config, parse_config, reload_problem
from heartbeatd.config.values import (
    AlertsConfig,
    Channel,
    Config,
    Monitor,
    SelfPingConfig,
    ServerConfig,
    StorageConfig,
    WebConfig,
    ping_urls,
    rules_key,
)
from heartbeatd.config.warnings import check_warnings
from heartbeatd.tables import ConfigError

__all__ = [
    "AlertsConfig",
    "Channel",
    "Config",
    "ConfigError",
    "Monitor",
    "SelfPingConfig",
    "ServerConfig",
    "StorageConfig",
    "WebConfig",
    "check_warnings",
    "find_database",
    "load_config",
    "parse_config",
    "ping_urls",
    "reload_problem",
    "rules_key",
]
