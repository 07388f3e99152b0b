"""Finding a check by the uuid or unique_key the Healthchecks API gives it.

A file monitor without a `uuid` is addressed by one derived from its slug,
and read-only keys address every check by its unique_key (hcjson.py). Both
are hashes: working them out monitor by monitor on each request took over a
second of the loop at 100,000 monitors, for every unknown id too.
Here they are worked out once per config, in a thread, and looked up after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from heartbeatd import hcjson
from heartbeatd.config import Config, Monitor


@dataclass(frozen=True)
class CheckCodes:
    """slug by check uuid, and by unique_key, of every monitor of one config."""

    by_uuid: dict[str, str]
    by_unique_key: dict[str, str]


def check_codes(monitors: Mapping[str, Monitor]) -> CheckCodes:
    """Pure; reads an immutable config's monitors, so it may run in a thread."""
    by_uuid: dict[str, str] = {}
    by_unique_key: dict[str, str] = {}
    for slug, monitor in monitors.items():
        code = hcjson.check_code(monitor)
        by_uuid[code] = slug
        by_unique_key[hcjson.unique_key(code)] = slug
    return CheckCodes(by_uuid, by_unique_key)


class CheckCodeIndex:
    """CheckCodes of the running config, made again after it is replaced."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._codes: asyncio.Future[CheckCodes] | None = None

    async def of(self, config: Config) -> CheckCodes:
        failed = self._codes is not None and self._codes.done() and not _built(self._codes)
        if self._config is not config or self._codes is None or failed:
            # A build that failed is tried again by the next request.
            # One build per config, shared by the requests that wait for it.
            self._config = config
            self._codes = asyncio.ensure_future(asyncio.to_thread(check_codes, config.monitors))
        return await asyncio.shield(self._codes)


def _built(codes: asyncio.Future[CheckCodes]) -> bool:
    return not codes.cancelled() and codes.exception() is None
