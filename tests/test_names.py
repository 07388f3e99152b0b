from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.names import (
    UUID,
    canonical_uuid,
    channel_name_problem,
    name_problem,
    uuid_problem,
)

SAMPLE = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"


@given(st.uuids())
def test_the_uuid_pattern_matches_a_uuid_in_either_case(value: uuid.UUID) -> None:
    assert UUID.fullmatch(str(value))
    assert UUID.fullmatch(str(value).upper())


@pytest.mark.parametrize("text", ["", SAMPLE[:-1], SAMPLE + "0", SAMPLE.replace("-", "")])
def test_the_uuid_pattern_wants_the_dashed_form(text: str) -> None:
    assert UUID.fullmatch(text) is None


def test_a_channel_may_be_named_like_a_ping_action() -> None:
    assert channel_name_problem("log") is None
    assert name_problem("log") == (
        'a slug may not be "start", "fail" or "log" (ping actions), got "log"'
    )
    assert channel_name_problem("Ops") == (
        'a channel name may use only a-z, 0-9, "_" and "-", got "Ops"'
    )


@pytest.mark.parametrize(
    "text", [SAMPLE, SAMPLE.upper(), SAMPLE.replace("-", ""), "{" + SAMPLE + "}"]
)
def test_a_monitor_uuid_is_stored_in_one_spelling(text: str) -> None:
    assert uuid_problem(text) is None
    assert canonical_uuid(text) == SAMPLE


def test_it_refuses_a_monitor_uuid_that_is_not_one() -> None:
    assert uuid_problem("9c4a2f4e") == f'expected a UUID like "{SAMPLE}", got "9c4a2f4e"'
