"""Escalation and acknowledgement: the incident's table (pure, explicit
times), its stored form, the config reader, and the API and ack link over
real HTTP with a real SQLite file."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from heartbeatd import escalation, policy, states
from heartbeatd.channels import discord, email, slack, text
from heartbeatd.config import ConfigError, load_config
from heartbeatd.model import AlertEvent, AlertState, Ping, PingKind, Secret
from tests.channels.samples import DOWN
from tests.harness import open_stack
from tests.test_policy import HOUR, MIN, NOW, Monitor, Rules

PAGER = Rules(escalations=(("pager", 30 * 60),))
ESC = AlertEvent.ESCALATION


def down_at(rules: Rules) -> Monitor:
    m = Monitor.up_at(NOW, rules)
    m.ping(PingKind.FAIL, NOW + 5 * MIN)
    assert m.events() == [(AlertEvent.DOWN, NOW + 5 * MIN)]
    return m


def escalations(m: Monitor) -> list[tuple[tuple[str, ...], object]]:
    return [(f.channels, f.at) for f in m.flips if f.event is ESC]


# -- the table ---------------------------------------------------------------------


def test_an_unacknowledged_incident_escalates_after_the_wait_and_not_before():
    m = down_at(PAGER)
    m.run_until(NOW + 35 * MIN - MIN)
    assert escalations(m) == []
    m.run_until(NOW + 35 * MIN)
    assert escalations(m) == [(("pager",), NOW + 35 * MIN)]
    m.run_until(NOW + 10 * HOUR)
    assert len(escalations(m)) == 1


def test_steps_escalate_in_turn_and_an_ack_between_them_stops_the_rest():
    m = down_at(Rules(escalations=(("sms", 10 * 60), ("pager", 30 * 60))))
    m.run_until(NOW + 20 * MIN)
    assert escalations(m) == [(("sms",), NOW + 15 * MIN)]
    acked = policy.acknowledge(m.state, NOW + 20 * MIN, "ana", "on it")
    assert acked is not None
    m.state = acked
    m.run_until(NOW + 10 * HOUR)
    assert escalations(m) == [(("sms",), NOW + 15 * MIN)]


def test_an_ack_before_the_wait_stops_escalation_and_reminders():
    m = down_at(replace(PAGER, repeat=600))
    m.run_until(NOW + 16 * MIN)
    assert [e for e, _ in m.events()] == [AlertEvent.DOWN, AlertEvent.REMINDER]
    acked = policy.acknowledge(m.state, NOW + 16 * MIN, "ana", "")
    assert acked is not None and acked.acked_by == "ana"
    m.state = acked
    m.run_until(NOW + 10 * HOUR)
    assert [e for e, _ in m.events()] == [AlertEvent.DOWN, AlertEvent.REMINDER]


def test_recovery_ends_the_incident_and_cancels_its_escalation():
    m = down_at(PAGER)
    m.ping(PingKind.SUCCESS, NOW + 20 * MIN)
    assert m.events()[-1] == (AlertEvent.UP, NOW + 20 * MIN)
    assert m.state.alerted_at is None and m.state.ack_token == ""
    # Until just before it misses its next run (a new incident).
    m.run_until(NOW + 80 * MIN)
    assert escalations(m) == []


def test_the_next_incident_escalates_again_after_an_ack_of_the_last():
    m = down_at(PAGER)
    acked = policy.acknowledge(m.state, NOW + 6 * MIN, "ana", "")
    assert acked is not None
    m.state = acked
    m.ping(PingKind.SUCCESS, NOW + 10 * MIN)
    assert m.state.acked_at is None
    m.ping(PingKind.FAIL, NOW + 20 * MIN)
    m.run_until(NOW + 51 * MIN)
    assert escalations(m) == [(("pager",), NOW + 50 * MIN)]


def test_there_is_nothing_to_acknowledge_while_quiet_and_a_second_ack_keeps_the_first():
    m = Monitor.up_at(NOW, PAGER)
    assert policy.acknowledge(m.state, NOW, "ana", "") is None
    m = down_at(PAGER)
    first = policy.acknowledge(m.state, NOW + 6 * MIN, "ana", "first")
    assert first is not None
    assert policy.acknowledge(first, NOW + 7 * MIN, "bo", "second") is first


def test_a_snooze_holds_an_escalation_until_its_end():
    m = down_at(PAGER)
    m.state = policy.snooze(m.state, NOW + 2 * HOUR, "")
    m.run_until(NOW + 2 * HOUR - MIN)
    assert escalations(m) == []
    m.run_until(NOW + 3 * HOUR)
    assert escalations(m) == [(("pager",), NOW + 35 * MIN)]


def test_an_escalation_counts_as_sent_in_the_stored_form_so_a_restart_does_not_repeat_it():
    m = down_at(PAGER)
    m.run_until(NOW + 40 * MIN)
    assert len(escalations(m)) == 1
    restored = type(m.state).from_json(m.state.to_json())
    assert restored == m.state
    m.state = policy.on_startup(restored, m.rules, NOW + 2 * HOUR)
    m.run_until(NOW + 10 * HOUR)
    assert len(escalations(m)) == 1


def test_a_restart_before_it_was_due_still_escalates():
    m = down_at(PAGER)
    m.run_until(NOW + 10 * MIN)
    restored = type(m.state).from_json(m.state.to_json())
    # heartbeatd was down from +10 min to +1 h: the due escalation goes out.
    m.state = policy.on_startup(restored, m.rules, NOW + HOUR)
    assert policy.next_deadline(m.state, m.rules) == NOW + 35 * MIN
    m.run_until(NOW + HOUR)
    assert escalations(m) == [(("pager",), NOW + 35 * MIN)]


def test_a_failure_after_the_down_alert_keeps_the_incident():
    m = down_at(PAGER)
    alerted = m.state.alerted_at
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    assert m.state.alerted_at == alerted and m.state.alert is AlertState.ALERTING


def test_a_pause_ends_the_incident():
    m = down_at(PAGER)
    paused = policy.pause(states.pause(m.state))
    assert escalation.due(paused, PAGER) is None and paused.alerted_at is None


# -- the config ----------------------------------------------------------------------

CHANNELS = """
[channels.ops]
type = "log"
[channels.pager]
type = "log"
"""


def test_channels_mix_names_and_escalation_entries(tmp_path: Path):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(
        CHANNELS
        + '[monitors.db]\nperiod = "1h"\n'
        + 'channels = ["ops", {channel = "pager", after = "30m"}]\n'
    )
    monitor = load_config(path).monitors["db"]
    assert monitor.channels == ("ops",)
    assert monitor.escalations == (("pager", 1800),)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('{channel = "pagr", after = "30m"}', 'channels: entry 2: no channel named "pagr"'),
        ('{channel = "pager", after = "soon"}', "channels: entry 2: after: "),
        ('{channel = "pager"}', 'channels: entry 2: expected a channel name or {channel = "pager"'),
    ],
)
def test_a_bad_escalation_entry_is_an_error_naming_it(tmp_path: Path, entry, problem):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(CHANNELS + f'[monitors.db]\nperiod = "1h"\nchannels = ["ops", {entry}]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [message] = caught.value.problems
    assert f"monitors.db.{problem}" in message


# -- over HTTP -------------------------------------------------------------------------

TOKEN = "t0ken"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = f"""
[server]
api_token = "{TOKEN}"

[storage]
path = "hb.db"

[channels.log]
type = "log"
[channels.pager]
type = "log"

[monitors.backup]
period = "1h"
channels = ["log", {{channel = "pager", after = "30m"}}]
"""


@pytest.fixture
async def client(tmp_path, aiohttp_client, clock):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG))
    stack = await open_stack(path, clock)
    client = await aiohttp_client(stack.app())
    client.engine = stack.engine
    client.stack = stack
    yield client
    await stack.store.close()


async def fail(client, clock) -> str:
    await client.engine.handle_ping("backup", Ping(PingKind.FAIL, clock.now()))
    token = client.engine.state("backup").ack_token
    assert len(token) >= 32
    return token


async def test_the_api_acks_with_the_write_token_only(client, clock):
    body = {"note": "on it", "by": "ana"}
    assert (
        await client.post("/api/v1/monitors/backup/ack", json=body, headers=BEARER)
    ).status == 409
    await fail(client, clock)
    refused = await client.post("/api/v1/monitors/backup/ack", json=body)
    assert refused.status in (401, 403)
    answer = await client.post("/api/v1/monitors/backup/ack", json=body, headers=BEARER)
    assert answer.status == 200
    shown = await answer.json()
    assert (shown["acked_by"], shown["ack_note"]) == ("ana", "on it")
    assert shown["acked_at"] == clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    page = await (await client.get("/monitors/backup", headers=BEARER)).text()
    assert "Acknowledged" in page and "on it" in page


async def test_the_link_shows_a_form_on_get_and_acks_only_on_its_post(client, clock):
    token = await fail(client, clock)
    page = await client.get(f"/ack/{token}")
    assert page.status == 200
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    text = await page.text()
    assert re.search(rf'name="token" value="{re.escape(token)}"', text)
    assert client.engine.state("backup").acked_at is None
    # A POST without the token in its form (a cross-site form) is refused.
    forged = await client.post(f"/ack/{token}", data={"by": "x"})
    assert forged.status == 403 and client.engine.state("backup").acked_at is None
    done = await client.post(f"/ack/{token}", data={"token": token, "by": "ana", "note": "hi"})
    assert done.status == 200 and "Acknowledged by ana" in await done.text()
    state = client.engine.state("backup")
    assert (state.acked_by, state.ack_note) == ("ana", "hi")


async def test_a_wrong_or_stale_link_is_not_found(client, clock):
    token = await fail(client, clock)
    assert (await client.get("/ack/" + "x" * len(token))).status == 404
    await client.engine.handle_ping("backup", Ping(PingKind.SUCCESS, clock.now()))
    assert (await client.get(f"/ack/{token}")).status == 404
    assert (await client.post(f"/ack/{token}", data={"token": token})).status == 404


async def test_the_down_alert_carries_the_link_and_the_escalation_goes_to_pager_only(client, clock):
    token = await fail(client, clock)
    rows = await client.stack.store.claim_due(clock.now())
    downs = [r for r in rows if r.alert.event is AlertEvent.DOWN]
    assert [r.channel for r in downs] == ["log"]
    assert downs[0].alert.ack_url.endswith(f"/ack/{token}")
    assert downs[0].alert.to_json()["ack_url"] == downs[0].alert.ack_url
    clock.advance(31 * 60)
    client.engine.tick(clock.now())
    await client.stack.store.flush()
    rows = await client.stack.store.claim_due(clock.now())
    escalated = [r for r in rows if r.alert.event is ESC]
    assert [r.channel for r in escalated] == ["pager"]


# -- how channels show the link and the escalation ------------------------------------

LINK = "https://hb.example.com/ack/s3cret-t0ken"


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("email", lambda a: email.render_body(a)),
        ("slack", lambda a: json.dumps(slack.render(a, slack.Options(url=Secret("https://x"))))),
        (
            "discord",
            lambda a: json.dumps(discord.render(a, discord.Options(url=Secret("https://x")))),
        ),
    ],
)
def test_prose_channels_carry_the_ack_link_and_name_the_escalation(name, render):
    down = replace(DOWN, ack_url=LINK)
    assert LINK in render(down), name
    assert LINK not in render(DOWN), name
    escalated = replace(down, event=ESC)
    assert "ESCALATION" in text.title(escalated)
    assert "nobody has acknowledged" in render(escalated), name
