"""Grouping: [channels.x] group_wait gathers the alerts to a channel into one
outbox row, made from its members in one transaction, on a real SQLite file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from heartbeatd.alerts import Alert
from heartbeatd.channels import email, webhook
from heartbeatd.clock import FakeClock
from heartbeatd.config import load_config
from heartbeatd.model import AlertEvent, Secret
from heartbeatd.store import Store
from tests.samples import DOWN, DOWN_ALERT, DOWN_FLIP


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock):
    store = await Store.open(tmp_path / "heartbeatd.db", clock=clock)
    store.group_waits = {"mail": 30}
    yield store
    await store.close()


async def fail(store: Store, slug: str, channels: tuple[str, ...] = ("mail",)) -> Alert:
    alert = replace(DOWN_ALERT, monitor=slug, name=slug.upper())
    await store.queue_change(slug, DOWN, flip=DOWN_FLIP, alerts=[(c, alert) for c in channels])
    return alert


async def test_alerts_within_the_window_go_out_as_one_group_row(store, clock):
    sent = [await fail(store, f"job-{i}", ("mail", "log")) for i in range(3)]
    # A channel without group_wait sends each alert alone, at once.
    now = await store.claim_due(clock.now())
    assert [(i.channel, i.alert.event) for i in now] == [("log", AlertEvent.DOWN)] * 3
    # The window's end is when the worker wakes next.
    due = await store.next_due()
    assert due is not None and abs((due - clock.now()).total_seconds() - 30) < 0.01
    clock.advance(29)
    assert await store.claim_due(clock.now()) == []
    clock.advance(1)
    [group] = await store.claim_due(clock.now())
    assert (group.channel, group.alert.event) == ("mail", AlertEvent.GROUP)
    assert group.alert.to_json() == {"event": "group", "alerts": [a.to_json() for a in sent]}
    counts = await store.outbox_counts()
    assert counts["grouped"] == 3 and counts.get("grouping", 0) == 0


async def test_a_lone_alert_goes_out_as_it_is_and_a_later_one_opens_a_new_window(store, clock):
    alone = await fail(store, "db")
    clock.advance(30)
    [item] = await store.claim_due(clock.now())
    assert item.alert == alone
    clock.advance(5)
    await fail(store, "a")
    await fail(store, "b")
    assert await store.claim_due(clock.now()) == []
    clock.advance(30)
    [group] = await store.claim_due(clock.now())
    assert [m.monitor for m in group.alert.members] == ["a", "b"]


async def test_a_group_survives_a_restart_of_the_store(store, clock, tmp_path):
    await fail(store, "a")
    await fail(store, "b")
    await store.close()
    again = await Store.open(tmp_path / "heartbeatd.db", clock=clock)
    try:
        assert await again.next_due() is not None
        clock.advance(30)
        [group] = await again.claim_due(clock.now())
        assert len(group.alert.members) == 2
    finally:
        await again.close()


def test_an_email_lists_every_monitor_and_a_webhook_sends_each_alerts_object():
    members = tuple(replace(DOWN_ALERT, monitor=f"m{i}", name=f"Job {i}") for i in range(50))
    group = Alert.group(members)
    body = email.render_body(group)
    for i in range(50):
        assert f"Job {i}:" in body
    assert (
        email.render(group, email.Options(smtp=None, to=("a@example.com",)))
        .get("Subject")
        .startswith("50 alerts: 50 down")
    )
    opts = webhook.Options(url=Secret("https://x"))
    sent = json.loads(webhook.render(group, opts).body)
    assert sent == {"event": "group", "alerts": [m.to_json() for m in members]}
    assert Alert.from_json(sent) == group


def test_group_wait_defaults_to_zero(tmp_path: Path):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(
        '[channels.a]\ntype = "log"\ngroup_wait = "30s"\n[channels.b]\ntype = "log"\n'
        '[monitors.x]\nperiod = "1h"\n'
    )
    config = load_config(path)
    assert (config.channels["a"].group_wait, config.channels["b"].group_wait) == (30, 0)


async def test_a_wall_clock_step_back_moves_an_open_window_with_it(store, clock):
    await fail(store, "a")
    await fail(store, "b")
    before = await store.next_due()
    assert before is not None
    await store.shift_due_times(-3600)
    after = await store.next_due()
    assert after is not None and (before - after).total_seconds() == pytest.approx(3600, abs=0.01)
