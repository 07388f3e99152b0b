"""Holds: what keeps a due down alert back beyond the thresholds, and until
when. A snooze (until its end), a maintenance window (until it closes), a
parent that is down (until it recovers, then the dependent's own grace),
and, for a fresh alert of a monitor with parents, [alerts] dependency_wait.
policy.py asks `holder` when an alert is due and judges it again when the
hold ends.

Pure, like policy.py: time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from heartbeatd.model import AlertState, MonitorState, Status
from heartbeatd.windows import Window

HELD_BY_SNOOZE = "snooze"
HELD_BY_DEPENDENCY = "dependency:"


class Rules(Protocol):
    """What the holds need of a monitor's configuration."""

    @property
    def grace(self) -> int: ...
    @property
    def windows(self) -> tuple[Window, ...]: ...
    @property
    def depends_on(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What the policy needs to know of other monitors: which of this one's
    parents (depends_on) are down now, and [alerts] dependency_wait."""

    down_parents: tuple[str, ...] = ()
    dependency_wait: int = 60


def snooze(state: MonitorState, until: datetime, reason: str) -> MonitorState:
    """Hold down alerts and reminders until `until` (a new snooze replaces
    the one before). Up alerts of an incident already told still go out."""
    return replace(state, snoozed_until=until, snooze_reason=reason)


def on_parent_up(state: MonitorState, rules: Rules, at: datetime) -> MonitorState:
    """A parent recovered at `at`: a dependent whose down alert it held gets
    its own grace to ping, then is judged (nothing goes out if it did)."""
    if not state.held_reason.startswith(HELD_BY_DEPENDENCY) or state.held_until is not None:
        return state
    return replace(state, held_until=at + timedelta(seconds=rules.grace))


def on_reload(state: MonitorState, now: datetime) -> MonitorState:
    """The rules changed: a down alert still held back is judged again at
    the next tick. One held until a parent's recovery (its parents may have
    changed), and one held by the threshold (alert_after may now be lower:
    the failed runs already counted may be enough). A hold with an end of
    its own (a window) keeps it."""
    if state.held_until is not None:
        return state
    if state.held_reason:
        return replace(state, held_until=now)
    counted = state.status is Status.DOWN and state.alert is AlertState.QUIET and state.fails > 0
    return replace(state, held_until=now) if counted else state


def open_window(rules: Rules, at: datetime) -> tuple[str, datetime] | None:
    """(name, end) of a maintenance window of the monitor open at `at`."""
    for window in rules.windows:
        span = window.span_at(at)
        if span is not None:
            return window.name, span[1]
    return None


def holder(
    state: MonitorState, rules: Rules, at: datetime, ctx: Context, *, fresh: bool = False
) -> tuple[str, datetime | None] | None:
    """(held_by, until when) of what holds a down alert due at `at`, beyond
    the thresholds: a snooze, a maintenance window, a parent that is down
    (until it recovers: None), and for a `fresh` alert of a monitor with
    parents, [alerts] dependency_wait, so a parent's own deadline can catch up."""
    if state.snoozed_until is not None and at < state.snoozed_until:
        return HELD_BY_SNOOZE, state.snoozed_until
    window = open_window(rules, at)
    if window is not None:
        return f"maintenance:{window[0]}", window[1]
    if ctx.down_parents:
        return HELD_BY_DEPENDENCY + ctx.down_parents[0], None
    if fresh and rules.depends_on and ctx.dependency_wait > 0:
        wait = timedelta(seconds=ctx.dependency_wait)
        return HELD_BY_DEPENDENCY + rules.depends_on[0], at + wait
    return None


def hold(new: MonitorState, holder: tuple[str, datetime | None], at: datetime) -> MonitorState:
    """`new` with a due down alert held by `holder` (until its time, or
    until a parent recovers when that is None)."""
    return replace(
        new,
        held_until=holder[1],
        held_reason=holder[0],
        held_since=new.held_since or at,
    )


def unheld(new: MonitorState) -> MonitorState:
    if new.held_until is None and new.held_since is None and not new.held_reason:
        return new
    return replace(new, held_until=None, held_since=None, held_reason="")


NO_CONTEXT = Context()
