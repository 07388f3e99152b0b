"""The `email` channel, sent through the [smtp] relay with aiosmtplib."""

from __future__ import annotations

from dataclasses import dataclass

from heartbeatd.model import Secret
from heartbeatd.tables import Table


@dataclass(frozen=True)
class SmtpOptions:
    host: str
    port: int
    # Implicit TLS from the first byte (usually port 465).
    tls: bool
    # Upgrade a plain connection with STARTTLS (usually port 587).
    starttls: bool
    username: str | None
    password: Secret | None
    sender: str
    timeout: float


def parse_smtp(table: Table) -> SmtpOptions:
    """Read the [smtp] table. Problems are recorded on the table."""
    host = table.str("host")
    tls = table.bool("tls", False)
    port = table.int("port", 465 if tls else 587, min=1, max=65535)
    starttls = table.bool("starttls", not tls)
    if tls and starttls and table.has("starttls"):
        table.error("starttls", "give either tls = true or starttls = true, not both")
    username = table.str("username", None)
    password = table.secret("password", required=False)
    if password is not None and username is None:
        table.error("password", "a password needs a username")
    sender = table.str("from")
    timeout = table.duration("timeout", 30)
    table.done()
    return SmtpOptions(
        host=host or "",
        port=port or 587,
        tls=bool(tls),
        starttls=bool(starttls) and not tls,
        username=username,
        password=password,
        sender=sender or "",
        timeout=float(timeout or 30),
    )
