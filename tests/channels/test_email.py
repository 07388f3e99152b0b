"""The email channel: options, subject and body, delivery through a real aiosmtpd."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiosmtpd.smtp import AuthResult

from heartbeatd.channels import email
from heartbeatd.channels.base import DeliveryError, SendContext
from heartbeatd.channels.email import SmtpOptions
from heartbeatd.clock import FakeClock
from heartbeatd.model import Secret
from tests.channels.samples import DOWN, FAILED, REMINDER, TEST, UP, advance_until_done, parse

SMTP = SmtpOptions(
    host="smtp.example.com",
    port=587,
    tls=False,
    starttls=True,
    username="alerts@example.com",
    password=Secret("hunter2"),
    sender="heartbeatd <alerts@example.com>",
    timeout=30.0,
)


def options(smtp: SmtpOptions = SMTP, **changes) -> email.Options:
    opts, problems = parse(email, {"to": ["ops@example.com"], **changes}, smtp=smtp)
    assert problems == []
    return opts


# -- parse_options -------------------------------------------------------------------


def test_it_reads_a_list_of_addresses() -> None:
    opts, problems = parse(
        email,
        {"to": ["ops@example.com", "Night Shift <night@example.com>"], "subject_prefix": "[hb]"},
        smtp=SMTP,
    )
    assert problems == []
    assert opts == email.Options(
        smtp=SMTP, to=("ops@example.com", "Night Shift <night@example.com>"), subject_prefix="[hb]"
    )


def test_it_takes_a_single_address_as_a_string() -> None:
    opts, problems = parse(email, {"to": "ops@example.com"}, smtp=SMTP)
    assert problems == []
    assert opts.to == ("ops@example.com",)


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param({}, ["channels.x.to: is required"], id="no-to"),
        pytest.param({"to": []}, ["channels.x.to: needs at least one address"], id="empty"),
        pytest.param(
            {"to": ["ops"]},
            ['channels.x.to: expected an email address like "ops@example.com", got "ops"'],
            id="not-an-address",
        ),
        pytest.param(
            {"to": "a@example.com, b@example.com"},
            [
                'channels.x.to: expected an email address like "ops@example.com", '
                'got "a@example.com, b@example.com"'
            ],
            id="comma-list",
        ),
        pytest.param(
            {"to": ["ops@example.com"], "subject_prefix": 1},
            ["channels.x.subject_prefix: expected a string, got 1"],
            id="prefix",
        ),
    ],
)
def test_it_reports_bad_options(data: dict, lines: list[str]) -> None:
    _, problems = parse(email, data, smtp=SMTP)
    assert problems == [f"heartbeatd.toml: {line}" for line in lines]


def test_it_needs_an_smtp_table() -> None:
    _, problems = parse(email, {"to": ["ops@example.com"]}, smtp=None)
    assert problems == ["heartbeatd.toml: channels.x.type: an email channel needs an [smtp] table"]


# -- render --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alert", "subject"),
    [
        (DOWN, "DOWN: Nightly Postgres backup"),
        (UP, "UP: Nightly Postgres backup"),
        (REMINDER, "REMINDER: Nightly Postgres backup is still down"),
        (TEST, "TEST: heartbeatd test alert"),
    ],
    ids=["down", "up", "reminder", "test"],
)
def test_it_names_the_event_in_the_subject(alert, subject: str) -> None:
    assert email.render(alert, options())["Subject"] == subject


def test_it_puts_the_prefix_before_the_subject() -> None:
    assert email.render(DOWN, options(subject_prefix="[prod]"))["Subject"] == (
        "[prod] DOWN: Nightly Postgres backup"
    )


def test_it_addresses_the_message() -> None:
    message = email.render(DOWN, options(to=["a@example.com", "b@example.com"]))
    assert message["From"] == "heartbeatd <alerts@example.com>"
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Date"] == "Wed, 14 Jan 2026 12:00:00 +0000"


def test_a_down_body_says_what_happened() -> None:
    assert email.render_body(DOWN) == (
        "Nightly Postgres backup is down: no ping came in time.\n"
        "\n"
        "Monitor:     nightly-backup\n"
        "Status:      down\n"
        "Reason:      no ping came in time\n"
        "Last ping:   2026-01-13T11:30:00Z\n"
        "Expected at: 2026-01-14T11:30:00Z\n"
        "Down since:  2026-01-14T12:00:00Z\n"
        "Link:        https://hb.example.com/monitors/nightly-backup\n"
        "\n"
        "Last output:\n"
        "\n"
        "pg_dump: error: connection to server failed\n"
    )


def test_an_up_body_says_how_long_it_was_down() -> None:
    body = email.render_body(UP)
    assert body.startswith("Nightly Postgres backup is up again after 1 h 5 min.\n")
    assert "Down for:    1 h 5 min\n" in body
    assert "Last output" not in body


def test_it_gives_the_exit_status() -> None:
    assert "Reason:      the job exited with status 3\n" in email.render_body(FAILED)


def test_it_keeps_the_end_of_a_long_output() -> None:
    alert = replace(DOWN, body="x" * 5000 + "the real error\n")
    body = email.render_body(alert)
    tail = body.split("Last output:\n\n", 1)[1]
    assert tail.endswith("the real error\n")
    assert tail.startswith("…x")
    assert len(tail.rstrip("\n")) == 2000


def test_a_test_body_says_it_is_a_test() -> None:
    assert email.render_body(TEST).startswith("This is a test alert from heartbeatd")


# -- send ----------------------------------------------------------------------------


async def test_it_delivers_through_smtp(smtp_sink, ctx: SendContext) -> None:
    opts = options(smtp=smtp_sink.options(), to=["ops@example.com", "Night <night@example.com>"])
    await email.send(DOWN, opts, ctx)
    [received] = smtp_sink.messages
    assert received.mail_from == "hb@example.com"
    assert received.rcpt_tos == ["ops@example.com", "night@example.com"]
    assert received.message["Subject"] == "DOWN: Nightly Postgres backup"
    assert received.message["Message-ID"].endswith("@example.com>")
    text = received.message.get_content().replace("\r\n", "\n")
    assert text == email.render_body(DOWN)


async def test_a_451_is_retryable_and_the_next_attempt_delivers(
    smtp_sink_451_once, ctx: SendContext
) -> None:
    opts = options(smtp=smtp_sink_451_once.options())
    with pytest.raises(DeliveryError) as info:
        await email.send(DOWN, opts, ctx)
    port = smtp_sink_451_once.port
    assert str(info.value) == f"email via 127.0.0.1:{port}: 451 4.3.0 Try again later"
    assert info.value.permanent is False
    await email.send(DOWN, opts, ctx)
    assert len(smtp_sink_451_once.messages) == 1


async def test_a_refused_recipient_is_permanent(make_smtp_sink, ctx: SendContext) -> None:
    sink = make_smtp_sink(rcpt_reply="550 5.1.1 No such user")
    with pytest.raises(DeliveryError) as info:
        await email.send(DOWN, options(smtp=sink.options()), ctx)
    assert str(info.value) == (
        f"email via 127.0.0.1:{sink.port}: recipients refused: ops@example.com (550)"
    )
    assert info.value.permanent is True


async def test_a_5xx_on_data_is_permanent(make_smtp_sink, ctx: SendContext) -> None:
    sink = make_smtp_sink(data_replies=["554 5.6.0 Message rejected"])
    with pytest.raises(DeliveryError) as info:
        await email.send(DOWN, options(smtp=sink.options()), ctx)
    assert str(info.value) == f"email via 127.0.0.1:{sink.port}: 554 5.6.0 Message rejected"
    assert info.value.permanent is True


async def test_a_failed_login_is_permanent(make_smtp_sink, ctx: SendContext) -> None:
    sink = make_smtp_sink(
        auth_require_tls=False, authenticator=lambda *args: AuthResult(success=False, handled=False)
    )
    smtp = sink.options(username="alerts", password=Secret("hunter2"))
    with pytest.raises(DeliveryError) as info:
        await email.send(DOWN, options(smtp=smtp), ctx)
    assert str(info.value).startswith(
        f"email via 127.0.0.1:{sink.port}: authentication failed: 535 "
    )
    assert info.value.permanent is True
    assert "hunter2" not in str(info.value)


async def test_a_server_that_is_down_is_retryable(closed_port: int, ctx: SendContext) -> None:
    smtp = replace(SMTP, host="127.0.0.1", port=closed_port, starttls=False, timeout=5.0)
    with pytest.raises(DeliveryError) as info:
        await email.send(DOWN, options(smtp=smtp), ctx)
    assert str(info.value) == f"email via 127.0.0.1:{closed_port}: connection refused"
    assert info.value.permanent is False


async def test_a_server_that_never_answers_times_out_on_the_clock(
    ctx: SendContext, clock: FakeClock
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never greets, waits for us to hang up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # The SMTP client's own timeout is longer: the send timeout must end it.
    smtp = replace(SMTP, host="127.0.0.1", port=port, starttls=False, timeout=600.0)
    on_clock = SendContext(session=ctx.session, timeout=30, clock=clock)
    try:
        task = asyncio.ensure_future(email.send(DOWN, options(smtp=smtp), on_clock))
        await advance_until_done(clock, task, 31)
    finally:
        server.close()
    with pytest.raises(DeliveryError) as info:
        task.result()
    assert str(info.value) == f"email via 127.0.0.1:{port}: timed out"
    assert info.value.permanent is False


async def test_a_missing_starttls_is_permanent(smtp_sink, ctx: SendContext) -> None:
    smtp = smtp_sink.options(starttls=True)
    with pytest.raises(DeliveryError) as info:
        await email.send(DOWN, options(smtp=smtp), ctx)
    assert str(info.value) == (
        f"email via 127.0.0.1:{smtp_sink.port}: SMTP STARTTLS extension not supported by server."
    )
    assert info.value.permanent is True
