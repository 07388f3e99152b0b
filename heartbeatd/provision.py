"""Monitors created at run time: through the Healthchecks-compatible API, or
by a ping with ?create=1 when [server] auto_provision is on.

They are stored in SQLite (api_monitors) as the table they would have in the
file, and read against the file's [defaults] and channels, on start-up, on
every reload and when created. The engine sees one config: the file's
monitors plus these, marked `source = "api"`; a change swaps in a new config
with `Engine.apply_config`, the reload path, so a monitor enters (or leaves)
the timer wheel exactly as one added to the file would.

A slug or uuid the file declares belongs to the file: an API monitor with
the same one is kept in the database but not watched (logged; `heartbeatd
check` warns), until the file lets go of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from heartbeatd.config import Config, Monitor
from heartbeatd.config.monitors import read_api_monitor
from heartbeatd.config.values import index_dependents, index_tags
from heartbeatd.engine import Engine
from heartbeatd.reloadplan import ReloadPlan, plan_reload
from heartbeatd.store import Definition, Store

log = logging.getLogger(__name__)

# Where an API monitor's problems say they are.
WHERE = "api_monitors"


class ProvisionError(Exception):
    """A definition that does not make a valid monitor; `problems` say why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def merge(config: Config, definitions: Mapping[str, Definition]) -> Config:
    """`config`'s file monitors plus the API monitors that read well and do not
    clash with the file's slugs or uuids."""
    if not definitions and all(m.source == "file" for m in config.monitors.values()):
        # The common case, at every start-up and reload: nothing to add.
        return config
    file_monitors = {s: m for s, m in config.monitors.items() if m.source == "file"}
    taken = {m.uuid for m in file_monitors.values() if m.uuid}
    monitors: dict[str, Monitor] = dict(file_monitors)
    for slug, definition in definitions.items():
        if slug in file_monitors or definition.uuid in taken:
            log.warning("api monitor shadowed by the config file monitor=%s", slug)
            continue
        monitor, problems = read(config, definition)
        if monitor is None:
            for problem in problems:
                log.error("api monitor not watched monitor=%s problem=%s", slug, problem)
            continue
        monitors[slug] = monitor
    return replace(
        config,
        monitors=monitors,
        tagged=index_tags(monitors),
        dependents=index_dependents(monitors),
    )


def read(config: Config, definition: Definition) -> tuple[Monitor | None, list[str]]:
    data = {**definition.data, "uuid": definition.uuid}
    return read_api_monitor(
        definition.slug, data, config.defaults_data, tuple(sorted(config.channels)), WHERE
    )


def shadowed(config: Config, definitions: Mapping[str, Definition]) -> list[str]:
    """Slugs of API monitors the file's monitors hide (for `heartbeatd check`)."""
    uuids = {m.uuid for m in config.monitors.values() if m.source == "file" and m.uuid}
    return sorted(
        slug
        for slug, d in definitions.items()
        if (slug in config.monitors and config.monitors[slug].source == "file") or d.uuid in uuids
    )


class Provisioner:
    """The API monitors of a running daemon, and the writes that change them.

    Every write is committed before the engine sees it, so a 201 means the
    monitor survives a crash; then the engine's config is swapped."""

    def __init__(self, engine: Engine, definitions: Mapping[str, Definition] | None = None) -> None:
        self.engine = engine
        self.definitions: dict[str, Definition] = dict(definitions or {})
        # Held by whoever decides a slug and saves it (a create, an update,
        # a ?create=1 ping): two at once must not both take the same slug.
        self.lock = asyncio.Lock()

    @classmethod
    async def load(cls, store: Store) -> dict[str, Definition]:
        return {d.slug: d for d in await store.api_monitors()}

    def is_api(self, slug: str) -> bool:
        monitor = self.engine.monitor(slug)
        return monitor is not None and monitor.source == "api"

    async def save(self, slug: str, data: dict[str, Any], now: datetime) -> Monitor:
        """Create or replace the API monitor `slug`; ProvisionError if invalid."""
        before = self.definitions.get(slug)
        code = before.uuid if before is not None else str(uuidlib.uuid4())
        definition = Definition(slug, code, data)
        monitor, problems = read(self.engine.config, definition)
        if monitor is None:
            raise ProvisionError(problems)
        await self.engine.store.save_api_monitor(definition)
        self.definitions[slug] = definition
        await self._apply(now)
        log.info("api monitor saved monitor=%s uuid=%s", slug, code)
        return self.engine.config.monitors[slug]

    async def delete(self, slug: str, now: datetime) -> None:
        # Out of the engine first: a ping that comes while the row is being
        # deleted is a 404, not a state row written after the delete.
        definition = self.definitions.pop(slug)
        await self._apply(now)
        try:
            await self.engine.store.delete_api_monitor(slug)
        except BaseException:
            self.definitions[slug] = definition
            await self._apply(now)
            raise
        self.engine.states.pop(slug, None)
        log.info("api monitor deleted monitor=%s", slug)

    async def _apply(self, now: datetime) -> None:
        """Swap in the running config with the API monitors as they are now.

        The caller holds `lock`, as a reload does from its merge to its swap,
        so the running config cannot change while the merge and the
        comparison run in a thread: at 100,000 monitors they took some 0.2 s
        of the loop on every create."""
        engine = self.engine
        new, plan = await asyncio.to_thread(
            merge_and_plan,
            engine.config,
            engine.config,
            dict(self.definitions),
            list(engine.states),
        )
        engine.apply_config(new, now, plan)


def merge_and_plan(
    running: Config, base: Config, definitions: Mapping[str, Definition], with_state: list[str]
) -> tuple[Config, ReloadPlan]:
    """Pure, for a thread: `base`'s file monitors with `definitions`, and
    what swapping that in for `running` changes. `base` is the running config
    for an API write, and the file just read for a reload."""
    new = merge(base, definitions)
    return new, plan_reload(running, new, with_state)


def to_toml(definitions: list[Definition]) -> str:
    """[monitors.<slug>] tables of the API monitors, to paste into the file
    (`heartbeatd export`); values are strings, integers and lists of strings."""
    out = []
    for definition in definitions:
        out.append(f"[monitors.{definition.slug}]")
        for key, value in {**definition.data, "uuid": definition.uuid}.items():
            out.append(f"{key} = {_toml_value(value)}")
        out.append("")
    return "\n".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(value), ensure_ascii=False)
