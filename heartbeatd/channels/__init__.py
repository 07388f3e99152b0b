"""Alert channels: one module per type; this registry is the only place a type
name maps to a module."""

from __future__ import annotations

from types import ModuleType

from heartbeatd.channels import log

CHANNEL_TYPES: dict[str, ModuleType] = {
    "log": log,
}
