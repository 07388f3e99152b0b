from __future__ import annotations

from pathlib import Path

import pytest

from heartbeatd.client import daemon_url
from heartbeatd.config import parse_config


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:8080", "http://[::1]:8080"),
        ("[::1]:80", "http://[::1]:80"),
        ("[2001:db8::5]:8080", "http://[2001:db8::5]:8080"),
        ("hb.internal:1", "http://hb.internal:1"),
    ],
    ids=["v4", "v4-wildcard", "v6-wildcard", "v6", "v6-address", "name"],
)
def test_it_finds_the_daemon_at_its_first_listen_address(listen: str, url: str) -> None:
    data = {"server": {"listen": [listen, "127.0.0.1:1"]}}
    config = parse_config(data, Path("heartbeatd.toml"))
    assert daemon_url(config) == url
