"""The index of ack links' tokens: a link's monitor is found with one lookup,
and the index follows every change of a state's token (a new incident, an
acknowledgement, a recovery, a rolled-back write, a restart). The engine
with a real SQLite file and a fake clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd.acks import AckTokens
from heartbeatd.clock import FakeClock
from heartbeatd.engine import Engine
from heartbeatd.model import MonitorState, Ping, PingKind, Status
from heartbeatd.store import Store, StoreError
from tests.conftest import NOW
from tests.test_engine_faults import BOOM, install_faults, write_config


class NoWalk(dict):
    """Monitor states that may be looked up by slug but not walked: a lookup
    that walks every state fails with it."""

    def __iter__(self):
        raise AssertionError("walked every monitor's state")

    def items(self):
        raise AssertionError("walked every monitor's state")

    def values(self):
        raise AssertionError("walked every monitor's state")

    def keys(self):
        raise AssertionError("walked every monitor's state")


def state(token: str) -> MonitorState:
    return MonitorState(status=Status.DOWN, first_seen=NOW, ack_token=token)


def test_it_finds_a_token_and_forgets_it_when_the_state_drops_it():
    tokens = AckTokens()
    tokens.rebuild({"a": state("t-a"), "b": state("")})
    states = {"a": state("t-a"), "b": state("t-b")}
    tokens.update("b", state(""), states["b"])
    assert (tokens.slug_for("t-a", states), tokens.slug_for("t-b", states)) == ("a", "b")
    assert tokens.slug_for("t-", states) is None and tokens.slug_for("", states) is None
    tokens.update("a", states["a"], state(""))
    states["a"] = state("")
    assert tokens.slug_for("t-a", states) is None and len(tokens) == 1


def test_a_stale_entry_never_finds_a_state_that_holds_another_token():
    tokens = AckTokens()
    tokens.rebuild({"a": state("old")})
    # The state changed without the index being told.
    assert tokens.slug_for("old", {"a": state("new")}) is None


async def test_the_engine_finds_the_link_without_walking_the_states(
    tmp_path: Path, clock: FakeClock
):
    store = await Store.open(tmp_path / "hb.db", clock=clock)
    try:
        engine = Engine(write_config(tmp_path), store)
        await engine.recover(clock.now())
        engine.states = NoWalk(engine.states)
        await engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
        first = engine.state("backup").ack_token
        assert first and engine.slug_for_ack_token(first) == "backup"
        assert engine.slug_for_ack_token(first[:-1]) is None
        # An acknowledgement keeps the link (it shows who acknowledged).
        assert engine.ack("backup", clock.now(), "ana", "on it") is not None
        assert engine.slug_for_ack_token(first) == "backup"
        # The recovery ends the incident: its link is gone.
        await engine.handle_ping("backup", Ping(PingKind.SUCCESS, clock.now()))
        assert engine.slug_for_ack_token(first) is None
        # The next incident has a link of its own.
        clock.advance(minutes=1)
        await engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
        second = engine.state("backup").ack_token
        assert second != first and engine.slug_for_ack_token(second) == "backup"
        await store.flush()
        # A restart indexes the stored states again.
        again = Engine(write_config(tmp_path), store)
        await again.recover(clock.now() + timedelta(seconds=1))
        again.states = NoWalk(again.states)
        assert again.slug_for_ack_token(second) == "backup"
        assert again.slug_for_ack_token(first) is None
    finally:
        await store.close()


async def test_a_link_whose_incident_was_not_stored_is_not_found(tmp_path: Path, clock: FakeClock):
    store = await Store.open(tmp_path / "hb.db", clock=clock)
    install_faults(tmp_path / "hb.db")
    try:
        engine = Engine(write_config(tmp_path), store)
        await engine.recover(clock.now())
        await engine.handle_ping("backup", Ping(PingKind.SUCCESS, clock.now()))
        failed = engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now(), body=BOOM))
        # In memory at once: the link works before the write is known to fail.
        token = engine.state("backup").ack_token
        assert token and engine.slug_for_ack_token(token) == "backup"
        with pytest.raises(StoreError):
            await failed
        # Rolled back: the incident (and its link) happens again on the next failure.
        assert engine.state("backup").ack_token == ""
        engine.states = NoWalk(engine.states)
        assert engine.slug_for_ack_token(token) is None
    finally:
        await store.close()
