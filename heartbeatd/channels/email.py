"""The `email` channel, sent through the [smtp] relay with aiosmtplib."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib

from heartbeatd.alerts import Alert
from heartbeatd.channels import text
from heartbeatd.channels.base import DeliveryError, ParseEnv, SendContext, describe_failure
from heartbeatd.model import Secret
from heartbeatd.tables import Table

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class SmtpOptions:
    """The [smtp] relay, read with the other top-level tables by
    heartbeatd.config.sections.read_smtp."""

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


@dataclass(frozen=True)
class Options:
    # None only in a config the loader rejects anyway (no [smtp] table).
    smtp: SmtpOptions | None
    to: tuple[str, ...]
    subject_prefix: str = ""


def parse_options(table: Table, env: ParseEnv) -> Options:
    to = table.text_list("to", allow_text=True) or []
    if table.has("to") and isinstance(table.data["to"], list) and not to:
        table.error("to", "needs at least one address")
    for address in to:
        message = _check_address(address)
        if message is not None:
            table.error("to", message)
    prefix = table.text("subject_prefix", "")
    # The one place this is checked: the config reads every channel alike.
    if env.smtp is None:
        table.error("type", "an email channel needs an [smtp] table")
    return Options(smtp=env.smtp, to=tuple(to), subject_prefix=prefix.strip())


def render(alert: Alert, opts: Options) -> EmailMessage:
    message = EmailMessage()
    subject = text.title(alert)
    message["Subject"] = f"{opts.subject_prefix} {subject}" if opts.subject_prefix else subject
    if opts.smtp is not None:
        message["From"] = opts.smtp.sender
    message["To"] = ", ".join(opts.to)
    message["Date"] = format_datetime(alert.at)
    message.set_content(render_body(alert))
    return message


def render_body(alert: Alert) -> str:
    lines = [text.headline(alert), ""]
    rows = text.facts(alert)
    if alert.url:
        rows.append(("Link", alert.url))
    width = max(len(label) for label, _ in rows) + 1
    lines += [f"{label + ':':<{width}} {value}" for label, value in rows]
    if alert.body.strip():
        lines += ["", "Last output:", "", text.excerpt(alert.body)]
    return "\n".join(lines) + "\n"


async def send(alert: Alert, opts: Options, ctx: SendContext) -> None:
    smtp = opts.smtp
    if smtp is None:
        raise DeliveryError("email: no [smtp] table is configured", permanent=True)
    where = f"email via {smtp.host}:{smtp.port}"
    message = render(alert, opts)
    sender = parseaddr(smtp.sender)[1]
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    password = smtp.password.reveal() if smtp.password is not None else None
    try:
        refused, _ = await ctx.clock.wait_for(
            aiosmtplib.send(
                message,
                sender=sender,
                recipients=[parseaddr(a)[1] for a in opts.to],
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=password,
                use_tls=smtp.tls,
                start_tls=smtp.starttls,
                timeout=smtp.timeout,
            ),
            ctx.timeout,
        )
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
        raise classify(exc, where, password) from None
    if refused:
        # Some recipients have it; sending again would repeat it to them.
        shown = ", ".join(f"{addr} ({reply.code})" for addr, reply in refused.items())
        log.warning("email_partly_refused server=%s:%s refused=%s", smtp.host, smtp.port, shown)


def classify(exc: BaseException, where: str, password: str | None) -> DeliveryError:
    """SMTP 4xx and network trouble are retryable; 5xx (incl. 535 auth) permanent."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        shown = ", ".join(f"{r.recipient} ({r.code})" for r in exc.recipients)
        permanent = all(code >= 500 for code in codes)
        return DeliveryError(f"{where}: recipients refused: {shown}", permanent=permanent)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = (
            "authentication failed: " if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else ""
        )
        reply = _scrub(exc.message, password)
        return DeliveryError(f"{where}: {what}{exc.code} {reply}", permanent=500 <= exc.code < 600)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return DeliveryError(f"{where}: server closed the connection", permanent=False)
    # SMTPConnectError and SMTPTimeoutError are OSErrors too.
    if isinstance(exc, (asyncio.TimeoutError, OSError)):
        return DeliveryError(f"{where}: {describe_failure(exc)}", permanent=False)
    # What is left says the server lacks STARTTLS, AUTH or SMTPUTF8: a config
    # problem that waiting will not fix.
    message = exc.message if isinstance(exc, aiosmtplib.SMTPException) else type(exc).__name__
    return DeliveryError(f"{where}: {_scrub(message, password)}", permanent=True)


def _scrub(reply: str, password: str | None) -> str:
    """A server reply, trimmed, with the password cut out should a server echo it."""
    reply = " ".join(reply.split())[:200]
    if password:
        reply = reply.replace(password, "<secret>")
    return reply


def _check_address(address: str) -> str | None:
    parsed = parseaddr(address)[1]
    if "," in address or not _ADDRESS.fullmatch(parsed):
        return f'expected an email address like "ops@example.com", got "{address}"'
    return None
