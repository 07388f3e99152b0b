"""What the importers share: monitor drafts, their TOML, and slugs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from heartbeatd.durations import format_duration
from heartbeatd.names import name_problem

# As names.py allows.
MAX_SLUG = 64
# What a monitor's `name` shows of a long command.
MAX_NAME = 80

_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")
# TOML basic strings must escape these; the rest of Unicode may stand as it is.
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def toml_string(text: str) -> str:
    """`text` as a TOML basic string, whatever it holds (control characters,
    DEL, lone surrogates from undecodable bytes)."""
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            # Not a character TOML (or UTF-8) can carry.
            out.append("\\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def comment(text: str) -> str:
    """`text` as one TOML comment line: control characters (newlines, NUL)
    and undecodable bytes would end the comment or make the file invalid."""
    clean = "".join(
        "?"
        if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF
        else ch
        for ch in text
    )
    return f"# {clean}".rstrip()


def shorten(text: str, limit: int = MAX_NAME) -> str:
    """`text` on one line with runs of spaces folded, at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Draft:
    """One monitor to print: exactly one of schedule, oncalendar, period."""

    slug: str
    name: str
    description: str = ""
    schedule: str | None = None
    oncalendar: tuple[str, ...] = ()
    period: int | None = None
    timezone: str | None = None
    grace: int | None = None
    # Comment lines printed above the table: where it came from, what to know.
    notes: tuple[str, ...] = field(default_factory=tuple)


def monitor_toml(draft: Draft) -> str:
    lines = [comment(note) for note in draft.notes]
    lines.append(f"[monitors.{draft.slug}]")
    lines.append(f"name = {toml_string(draft.name)}")
    if draft.description:
        lines.append(f"description = {toml_string(draft.description)}")
    if draft.schedule is not None:
        lines.append(f"schedule = {toml_string(draft.schedule)}")
    if len(draft.oncalendar) == 1:
        lines.append(f"oncalendar = {toml_string(draft.oncalendar[0])}")
    elif draft.oncalendar:
        lines.append(f"oncalendar = [{', '.join(toml_string(e) for e in draft.oncalendar)}]")
    if draft.period is not None:
        lines.append(f'period = "{format_duration(draft.period)}"')
    if draft.timezone is not None:
        lines.append(f"timezone = {toml_string(draft.timezone)}")
    if draft.grace is not None:
        lines.append(f'grace = "{format_duration(draft.grace)}"')
    return "\n".join(lines) + "\n"


def slugify(text: str) -> str:
    """`text` in the characters a slug may use: "/etc/cron.daily" -> "etc-cron-daily"."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-_")


class Slugs:
    """Hands out readable slugs, each one once, all with the same prefix."""

    def __init__(self, prefix: str = "", taken: Iterable[str] = ()) -> None:
        # Checked once here: with a bad prefix no suffix could ever make a slug.
        problem = name_problem(prefix + "job") if prefix else None
        if problem is not None:
            raise ValueError(f'slug prefix "{prefix}": {problem}')
        self.prefix = prefix
        self._taken = set(taken)

    def make(self, words: Sequence[str], fallback: str) -> str:
        """A slug from `words` ("run-parts", "cron.daily"), or from `fallback`
        when they make none, with "-2", "-3", … added to make it unique."""
        base = "-".join(w for w in (slugify(word) for word in words) if w)
        base = base or slugify(fallback) or "job"
        # Room for the prefix and a "-NN" suffix within the length limit.
        base = base[: MAX_SLUG - len(self.prefix) - 4].rstrip("-_")
        candidate = self.prefix + base
        n = 1
        while candidate in self._taken or name_problem(candidate) is not None:
            n += 1
            candidate = f"{self.prefix}{base}-{n}"
        self._taken.add(candidate)
        return candidate
