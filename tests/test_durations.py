from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.durations import MAX_SECONDS, DurationError, format_duration, parse_duration

HINT = 'expected a duration like "30s", "5m" or "1h30m"'


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("30s", 30, id="seconds"),
        pytest.param("5m", 300, id="minutes"),
        pytest.param("1h30m", 5400, id="hours-minutes"),
        pytest.param("1d", 86400, id="day"),
        pytest.param("1w", 604800, id="week"),
        pytest.param("1w2d3h4m5s", 788645, id="every-unit"),
        pytest.param("90m", 5400, id="unit-overflow"),
        pytest.param("1H", 3600, id="upper-case"),
        pytest.param(" 5m ", 300, id="surrounding-space"),
        pytest.param(45, 45, id="integer-seconds"),
        pytest.param("3650d", MAX_SECONDS, id="max"),
    ],
)
def test_it_parses_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("5 min", f'{HINT}, got "5 min"', id="words"),
        pytest.param("1h 30m", f'{HINT}, got "1h 30m"', id="inner-space"),
        pytest.param("30m1h", f'{HINT}, got "30m1h"', id="wrong-order"),
        pytest.param("1.5h", f'{HINT}, got "1.5h"', id="fraction"),
        pytest.param("", f'{HINT}, got ""', id="empty"),
        pytest.param("h", f'{HINT}, got "h"', id="no-number"),
        pytest.param(True, f"{HINT}, got True", id="bool"),
        pytest.param(1.5, f"{HINT}, got 1.5", id="float"),
        pytest.param(0, "must be longer than zero, got 0", id="zero"),
        pytest.param(-5, "must be longer than zero, got -5", id="negative"),
        pytest.param("0s", 'must be longer than zero, got "0s"', id="zero-string"),
        pytest.param("3651d", 'must be at most 10 years, got "3651d"', id="too-long"),
    ],
)
def test_it_rejects_bad_durations(value: object, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (5400, "1h30m"), (86400, "1d"), (694861, "1w1d1h1m1s")],
)
def test_it_formats_the_shortest_exact_form(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=MAX_SECONDS))
def test_any_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


durations = st.builds(
    lambda parts: "".join(f"{n}{unit}" for n, unit in parts if n is not None),
    st.tuples(
        *(st.tuples(st.none() | st.integers(0, 500), st.just(u)) for u in ("w", "d", "h", "m", "s"))
    ),
)


@given(durations)
def test_a_formatted_duration_parses_to_the_same_seconds(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError:
        return
    assert parse_duration(format_duration(seconds)) == seconds
