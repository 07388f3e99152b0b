"""A real SMTP server (aiosmtpd) that records the messages it accepts."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from heartbeatd.channels.email import SmtpOptions


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpSink:
    """An aiosmtpd handler that records messages.

    `data_replies` answer the DATA of the next messages in turn (e.g. a 451
    once); `rcpt_reply` answers every RCPT (e.g. a 550).
    """

    def __init__(self, data_replies: list[str] | None = None, rcpt_reply: str | None = None):
        self.data_replies = list(data_replies or [])
        self.rcpt_reply = rcpt_reply
        self.messages: list[Mail] = []
        self.port = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_replies:
            return self.data_replies.pop(0)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def options(self, **changes: Any) -> SmtpOptions:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "tls": False,
            "starttls": False,
            "username": None,
            "password": None,
            "sender": "heartbeatd <hb@example.com>",
            "timeout": 5.0,
        }
        values.update(changes)
        return SmtpOptions(**values)
