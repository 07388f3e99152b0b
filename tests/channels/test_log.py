"""The `log` channel's line: what a sysadmin reading the journal sees."""

from __future__ import annotations

from dataclasses import replace

from heartbeatd.channels import log
from tests.samples import ALERTS

OPTIONS = log.Options()


def test_a_down_alert_shows_the_first_line_of_the_job_output_and_its_size() -> None:
    alert = replace(ALERTS["failed"], body="pg_dump: error: connection failed\nretrying\n")
    assert log.render(alert, OPTIONS) == (
        "alert event=down monitor=nightly-backup status=down reason=exit_status"
        " at=2026-01-14T12:00:00Z last_ping=2026-01-13T11:30:00Z"
        ' expected_at=2026-01-14T11:30:00Z name="Nightly Postgres backup"'
        ' body_first_line="pg_dump: error: connection failed" body_bytes=43'
    )


def test_the_first_line_is_escaped_and_cut_short() -> None:
    body = 'tar: "x\\y"\t\x1b[31mfailed ' + "é" * 300 + "\nmore\n"
    line = log.render(replace(ALERTS["down"], body=body), OPTIONS)
    shown = 'tar: \\"x\\\\y\\"\\t\\u001b[31mfailed ' + "é" * 176 + "…"
    assert line.endswith(f' body_first_line="{shown}" body_bytes=629')


def test_without_output_the_line_has_no_body_fields() -> None:
    line = log.render(replace(ALERTS["down"], body=""), OPTIONS)
    assert line.endswith('expected_at=2026-01-14T11:30:00Z name="Nightly Postgres backup"')


def test_leading_blank_lines_are_skipped_and_a_line_separator_ends_the_line() -> None:
    line = log.render(replace(ALERTS["down"], body="\n\n  backup failed\u2028detail"), OPTIONS)
    assert line.endswith(' body_first_line="backup failed" body_bytes=26')
