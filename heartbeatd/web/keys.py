"""The application's typed state: the aiohttp AppKeys every handler reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from heartbeatd import metrics
from heartbeatd.clock import Clock
from heartbeatd.engine import Engine
from heartbeatd.looplag import LoopLag
from heartbeatd.outbox import Outbox
from heartbeatd.provision import Provisioner
from heartbeatd.strays import StrayPings
from heartbeatd.web.hccodes import CheckCodeIndex

# Returns None when healthy, else what is wrong.
Health = Callable[[], Awaitable["str | None"]]

ENGINE = web.AppKey("engine", Engine)
CLOCK = web.AppKey("clock", Clock)
HEALTH: web.AppKey[Health] = web.AppKey("health")
# Both optional: metrics leave out what they do not have.
OUTBOX = web.AppKey("outbox", Outbox)
RELOADS = web.AppKey("reloads", metrics.ReloadStats)
# Bounds the scrypt checks of basic-auth logins (guards.py).
LOGINS = web.AppKey("logins", asyncio.Semaphore)
# Seconds a ping's body may take to arrive (ping.py).
BODY_TIMEOUT_KEY = web.AppKey("body_timeout", float)
# The daemon's stall meter, for /metrics (optional).
LOOP_LAG = web.AppKey("loop_lag", LoopLag)
# Monitors created at run time (hcapi.py, and ping.py's ?create=1).
PROVISIONER = web.AppKey("provisioner", Provisioner)
# Pings to no known monitor (ping.py counts them; page, API and /metrics show them).
STRAYS = web.AppKey("strays", StrayPings)
# The Healthchecks API's check uuids and unique_keys of the running config (hcapi.py).
CHECK_CODES = web.AppKey("check_codes", CheckCodeIndex)
