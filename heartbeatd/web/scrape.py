"""GET /metrics: streamed in pieces, with the event loop free between them.

At 100,000 monitors the page is some 60-70 MB. Rendered in one piece it
held the loop for seconds, and every ping waited. Here the handler takes a
snapshot that costs a few milliseconds (the running config, which a reload
replaces whole, and the list of its monitors' states, which are frozen),
then writes metrics.render_pieces piece by piece, letting everything else run
between two pieces. The table hands out plain states and monitors a slice at
a time: no object is built per monitor, and down_at and held, which take
work to derive, once a page each.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from aiohttp import web

from heartbeatd import __version__, metrics, policy, states
from heartbeatd.config import Config
from heartbeatd.exposition import CONTENT_TYPE
from heartbeatd.model import MonitorState
from heartbeatd.monitorseries import MonitorFacts, MonitorTable
from heartbeatd.slices import Slices
from heartbeatd.store import StoreError
from heartbeatd.web.keys import CLOCK, ENGINE, LOOP_LAG, OUTBOX, RELOADS, STRAYS
from heartbeatd.windows import Window

# One logger for the package: its lines keep the name "heartbeatd.web".
log = logging.getLogger(__package__)

# A monitor whose state is not in memory (a first write rolled back): new.
_NO_STATE = MonitorState()


class _Table(MonitorTable):
    """The monitors of one config, with the states of one moment."""

    def __init__(self, config: Config, current: Mapping[str, MonitorState], now: datetime) -> None:
        # In one piece, so that every state is of the same moment: two lists
        # of references and a copy of the dict of states (frozen objects),
        # all C loops, some 3 ms for 100,000 monitors. Looking each state up
        # here instead took 10 ms; it is done a slice at a time below.
        self._slugs = list(config.monitors)
        self._monitors = list(config.monitors.values())
        self._current = dict(current)
        self._now = now
        # id(window) -> open at `now`; the windows live as long as the config.
        self._open: dict[int, bool] = {}

    def __len__(self) -> int:
        return len(self._slugs)

    def _states(self, start: int, stop: int) -> list[MonitorState]:
        # A state that is not in memory (a first write rolled back) is new.
        get = self._current.get
        return [get(slug, _NO_STATE) for slug in self._slugs[start:stop]]

    def facts(self, start: int, stop: int) -> Sequence[MonitorFacts]:
        return self._states(start, stop)

    def slugs_and_names(self, start: int, stop: int) -> Sequence[tuple[str, str]]:
        return [
            (slug, m.name)
            for slug, m in zip(self._slugs[start:stop], self._monitors[start:stop], strict=True)
        ]

    def down_at(self, start: int, stop: int) -> Iterable[datetime | None]:
        return [
            states.down_at(state, monitor)
            for state, monitor in zip(
                self._states(start, stop), self._monitors[start:stop], strict=True
            )
        ]

    def held(self, start: int, stop: int) -> Iterable[bool]:
        now, window_open = self._now, self._window_open
        return [
            bool(
                state.snoozed_until
                or policy.held_by(state, monitor, now)
                or (monitor.windows and any(window_open(w) for w in monitor.windows))
            )
            for state, monitor in zip(
                self._states(start, stop), self._monitors[start:stop], strict=True
            )
        ]

    def _window_open(self, window: Window) -> bool:
        # What policy.open_window asks of each window, asked once a page: the
        # monitors a window selects (a tag's worth, or all) share the answer
        # at one `now`, and each answer is a walk of its cron schedule.
        found = self._open.get(id(window))
        if found is None:
            found = self._open[id(window)] = window.span_at(self._now) is not None
        return found

    def tags(self, start: int, stop: int) -> Iterable[tuple[str, ...]]:
        return [m.tags for m in self._monitors[start:stop]]


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    snapshot = await _snapshot(request.app)
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    pending = []
    size = 0
    # The loop is let go after a slice of work rather than after every piece:
    # a yield costs a turn of the loop (tens of microseconds), and pieces
    # differ twentyfold in cost (a state set, a down_at to derive).
    slices = Slices(request.app[CLOCK])
    for piece in metrics.render_pieces(snapshot):
        if piece:
            pending.append(piece)
            size += len(piece)
        # Fewer, larger writes: one per WRITE_SIZE characters.
        if size >= WRITE_SIZE:
            await response.write("".join(pending).encode("utf-8"))
            pending, size = [], 0
        # Pings, ticks and other requests run here, between two slices.
        await slices.turn()
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
        monitors=_Table(config, engine.states, app[CLOCK].now()),
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
