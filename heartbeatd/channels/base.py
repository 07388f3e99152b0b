"""What every channel module shares: the contract it satisfies (`ChannelType`),
the failure type and the parse and send contexts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp

from heartbeatd.model import Alert
from heartbeatd.tables import Table


class DeliveryError(Exception):
    """One failed attempt. `permanent` means trying again cannot help.

    The message names the host and the status, never a URL path or a token.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class ParseEnv:
    """What option parsers may need beyond their own table."""

    # The directory of the config file: relative *_file paths start there.
    base_dir: Path
    # The parsed [smtp] table (heartbeatd.channels.email.SmtpOptions) or None.
    smtp: Any = None


@dataclass(frozen=True)
class SendContext:
    """What one send attempt may use. Owned and closed by the delivery worker."""

    session: aiohttp.ClientSession
    # Seconds one attempt may take, from [alerts] send_timeout.
    timeout: float = 30.0


OptionsT = TypeVar("OptionsT")


class ChannelType(Protocol[OptionsT]):
    """What a channel module provides; the modules themselves satisfy it.

    - `Options`: a frozen dataclass of its settings;
    - `parse_options(table, env)`: reads its `[channels.<name>]` table,
      recording problems on the table (never raising), so `heartbeatd check`
      reports a bad URL before the first alert needs it;
    - `render(alert, opts)`: a pure function building the payload;
    - `send(alert, opts, ctx)`: one attempt. It raises
      `DeliveryError(message, permanent=...)` and never loops or sleeps: the
      outbox decides when to try again.
    """

    @property
    def Options(self) -> type[OptionsT]: ...

    def parse_options(self, table: Table, env: ParseEnv) -> OptionsT: ...

    def render(self, alert: Alert, opts: OptionsT) -> object: ...

    async def send(self, alert: Alert, opts: OptionsT, ctx: SendContext) -> None: ...
