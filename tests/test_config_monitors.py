"""The two monitor readers: the fast path for plain tables and the full
Table reader that words every error must agree on what they both accept."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from heartbeatd.config import monitors, plain
from heartbeatd.config.plain import Defaults, Shared
from heartbeatd.config.values import Monitor
from heartbeatd.tables import Problems, Table

DECLARED = ("ops", "pager")
SAMPLE_UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"

# Each key: values a file may well hold, then ones the readers must refuse.
DURATIONS = st.sampled_from(["1h", "30m", "1h30m", "90s", " 1D ", "1w2d"]) | st.integers(1, 10**6)
BAD_DURATIONS = st.sampled_from(["5 min", "", "0s", "30m1h", 0, -5, True, 1.5, 10**12, [1]])
ZONES = st.sampled_from(["UTC", "Europe/Riga", "America/New_York"])
BAD_ZONES = st.sampled_from(["Europe/Rīga", "CEST", "", "../etc", 3])
CRONS = st.sampled_from(["0 2 * * *", "0  2 * * *", " */5 * * * 1-5 ", "30 4 1 * *"])
BAD_CRONS = st.sampled_from(["0 2 * * 8", "0 2 * *", "0 2 30 2 *", "9" * 30 + " * * * *", 2])
UUIDS = st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | st.just(SAMPLE_UUID)
BAD_UUIDS = st.sampled_from(["9c4a2f4e", SAMPLE_UUID.replace("-", ""), "{" + SAMPLE_UUID + "}", 7])
CHANNEL_LISTS = st.lists(st.sampled_from(DECLARED), max_size=3)
BAD_CHANNEL_LISTS = st.sampled_from([["nope"], "ops", [1], ["ops", 2]])
TEXTS = st.text(max_size=20)
BAD_TEXTS = st.integers() | st.booleans() | st.lists(st.text(max_size=2), max_size=2)

GOOD = {
    "name": TEXTS,
    "description": TEXTS,
    "timezone": ZONES,
    "grace": DURATIONS,
    "max_runtime": DURATIONS,
    "channels": CHANNEL_LISTS,
    "uuid": UUIDS,
    "repeat": DURATIONS | st.just(False),
    "repeat_limit": st.integers(1, 10),
    "tags": st.lists(st.sampled_from(["db", "backup", "web", "x" * 64]), max_size=4),
}
BAD = {
    "period": BAD_DURATIONS,
    "schedule": BAD_CRONS,
    "name": BAD_TEXTS,
    "description": BAD_TEXTS,
    "timezone": BAD_ZONES,
    "grace": BAD_DURATIONS,
    "max_runtime": BAD_DURATIONS,
    "channels": BAD_CHANNEL_LISTS,
    "uuid": BAD_UUIDS,
    "repeat": BAD_DURATIONS,
    "repeat_limit": st.sampled_from([0, -1, 2**64, True, "3"]),
    "tags": st.sampled_from(["db", ["DB"], ["a b"], [""], ["x" * 65], [1], ["db", None]]),
    "graec": st.just("1h"),
}


FAULTS = ["slug", "schedules", *sorted(BAD)]


@st.composite
def monitor_tables(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A slug and its [monitors.<slug>] table: every other one plain, the rest
    with one fault (a bad slug, a wrong or unknown key, no schedule or two),
    so that the fast path meets near misses as well as plain tables."""
    fault = draw(st.none() | st.sampled_from(FAULTS))
    slug = draw(BAD_SLUGS if fault == "slug" else SLUGS)
    if fault == "schedules":
        schedules = draw(st.sampled_from([(), ("period", "schedule")]))
    elif fault in ("period", "schedule"):
        schedules = (fault,)
    else:
        schedules = draw(st.sampled_from([("period",), ("schedule",)]))
    data: dict[str, Any] = {}
    for key in schedules:
        data[key] = draw(CRONS if key == "schedule" else DURATIONS)
    for key in draw(st.sets(st.sampled_from(sorted(GOOD)))):
        data[key] = draw(GOOD[key])
    if fault in BAD:
        data[fault] = draw(BAD[fault])
        if fault == "repeat_limit":
            # Else it is wrong for want of repeat, whatever its value.
            data["repeat"] = draw(DURATIONS)
    return slug, data


SLUGS = st.sampled_from(["backup", "job-1", "a_b", "x" * 64])
BAD_SLUGS = st.sampled_from(["Bad", "log", "0042", SAMPLE_UUID, "", "x" * 65])

DEFAULTS = st.builds(
    Defaults,
    grace=st.integers(1, 10**6),
    timezone=ZONES,
    channels=st.sampled_from([DECLARED, ("ops",), ()]),
    max_runtime=st.none() | st.integers(1, 10**6),
    repeat=st.none() | st.integers(1, 10**6),
    repeat_limit=st.none() | st.integers(1, 10),
    tags=st.sampled_from([(), ("prod",), ("prod", "db")]),
)


def read_fully(
    slug: str, data: dict[str, Any], defaults: Defaults
) -> tuple[Monitor | None, list[str]]:
    """The full reader, as the loader calls it when the fast path declines."""
    problems = Problems("heartbeatd.toml")
    parent = Table({slug: data}, "monitors", problems)
    monitor = monitors._read_monitor_entry(parent, slug, Shared(defaults, DECLARED))
    return monitor, problems.lines


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=monitor_tables(), defaults=DEFAULTS)
@example(
    table=("backup", {"schedule": "0  2 * * *", "uuid": SAMPLE_UUID.upper(), "repeat": False}),
    defaults=Defaults(3600, "UTC", DECLARED, None, 3600, 3),
)
@example(
    table=("job-1", {"period": 90, "repeat": "1h", "repeat_limit": 2, "channels": []}),
    defaults=Defaults(60, "Europe/Riga", ("ops",), 7200, None, None),
)
def test_the_fast_path_reads_what_it_accepts_as_the_full_reader_does(
    table: tuple[str, dict[str, Any]], defaults: Defaults
) -> None:
    slug, data = table
    shared = Shared(defaults, DECLARED)
    fast = plain.read_plain_monitor(slug, data, shared)
    event("fast path" if fast is not None else "full reader")
    # A second table of the same shape is built from the first one's fields.
    other = "other" if slug != "other" else "another"
    again = plain.read_plain_monitor(other, dict(data), shared)
    if again is not None:
        assert read_fully(other, data, defaults) == (again, [])
    if fast is None:
        return
    full, problems = read_fully(slug, data, defaults)
    assert problems == []
    assert full == fast


def test_the_fast_path_takes_a_plain_table() -> None:
    # The property above means something only if the fast path takes tables.
    data = {"schedule": "0 2 * * *", "uuid": SAMPLE_UUID, "channels": ["ops"], "grace": "5m"}
    defaults = Defaults(3600, "UTC", DECLARED, None, None, None)
    fast = plain.read_plain_monitor("backup", data, Shared(defaults, DECLARED))
    assert fast is not None
    assert fast.uuid == str(uuid.UUID(SAMPLE_UUID))
    assert (fast.grace, fast.max_runtime, fast.channels) == (300, 300, ("ops",))
