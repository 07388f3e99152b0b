"""Tags: read from the file, indexed per tag, shown by the API, `status --tag`
and the per-tag badges."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from heartbeatd.config import load_config
from heartbeatd.pages import tag_status
from heartbeatd.tables import ConfigError
from tests.harness import open_stack

CONFIG = """
[defaults]
tags = ["prod"]

[channels.log]
type = "log"

[monitors.backup]
period = "1h"
grace = "5m"
tags = ["db", "backup", "db"]

[monitors.dump]
period = "1h"
grace = "5m"
tags = ["db"]

[monitors.web]
period = "1d"

[monitors.tag]
period = "1d"
tags = []
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def test_tags_are_read_in_order_without_repeats_and_default_from_defaults(tmp_path):
    config = load_config(write(tmp_path, CONFIG))

    assert config.monitors["backup"].tags == ("db", "backup")
    # Like every [defaults] key, a monitor's own list replaces the default.
    assert config.monitors["web"].tags == ("prod",)
    assert config.monitors["tag"].tags == ()
    assert config.tagged == {"db": ("backup", "dump"), "backup": ("backup",), "prod": ("web",)}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["DB"]', 'a tag may use only a-z, 0-9, "_" and "-", got "DB"'),
        ('[""]', "a tag must not be empty"),
        ('"db"', 'expected a list of strings, got "db"'),
        ("[1]", "expected a list of strings, got [1]"),
    ],
)
def test_a_bad_tag_is_an_error_naming_the_key(tmp_path, value, message):
    text = f'[monitors.backup]\nperiod = "1h"\ntags = {value}\n'

    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))

    assert caught.value.problems == [f"{tmp_path}/heartbeatd.toml: monitors.backup.tags: {message}"]


def test_a_bad_default_tag_is_an_error_naming_defaults(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[defaults]\ntags = ["a b"]\n'))

    assert caught.value.problems == [
        f'{tmp_path}/heartbeatd.toml: defaults.tags: a tag may use only a-z, 0-9, "_" and "-", '
        'got "a b"'
    ]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["up", "up"], "up"),
        (["new", "up"], "up"),
        (["up", "late", "new"], "late"),
        (["late", "down", "up"], "down"),
        (["paused", "down"], "down"),
        (["paused", "up"], "up"),
        (["paused", "paused"], "paused"),
        (["new"], "up"),
    ],
)
def test_a_tag_shows_its_worst_monitor_that_is_not_paused(statuses, expected):
    assert tag_status(statuses) == expected


@pytest.fixture
async def client(tmp_path, aiohttp_client, clock):
    stack = await open_stack(write(tmp_path, CONFIG), clock)
    client = await aiohttp_client(stack.app())
    client.engine, client.store = stack.engine, stack.store
    yield client
    await stack.store.close()


async def test_the_api_shows_tags(client):
    monitor = await (await client.get("/api/v1/monitors/backup")).json()

    assert monitor["tags"] == ["db", "backup"]


async def test_a_tag_badge_shows_the_worst_of_its_monitors(client, clock):
    assert (await (await client.get("/badge/tag/db.json")).json())["message"] == "up"
    await client.post("/ping/backup")
    await client.post("/ping/dump/1")

    badge = await (await client.get("/badge/tag/db.json")).json()
    svg = await (await client.get("/badge/tag/db.svg")).text()

    assert badge == {"schemaVersion": 1, "label": "db", "message": "down", "color": "red"}
    assert 'aria-label="db: down"' in svg


@pytest.mark.parametrize(
    "path", ["/badge/tag/nope.svg", "/badge/tag/db.png", "/badge/tag/db/x.svg"]
)
async def test_a_badge_for_an_unknown_tag_is_404(client, path):
    assert (await client.get(path)).status == 404


async def test_a_monitor_named_tag_keeps_its_badge(client):
    badge = await (await client.get("/badge/tag.json")).json()

    assert badge["label"] == "tag"


async def test_metrics_carry_a_series_per_monitor_and_tag(client):
    text = await (await client.get("/metrics")).text()

    tagged = sorted(
        line for line in text.splitlines() if line.startswith("heartbeatd_monitor_tag{")
    )
    assert tagged == [
        'heartbeatd_monitor_tag{monitor="backup",tag="backup"} 1',
        'heartbeatd_monitor_tag{monitor="backup",tag="db"} 1',
        'heartbeatd_monitor_tag{monitor="dump",tag="db"} 1',
        'heartbeatd_monitor_tag{monitor="web",tag="prod"} 1',
    ]
