"""`depends_on` across monitors: every slug must name a monitor, and no
monitor may depend on itself through others (the error names the cycle)."""

from __future__ import annotations

from collections.abc import Mapping

from heartbeatd.config.values import Monitor
from heartbeatd.tables import Table


def check_dependencies(table: Table, monitors: Mapping[str, Monitor]) -> None:
    """Record a problem at monitors.<slug>.depends_on for each unknown slug
    and each cycle (once, at the first monitor of it in config order)."""
    for slug, monitor in monitors.items():
        for parent in monitor.depends_on:
            if parent not in monitors:
                where = table.table(slug)
                where.error("depends_on", f'no monitor named "{parent}" in [monitors]')
    reported: set[str] = set()
    for slug in monitors:
        cycle = _cycle_from(slug, monitors)
        if cycle is not None and not reported.intersection(cycle):
            reported.update(cycle)
            table.table(slug).error(
                "depends_on", "a dependency cycle: " + " -> ".join([*cycle, cycle[0]])
            )


def _cycle_from(start: str, monitors: Mapping[str, Monitor]) -> list[str] | None:
    """The cycle through `start`, in order from it, if there is one."""
    path = [start]
    seen = {start}
    # Depth first, iteratively: a long chain must not hit the recursion limit.
    stack = [iter(monitors[start].depends_on)]
    while stack:
        parent = next(stack[-1], None)
        if parent is None:
            stack.pop()
            seen.discard(path.pop())
            continue
        if parent == start:
            return list(path)
        if parent in seen or parent not in monitors:
            continue
        path.append(parent)
        seen.add(parent)
        stack.append(iter(monitors[parent].depends_on))
    return None
