"""GET /metrics: streamed in pieces, with the event loop free between them.

At 100,000 monitors the page is some 60 MB. Rendered in one piece it held
the loop for seconds, and every ping waited. Here the handler takes a
snapshot that costs almost nothing (the running config, which a reload
replaces whole, and a shallow copy of the dict of states, which are frozen),
then writes metrics.render_pieces piece by piece, letting everything else run
between two pieces. A monitor's figures are read only when its line is due,
so no list of 100,000 views is built either.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Sequence
from datetime import datetime
from typing import overload

from aiohttp import web

from heartbeatd import __version__, metrics, policy, states
from heartbeatd.config import Config, Monitor
from heartbeatd.model import MonitorState, Status
from heartbeatd.store import StoreError
from heartbeatd.web.keys import CLOCK, ENGINE, LOOP_LAG, OUTBOX, RELOADS, STRAYS

# One logger for the package: its lines keep the name "heartbeatd.web".
log = logging.getLogger(__package__)

# A monitor whose state is not in memory (a first write rolled back): new.
_NO_STATE = MonitorState()


class _Row:
    """One monitor's figures as metrics.MonitorRow, read when its line is due."""

    __slots__ = ("monitor", "now", "slug", "state")

    def __init__(self, slug: str, monitor: Monitor, state: MonitorState, now: datetime) -> None:
        self.slug = slug
        self.monitor = monitor
        self.state = state
        self.now = now

    @property
    def is_held(self) -> bool:
        state, monitor = self.state, self.monitor
        return bool(
            state.snoozed_until
            or policy.held_by(state, monitor, self.now)
            or (monitor.windows and policy.open_window(monitor, self.now))
        )

    @property
    def tags(self) -> tuple[str, ...]:
        return self.monitor.tags

    @property
    def name(self) -> str:
        return self.monitor.name

    @property
    def status(self) -> Status:
        return self.state.status

    @property
    def started_at(self) -> datetime | None:
        return self.state.started_at

    @property
    def last_ping(self) -> datetime | None:
        return self.state.last_ping

    @property
    def last_duration(self) -> float | None:
        return self.state.last_duration

    @property
    def expected_at(self) -> datetime | None:
        return self.state.expected_at

    @property
    def down_at(self) -> datetime | None:
        return states.down_at(self.state, self.monitor)


class _Rows(Sequence[_Row]):
    """The monitors of one config, with the states of one moment."""

    def __init__(self, config: Config, current: dict[str, MonitorState], now: datetime) -> None:
        self._monitors = config.monitors
        self._slugs = list(config.monitors)
        self._states = current
        self._now = now

    def __len__(self) -> int:
        return len(self._slugs)

    @overload
    def __getitem__(self, i: int) -> _Row: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[_Row]: ...
    def __getitem__(self, i: int | slice) -> _Row | Sequence[_Row]:
        if isinstance(i, slice):
            # How metrics reads it: a chunk of rows in one call.
            monitors, current, now = self._monitors, self._states, self._now
            return [_Row(s, monitors[s], current.get(s, _NO_STATE), now) for s in self._slugs[i]]
        slug = self._slugs[i]
        return _Row(slug, self._monitors[slug], self._states.get(slug, _NO_STATE), self._now)


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    clock = request.app[CLOCK]
    snapshot = await _snapshot(request.app)
    response = web.StreamResponse(
        headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    pending = []
    size = 0
    for piece in metrics.render_pieces(snapshot):
        if piece:
            pending.append(piece)
            size += len(piece)
        # Fewer, larger writes: one per WRITE_SIZE characters.
        if size >= WRITE_SIZE:
            await response.write("".join(pending).encode("utf-8"))
            pending, size = [], 0
        # Pings, ticks and other requests run here, between two pieces.
        await clock.sleep(0)
    if pending:
        await response.write("".join(pending).encode("utf-8"))
    await response.write_eof()
    return response


WRITE_SIZE = 256 * 1024


async def _snapshot(app: web.Application) -> metrics.Snapshot:
    engine = app[ENGINE]
    outbox, reloads, lag = app.get(OUTBOX), app.get(RELOADS), app.get(LOOP_LAG)
    try:
        pending: int | None = await engine.store.outbox_pending()
    except StoreError as exc:
        # The other series are still worth having; this one is left out.
        log.error("metrics without outbox figures error=%s", exc)
        pending = None
    # Taken after the await, together: the config and the states of one moment.
    config = engine.config
    return metrics.Snapshot(
        monitors=_Rows(config, dict(engine.states), app[CLOCK].now()),
        notices=dict(engine.notices_by_event),
        per_monitor=config.metrics.per_monitor,
        pings_by_kind=dict(engine.pings_by_kind),
        alerts_sent=dict(outbox.stats.sent) if outbox else {},
        alerts_failed=dict(outbox.stats.failed) if outbox else {},
        channels=tuple(config.channels),
        unknown_pings=app[STRAYS].total,
        outbox_pending=pending,
        reloads_ok=reloads.ok if reloads else 0,
        reloads_failed=reloads.failed if reloads else 0,
        last_reload_at=reloads.last_at if reloads else None,
        last_reload_ok=reloads.last_ok if reloads else True,
        loop=metrics.LoopFigures(lag.last, lag.worst, lag.stalls) if lag else None,
        version=__version__,
        python=platform.python_version(),
    )
