"""Dependencies: a parent's outage holds its dependents' down alerts, a
dependent that goes down first waits for its parents, and after the
parent's recovery each held dependent gets its own grace. Pure policy on
explicit times, the config's checks, and the engine with a real SQLite file."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd import policy, states
from heartbeatd.clock import FakeClock
from heartbeatd.config import ConfigError, load_config
from heartbeatd.engine import Engine
from heartbeatd.model import AlertEvent, AlertState, MonitorState, Ping, PingKind, Status
from heartbeatd.provision import merge
from heartbeatd.store import Definition, Store
from tests.test_policy import MIN, NOW, Rules

CHILD = Rules(depends_on=("vps",))
PARENT_DOWN = policy.Context(down_parents=("vps",), dependency_wait=60)
PARENT_UP = policy.Context(down_parents=(), dependency_wait=60)


def up(rules: Rules = CHILD) -> MonitorState:
    fresh = states.first_seen(rules, NOW - timedelta(hours=1))
    return states.on_ping(fresh, Ping(PingKind.SUCCESS, NOW - MIN), rules).state


def ping(state, kind, at, ctx, rules=CHILD):
    step = states.on_ping(state, Ping(kind, at), rules)
    return policy.on_ping(state, step, Ping(kind, at), rules, ctx)


def tick(state, at, ctx, rules=CHILD):
    return policy.on_tick(state, states.on_tick(state, rules, at), rules, at, ctx)


def test_a_parent_that_is_down_holds_the_dependent_until_it_recovers():
    step = ping(up(), PingKind.FAIL, NOW, PARENT_DOWN)
    assert step.flip.held_by == "dependency:vps" and step.flip.event is None
    held = step.state
    assert held.held_until is None
    assert policy.held_by(held, CHILD, NOW + MIN, PARENT_DOWN) == "dependency:vps"
    assert policy.next_deadline(held, CHILD) is None or policy.next_deadline(
        held, CHILD
    ) > NOW + timedelta(hours=1)
    # The parent recovers at 12:30: the dependent gets its own grace (5m).
    recovered = NOW + 30 * MIN
    waiting = policy.on_parent_up(held, CHILD, recovered)
    assert waiting.held_until == recovered + 5 * MIN
    assert tick(waiting, recovered + 4 * MIN, PARENT_UP).flip is None
    sent = tick(waiting, recovered + 5 * MIN, PARENT_UP)
    assert sent.flip.event is AlertEvent.DOWN and sent.flip.at == recovered + 5 * MIN
    assert (sent.flip.held_by, sent.flip.held_since) == ("dependency:vps", NOW)
    assert sent.state.alert is AlertState.ALERTING


def test_a_dependent_that_pings_within_its_grace_sends_nothing():
    held = ping(up(), PingKind.FAIL, NOW, PARENT_DOWN).state
    waiting = policy.on_parent_up(held, CHILD, NOW + 30 * MIN)
    back = ping(waiting, PingKind.SUCCESS, NOW + 32 * MIN, PARENT_UP)
    assert back.flip.event is None
    assert back.state.held_until is None and back.state.held_reason == ""
    assert tick(back.state, NOW + 40 * MIN, PARENT_UP).flip is None


def test_a_dependent_down_first_waits_for_its_parent_then_alerts():
    step = ping(up(), PingKind.FAIL, NOW, PARENT_UP)
    assert step.flip.held_by == "dependency:vps"
    assert step.state.held_until == NOW + MIN
    sent = tick(step.state, NOW + MIN, PARENT_UP)
    assert sent.flip.event is AlertEvent.DOWN and sent.flip.at == NOW + MIN


def test_a_parent_going_down_within_the_wait_holds_the_dependent_on():
    waiting = ping(up(), PingKind.FAIL, NOW, PARENT_UP).state
    held = tick(waiting, NOW + MIN, PARENT_DOWN)
    assert held.flip is None and held.state.held_until is None
    assert held.state.held_reason == "dependency:vps"


def test_reminders_of_an_alert_already_out_wait_while_the_parent_is_down():
    rules = Rules(depends_on=("vps",), repeat=600)
    sent = tick(
        ping(up(rules), PingKind.FAIL, NOW, PARENT_UP, rules).state, NOW + MIN, PARENT_UP, rules
    )
    assert sent.flip.event is AlertEvent.DOWN
    quiet = tick(sent.state, NOW + 11 * MIN, PARENT_DOWN, rules)
    assert quiet.flip is None


def test_a_restart_judges_an_alert_held_for_a_parent_after_a_grace():
    held = ping(up(), PingKind.FAIL, NOW, PARENT_DOWN).state
    restarted = policy.on_startup(held, CHILD, NOW + 2 * MIN)
    assert restarted.held_until == NOW + 7 * MIN
    still = tick(restarted, NOW + 7 * MIN, PARENT_DOWN)
    assert still.flip is None and still.state.held_until is None


# -- config -------------------------------------------------------------------------

FILE = "heartbeatd.toml"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def problems(text: str) -> list[str]:
    Path(FILE).write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(Path(FILE))
    return caught.value.problems


def test_it_reads_depends_on_and_dependency_wait(in_tmp):
    Path(FILE).write_text(
        '[alerts]\ndependency_wait = "2m"\n[monitors.vps]\nperiod = "1m"\n'
        '[monitors.backup]\nperiod = "1d"\ndepends_on = ["vps"]\n'
    )
    config = load_config(Path(FILE))
    assert config.monitors["backup"].depends_on == ("vps",)
    assert config.alerts.dependency_wait == 120


def test_the_config_lists_each_parents_dependents_once_for_all(in_tmp):
    Path(FILE).write_text(
        '[monitors.vps]\nperiod = "1m"\n[monitors.db]\nperiod = "1m"\n'
        '[monitors.backup]\nperiod = "1d"\ndepends_on = ["vps", "db"]\n'
        '[monitors.report]\nperiod = "1d"\ndepends_on = ["vps"]\n'
    )
    config = load_config(Path(FILE))
    assert config.dependents == {"vps": ("backup", "report"), "db": ("backup",)}


def test_monitors_created_through_the_api_are_among_the_dependents(in_tmp):
    Path(FILE).write_text('[monitors.vps]\nperiod = "1m"\n')
    config = load_config(Path(FILE))
    definition = Definition(
        "backup", "0b9e5c1e-2f4a-4c57-9d6e-3f7a1b2c4d5e", {"period": "1d", "depends_on": ["vps"]}
    )
    merged = merge(config, {"backup": definition})
    assert merged.dependents == {"vps": ("backup",)}


def test_an_unknown_slug_and_a_cycle_are_config_errors_naming_them(in_tmp):
    assert problems(
        """
        [monitors.a]
        period = "1h"
        depends_on = ["b"]
        [monitors.b]
        period = "1h"
        depends_on = ["c", "nope"]
        [monitors.c]
        period = "1h"
        depends_on = ["a"]
        [monitors.d]
        period = "1h"
        depends_on = ["d"]
        """
    ) == [
        f'{FILE}: monitors.b.depends_on: no monitor named "nope" in [monitors]',
        f"{FILE}: monitors.a.depends_on: a dependency cycle: a -> b -> c -> a",
        f"{FILE}: monitors.d.depends_on: a dependency cycle: d -> d",
    ]


# -- the engine ----------------------------------------------------------------------


async def test_the_engine_releases_dependents_when_their_parent_recovers(
    tmp_path: Path, clock: FakeClock
):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(
        '[storage]\npath = "hb.db"\n[channels.ops]\ntype = "log"\n'
        '[monitors.vps]\nperiod = "1h"\n'
        '[monitors.late]\nperiod = "1h"\ngrace = "2m"\ndepends_on = ["vps"]\n'
        '[monitors.prompt]\nperiod = "1h"\ngrace = "2m"\ndepends_on = ["vps"]\n'
    )
    store = await Store.open(tmp_path / "hb.db")
    try:
        engine = Engine(load_config(path), store)
        await engine.recover(clock.now())
        for slug in ("vps", "late", "prompt"):
            await engine.handle_ping(slug, Ping(PingKind.FAIL, clock.now()))
        assert engine.view("late").status is Status.DOWN
        clock.advance(minutes=10)
        engine.tick(clock.now())
        await engine.handle_ping("vps", Ping(PingKind.SUCCESS, clock.now()))
        assert engine.state("late").held_until == clock.now() + timedelta(minutes=2)
        clock.advance(minutes=1)
        await engine.handle_ping("prompt", Ping(PingKind.SUCCESS, clock.now()))
        clock.advance(minutes=1)
        engine.tick(clock.now())
        await store.flush()
        items = await store.claim_due(clock.now() + timedelta(days=1))
        # The first alert of each monitor (the outbox sends in order per
        # monitor): none at all for "prompt", which pinged in its grace.
        sent = sorted((i.monitor, i.alert.event.value, i.alert.held_by) for i in items)
        assert sent == [("late", "down", "dependency:vps"), ("vps", "down", None)]
    finally:
        await store.close()
