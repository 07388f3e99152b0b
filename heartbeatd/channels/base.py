"""What every channel module shares: the failure type and the send context.

A channel module provides:

- `Options`: a frozen dataclass of its settings;
- `parse_options(table, env) -> Options`: reads its `[channels.<name>]` table,
  recording problems on the table (never raising), so `heartbeatd check`
  reports a bad URL before the first alert needs it;
- `render(alert, opts)`: a pure function building the payload;
- `async send(alert, opts, ctx)`: one attempt. It raises
  `DeliveryError(message, permanent=...)` and never loops or sleeps: the
  outbox decides when to try again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp


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
