"""Statistics of run durations: what the page, the API and the anomaly rule use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.runs import duration_stats, is_anomaly, median, percentile


@pytest.mark.parametrize(
    ("values", "expected"),
    [([5], 5), ([3, 1, 2], 2), ([4, 1, 3, 2], 2.5), ([600, 600, 600, 600, 100_000], 600)],
)
def test_median(values: list[float], expected: float) -> None:
    assert median(values) == expected


def test_p95_is_a_duration_some_run_really_took() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.95) == 95
    assert percentile([7], 0.95) == 7
    assert percentile([1, 2, 3], 0.95) == 3


def test_stats_of_no_runs() -> None:
    assert duration_stats([]) == {"runs": 0, "median": None, "p95": None}


@pytest.mark.parametrize(
    ("duration", "anomaly"),
    [(1801, True), (1800, False), (200, False), (199, True), (600, False)],
)
def test_an_anomaly_is_beyond_the_factor_either_way(duration: float, anomaly: bool) -> None:
    assert is_anomaly(duration, 600, 3) is anomaly


def test_runs_that_take_no_time_give_no_scale() -> None:
    assert is_anomaly(5, 0, 3) is False


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50))
def test_median_and_p95_lie_within_the_runs(values: list[float]) -> None:
    stats = duration_stats(values)
    assert min(values) <= stats["median"] <= max(values)  # type: ignore[operator]
    assert stats["median"] <= stats["p95"] <= max(values)  # type: ignore[operator]
