"""Alert channels: one module per type; this registry is the only place a type
name maps to a module."""

from __future__ import annotations

from types import ModuleType

from heartbeatd.channels import command, discord, email, log, ntfy, slack, telegram, webhook

CHANNEL_TYPES: dict[str, ModuleType] = {
    "log": log,
    "email": email,
    "webhook": webhook,
    "slack": slack,
    "discord": discord,
    "ntfy": ntfy,
    "telegram": telegram,
    "command": command,
}
