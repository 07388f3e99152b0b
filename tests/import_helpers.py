"""What the import tests share: the fixtures' place, a recording ping server,
and feeding printed TOML back through the config loader."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from heartbeatd.config import Config, parse_config

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_printed(toml: str, tmp_path: Path) -> Config:
    """The config a printed import makes, through the real loader (with a
    [storage] path, which every config needs)."""
    data = tomllib.loads(toml)
    data.setdefault("storage", {"path": str(tmp_path / "hb.db")})
    return parse_config(data, tmp_path / "heartbeatd.toml")


@dataclass
class PingLog:
    """A ping endpoint that records (slug, action, body) and answers OK."""

    url: str = ""
    pings: list[tuple[str, str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode(errors="replace")
        action = request.match_info.get("action", "")
        self.pings.append((request.match_info["slug"], action, body))
        return web.Response(text="OK", headers={"Ping-Body-Limit": "10000"})


@pytest.fixture
async def ping_log(aiohttp_server) -> PingLog:
    log = PingLog()
    app = web.Application()
    app.router.add_route("*", "/ping/{slug}", log.handle)
    app.router.add_route("*", "/ping/{slug}/{action}", log.handle)
    server = await aiohttp_server(app)
    log.url = str(server.make_url("")).rstrip("/")
    return log
