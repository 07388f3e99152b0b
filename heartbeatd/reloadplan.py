"""What a reload changes, found by comparing the running config with the
new one (Engine.apply_config then looks only at what changed).

Pure: it reads two immutable configs and a copy of the engine's slugs, so a
caller may make the plan in a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from heartbeatd.config import Config


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload changes, found by comparing the two configs. Pure, so a
    caller may make it in a thread: at 100,000 monitors the comparison takes
    a good part of a second that pings would otherwise wait for."""

    old: Config
    new: Config
    removed: list[str]
    # Monitors added, whose settings differ, or without a state (their first
    # write was rolled back); the others keep everything.
    touched: list[str]
    uuids: dict[str, str]


def plan_reload(old: Config, new: Config, with_state: Iterable[str]) -> ReloadPlan:
    """Pure: reads two immutable configs and a copy of the engine's slugs with
    a state (`list(engine.states)`), so it may run in any thread."""
    before = old.monitors
    stated = set(with_state)
    touched = [
        slug
        for slug, monitor in new.monitors.items()
        if ((was := before.get(slug)) is not monitor and was != monitor) or slug not in stated
    ]
    removed = [slug for slug in before if slug not in new.monitors]
    uuids = {m.uuid: slug for slug, m in new.monitors.items() if m.uuid}
    return ReloadPlan(old, new, removed, touched, uuids)
