"""Keyword and method rules on pings, with the cases Healthchecks documents for
its filtering rules (docs "Configuring checks: Filtering rules", and the
announcement of filtering HTTP pings by keywords)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from heartbeatd.keywords import PingFilter, classify
from heartbeatd.model import Ping, PingKind

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)


def plain(body: str, method: str = "POST") -> Ping:
    return Ping(PingKind.SUCCESS, NOW, method=method, body=body)


BACKUP = PingFilter(
    failure=("ERROR", "FAILED"),
    success=("Backup complete",),
    start=("Starting backup",),
)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("Backup complete: 12 GiB", PingKind.SUCCESS),
        ("pg_dump: ERROR: connection refused", PingKind.FAIL),
        ("Starting backup of /srv", PingKind.START),
        # Failure keywords are looked for first, then success, then start.
        ("Backup complete, but 3 files FAILED", PingKind.FAIL),
        ("Starting backup ... Backup complete", PingKind.SUCCESS),
        ("Starting backup ... ERROR", PingKind.FAIL),
        # Any keyword of a list matches, not all of them.
        ("upload FAILED", PingKind.FAIL),
        # Case-sensitive: "error", "Error" and "ERROR" are three keywords.
        ("pg_dump: error: connection refused", PingKind.IGNORED),
        ("backup complete", PingKind.IGNORED),
        # Substrings: a keyword inside a longer word still matches.
        ("TERRORS", PingKind.FAIL),
        # A body that matches no keyword is ignored by default.
        ("all good", PingKind.IGNORED),
        ("", PingKind.IGNORED),
    ],
    ids=[
        "success",
        "failure",
        "start",
        "failure-before-success",
        "success-before-start",
        "failure-before-start",
        "any-of-the-list",
        "case-sensitive-lower",
        "case-sensitive-success",
        "substring",
        "no-match-ignored",
        "empty-body-ignored",
    ],
)
def test_a_plain_ping_is_read_by_its_body(body: str, kind: PingKind) -> None:
    assert classify(plain(body), BACKUP).kind is kind


def test_no_match_can_count_as_a_failure() -> None:
    # Healthchecks' example: requests with "SUCCESS" in the body are successes,
    # every other request a failure.
    rules = PingFilter(success=("SUCCESS",), default_fail=True)
    assert classify(plain("job SUCCESS"), rules).kind is PingKind.SUCCESS
    assert classify(plain("job crashed"), rules).kind is PingKind.FAIL
    assert classify(plain(""), rules).kind is PingKind.FAIL


def test_without_keyword_lists_the_rules_are_off() -> None:
    # As in Healthchecks: with filtering off every body means what its URL says,
    # whatever keywords_default is.
    for rules in (None, PingFilter(), PingFilter(default_fail=True)):
        assert classify(plain("ERROR everywhere"), rules).kind is PingKind.SUCCESS


@pytest.mark.parametrize(
    "ping",
    [
        Ping(PingKind.FAIL, NOW, method="POST", body="Backup complete"),
        Ping(PingKind.START, NOW, method="POST", body="ERROR"),
        Ping(PingKind.SUCCESS, NOW, method="POST", exit_status=0, body="ERROR"),
        Ping(PingKind.FAIL, NOW, method="POST", exit_status=3, body="Backup complete"),
        Ping(PingKind.LOG, NOW, method="POST", body="ERROR"),
    ],
    ids=["fail-url", "start-url", "exit-0-url", "exit-3-url", "log-url"],
)
def test_a_ping_whose_url_says_what_it_is_keeps_its_kind(ping: Ping) -> None:
    assert classify(ping, BACKUP) == ping


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("POST", PingKind.SUCCESS),
        ("post", PingKind.SUCCESS),
        ("GET", PingKind.IGNORED),
        ("HEAD", PingKind.IGNORED),
        ("PUT", PingKind.IGNORED),
    ],
)
def test_methods_post_ignores_every_other_method(method: str, kind: PingKind) -> None:
    rules = PingFilter(post_only=True)
    assert classify(plain("", method=method), rules).kind is kind
    # A /fail by GET (a link preview of a pasted failure URL) is ignored too.
    fail = Ping(PingKind.FAIL, NOW, method=method)
    assert classify(fail, rules).kind is (PingKind.FAIL if kind is PingKind.SUCCESS else kind)


def test_methods_and_keywords_together() -> None:
    rules = PingFilter(success=("OK",), post_only=True)
    assert classify(plain("OK", method="GET"), rules).kind is PingKind.IGNORED
    assert classify(plain("OK", method="POST"), rules).kind is PingKind.SUCCESS
