"""Snoozes: the policy's hold (pure, explicit times), the ping verb's URL
grammar, and the API and ping verb over real HTTP with a real SQLite file."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from heartbeatd import pingurl, policy, states
from heartbeatd.model import AlertEvent, AlertState, PingKind, Status
from tests.harness import open_stack
from tests.test_policy import HOUR, MIN, NOW, Monitor, Rules

# -- the hold ----------------------------------------------------------------------


def snoozed(rules: Rules, until: timedelta) -> Monitor:
    m = Monitor.up_at(NOW, rules)
    m.state = policy.snooze(m.state, NOW + until, "deploy")
    return m


def test_a_down_inside_a_snooze_is_held_and_alerts_once_at_its_end():
    m = snoozed(Rules(), 2 * HOUR)
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    assert m.flips[-1].new is Status.DOWN and m.flips[-1].held_by == "snooze"
    assert policy.held_by(m.state, m.rules, m.at) == "snooze"
    assert m.state.alert is AlertState.QUIET
    m.run_until(NOW + 2 * HOUR - timedelta(seconds=1))
    assert m.events() == []
    m.run_until(NOW + 3 * HOUR)
    assert m.events() == [(AlertEvent.DOWN, NOW + 2 * HOUR)]
    assert m.state.snoozed_until is None and m.state.alert is AlertState.ALERTING


def test_down_and_back_inside_a_snooze_sends_nothing():
    m = snoozed(Rules(), 2 * HOUR)
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    m.ping(PingKind.SUCCESS, NOW + 20 * MIN)
    m.ping(PingKind.SUCCESS, NOW + 80 * MIN)
    m.run_until(NOW + 2 * HOUR + MIN)
    assert m.events() == []
    assert m.state.snoozed_until is None


def test_at_its_end_the_thresholds_still_count():
    m = snoozed(Rules(alert_after=2), 30 * MIN)
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    m.run_until(NOW + 31 * MIN)
    assert m.events() == []
    m.ping(PingKind.FAIL, NOW + 40 * MIN)
    assert m.events() == [(AlertEvent.DOWN, NOW + 40 * MIN)]


def test_it_holds_reminders_but_not_the_recovery_of_an_alert_already_sent():
    m = Monitor.up_at(NOW, Rules(repeat=600))
    m.ping(PingKind.FAIL, NOW + 5 * MIN)
    m.state = policy.snooze(m.state, NOW + HOUR, "")
    m.run_until(NOW + 50 * MIN)
    m.ping(PingKind.SUCCESS, NOW + 50 * MIN)
    assert m.events() == [(AlertEvent.DOWN, NOW + 5 * MIN), (AlertEvent.UP, NOW + 50 * MIN)]


def test_an_unsnooze_judges_what_it_held_at_once():
    m = snoozed(Rules(), 2 * HOUR)
    m.ping(PingKind.FAIL, NOW + 10 * MIN)
    step = policy.unsnooze(m.state, m.rules, NOW + 20 * MIN)
    assert step.flip is not None
    assert (step.flip.event, step.flip.at) == (AlertEvent.DOWN, NOW + 20 * MIN)
    assert step.state.snoozed_until is None
    assert policy.unsnooze(step.state, m.rules, NOW + 21 * MIN).flip is None


def test_a_snooze_survives_the_stored_form():
    state = policy.snooze(states.first_seen(Rules(), NOW), NOW + HOUR, "deploy 4.2")
    restored = type(state).from_json(state.to_json())
    assert (restored.snoozed_until, restored.snooze_reason) == (NOW + HOUR, "deploy 4.2")


# -- the ping verb's grammar ----------------------------------------------------------

UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"


@pytest.mark.parametrize(
    ("tail", "key", "found"),
    [
        (f"{UUID}/snooze/2h", None, (pingurl.By.UUID, UUID, "2h")),
        (f"{UUID}/snooze/2h", "k3y", (pingurl.By.UUID, UUID, "2h")),
        ("backup/snooze/30m", None, (pingurl.By.SLUG, "backup", "30m")),
        ("k3y/backup/snooze/30m", "k3y", (pingurl.By.SLUG, "backup", "30m")),
        # A monitor named "snooze" pinged with an exit status, by key.
        ("k3y/snooze/5", "k3y", None),
        ("backup/fail", None, None),
        ("backup/snooze", None, None),
        ("k3y/backup/snooze/30m", None, None),
    ],
    ids=[
        "uuid",
        "uuid-with-key",
        "slug",
        "key-slug",
        "slug-named-snooze",
        "ping",
        "short",
        "4-no-key",
    ],
)
def test_it_reads_snooze_urls_and_leaves_pings_alone(tail, key, found):
    parsed = pingurl.parse_snooze(tail, ping_key=key)
    if found is None:
        assert parsed is None
    else:
        assert parsed is not None
        target, text = parsed
        assert (target.by, target.monitor, text) == found


def test_a_snooze_url_with_a_wrong_key_is_not_found():
    with pytest.raises(pingurl.PingUrlError) as caught:
        pingurl.parse_snooze("nope/backup/snooze/1h", ping_key="k3y")
    assert caught.value.status == 404


# -- over HTTP ------------------------------------------------------------------------

TOKEN = "t0ken"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = f"""
[server]
api_token = "{TOKEN}"

[storage]
path = "hb.db"

[channels.log]
type = "log"

[monitors.backup]
period = "1h"
uuid = "{UUID}"
"""


@pytest.fixture
async def client(tmp_path, aiohttp_client, clock):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG))
    stack = await open_stack(path, clock)
    client = await aiohttp_client(stack.app())
    client.engine = stack.engine
    yield client
    await stack.store.close()


async def test_the_api_snoozes_with_the_write_token_only(client, clock):
    body = {"for": "2h", "reason": "deploy"}
    refused = await client.post("/api/v1/monitors/backup/snooze", json=body)
    assert refused.status in (401, 403)
    answer = await client.post("/api/v1/monitors/backup/snooze", json=body, headers=BEARER)
    assert answer.status == 200
    shown = await answer.json()
    until = (clock.now() + 2 * HOUR).replace(microsecond=0)
    assert shown["snoozed_until"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert shown["snooze_reason"] == "deploy"
    again = await client.post("/api/v1/monitors/backup/unsnooze", headers=BEARER)
    assert (await again.json())["snoozed_until"] is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"reason": "x"}, 'body must be JSON like {"for": "2h", "reason": "deploy"}'),
        ({"for": "2 hours"}, "for: "),
        ({"for": "1h", "reason": 5}, "reason must be a string of at most 500 characters"),
    ],
    ids=["no-for", "bad-duration", "bad-reason"],
)
async def test_a_bad_snooze_is_a_400_naming_what_is_wrong(client, body, error):
    answer = await client.post("/api/v1/monitors/backup/snooze", json=body, headers=BEARER)
    assert answer.status == 400
    assert (await answer.json())["error"].startswith(error)


async def test_the_ping_verb_snoozes_and_is_no_ping(client, clock):
    answer = await client.get(f"/ping/{UUID}/snooze/30m")
    assert (answer.status, await answer.text()) == (200, "OK")
    state = client.engine.state("backup")
    assert state.snoozed_until == clock.now() + 30 * MIN
    assert state.n_pings == 0
    assert (await client.get("/ping/backup/snooze/soon")).status == 400
    assert (await client.get("/ping/nope/snooze/1h")).status == 404
