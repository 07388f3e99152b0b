"""Times as text: the stored form sorts as time, the published form is DESIGN §6's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeatd.times import (
    format_stored,
    isoformat,
    parse_isoformat,
    parse_stored,
    publish_stored,
)
from tests.conftest import NOW

# Fixed offsets: a time in a DST fold or gap never compares equal across
# zones (PEP 495), which would hide what these tests are about.
offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
# Away from the ends of datetime's range, where a shift to UTC overflows.
aware = st.datetimes(
    min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


def test_it_stores_a_time_as_fixed_width_utc_with_microseconds():
    assert format_stored(NOW) == "2026-01-14T12:00:00.000000+00:00"
    riga = datetime(2026, 7, 1, 3, 0, 0, 5, tzinfo=ZoneInfo("Europe/Riga"))
    assert format_stored(riga) == "2026-07-01T00:00:00.000005+00:00"


def test_it_refuses_to_store_a_naive_time():
    with pytest.raises(ValueError, match="naive datetime"):
        format_stored(datetime(2026, 1, 14, 12, 0))


@given(aware)
def test_a_stored_time_reads_back_as_the_same_instant(when: datetime):
    back = parse_stored(format_stored(when))
    assert back == when
    assert back.utcoffset() == timedelta(0)


@given(aware, aware)
def test_stored_times_sort_as_the_times_do(a: datetime, b: datetime):
    assert len(format_stored(a)) == len(format_stored(b))
    assert (format_stored(a) < format_stored(b)) == (a < b)


def test_it_publishes_utc_to_the_second_with_a_z():
    riga = datetime(2026, 7, 1, 3, 0, 0, 999_999, tzinfo=ZoneInfo("Europe/Riga"))
    assert isoformat(riga) == "2026-07-01T00:00:00Z"
    assert isoformat(None) is None


@given(aware)
def test_a_published_time_reads_back_to_the_second(when: datetime):
    back = parse_isoformat(isoformat(when))
    assert back == when.astimezone(timezone.utc).replace(microsecond=0)
    assert back.tzinfo is timezone.utc


@pytest.mark.parametrize(
    "text",
    ["2026-01-14T12:00:00Z", "2026-01-14T12:00:00+00:00", "2026-01-14T14:00:00+02:00"],
    ids=["z", "utc-offset", "other-offset"],
)
def test_it_parses_a_published_time_in_any_offset(text: str):
    assert parse_isoformat(text) == NOW
    assert parse_isoformat(text).tzinfo is timezone.utc


def test_it_publishes_a_stored_time():
    assert publish_stored("2026-01-14T12:00:00.250000+00:00") == "2026-01-14T12:00:00Z"
    assert publish_stored(None) is None
    assert parse_isoformat(None) is None
