"""Words for people, the same on the status page and in alert messages:
lengths of time, and why a monitor went down or came back.

Lengths read "0.4 s", "42 s", "1 min 23 s", "2 h 5 min", "3 d 4 h"; units are
abbreviations, which have no plural ("1 min", "2 min"). Durations as a user
writes them in the config ("1h30m") are durations.py's.
"""

from __future__ import annotations

from itertools import pairwise

# Largest first. A length is told in its largest unit and, when not zero, the
# next one down: enough to read at a glance, and to compare two runs.
UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def duration(seconds: float) -> str:
    """How long something took or lasted: 0.354 -> "0.4 s", 3900 -> "1 h 5 min"."""
    seconds = abs(seconds)
    if seconds < 60:
        return _seconds(seconds)
    whole = int(seconds)
    for (unit, size), (smaller, smaller_size) in pairwise(UNITS):
        if whole >= size:
            count, rest = divmod(whole, size)
            more = rest // smaller_size
            return f"{count} {unit} {more} {smaller}" if more else f"{count} {unit}"
    raise AssertionError("unreachable: a minute or more has a unit")


def span(seconds: float) -> str:
    """A length in whole minutes beyond the first: 200 -> "3 min".

    For times on a page that refreshes every half minute, where seconds would
    be stale before anyone reads them.
    """
    seconds = abs(seconds)
    return duration(seconds - seconds % 60 if seconds >= 60 else seconds)


def ago(seconds: float) -> str:
    """A time `seconds` in the past ("3 min ago") or, when negative, the future ("in 5 min")."""
    if abs(seconds) < 1:
        return "just now"
    return f"{span(seconds)} ago" if seconds > 0 else f"in {span(seconds)}"


def _seconds(seconds: float) -> str:
    if seconds >= 10:
        # Truncated, not rounded: 59.9 s is not yet a minute.
        return f"{int(seconds)} s"
    # Less than a millisecond is noise in how long a job or a request took.
    seconds = round(seconds, 3)
    if seconds == 0:
        return "0 s"
    # One significant digit under a tenth ("0.04 s"), one decimal above it.
    text = f"{seconds:.1g}" if seconds < 0.1 else f"{seconds:.1f}"
    return f"{text.removesuffix('.0')} s"


def count(n: int, noun: str) -> str:
    """ "1 monitor", "2 monitors": a noun whose plural is its -s form."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# Keyed by the wire strings of model.Reason (a str enum, so either works).
REASONS = {
    "missed": "no ping came in time",
    "failed": "the job reported a failure",
    "exit_status": "the job exited with a non-zero status",
    "ran_too_long": "the job started but did not finish in time",
    "recovered": "a success ping came in",
    "daemon_gap": "heartbeatd itself was not watching (not running, or its clock jumped)",
}


def reason(why: str, exit_status: int | None = None) -> str:
    """A flip's reason in words a person paged at night understands.

    `exit_status` counts only for the reason "exit_status". A reason this
    version has no words for is shown as it is rather than hidden.
    """
    if why == "exit_status" and exit_status is not None:
        return f"the job exited with status {exit_status}"
    return REASONS.get(why, why)
