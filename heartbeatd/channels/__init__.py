"""Alert channels: one module per type; this registry is the only place a type
name maps to a module."""

from __future__ import annotations

from typing import Any

from heartbeatd.channels import command, discord, email, log, ntfy, slack, telegram, webhook
from heartbeatd.channels.base import ChannelType

# Any: each type has its own Options; the config pairs a type with its own
# options, so a send always gets the options its module parsed.
CHANNEL_TYPES: dict[str, ChannelType[Any]] = {
    "log": log,
    "email": email,
    "webhook": webhook,
    "slack": slack,
    "discord": discord,
    "ntfy": ntfy,
    "telegram": telegram,
    "command": command,
}
