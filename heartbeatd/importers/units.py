"""systemd unit files as systemd reads them: sections, keys, drop-ins, time spans.

Only what the timer importer needs, read leniently as systemd does: a line
that is no `Key=Value` is ignored, a key may repeat (for list settings, an
empty assignment resets the list), a trailing backslash continues a line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Where systemd looks for system units, most important first.
UNIT_DIRS = (
    "etc/systemd/system",
    "run/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
)
# No unit file is this big; a file that is is not one.
MAX_UNIT_BYTES = 1 << 20

_SPAN_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Zµ]*)")
_SPAN_UNITS = {
    **dict.fromkeys(("us", "usec", "µs"), 1e-6),
    **dict.fromkeys(("ms", "msec"), 1e-3),
    **dict.fromkeys(("", "s", "sec", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "week", "weeks"), 604800.0),
    # systemd's own lengths: 30.44 days and 365.25 days.
    **dict.fromkeys(("M", "month", "months"), 2629800.0),
    **dict.fromkeys(("y", "year", "years"), 31557600.0),
}


class UnitError(ValueError):
    """A file that cannot be a unit file (binary, huge, unreadable)."""


@dataclass
class Unit:
    """A unit with its drop-ins applied: section -> key -> values in order."""

    name: str
    path: Path
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def last(self, section: str, key: str) -> str | None:
        values = self.values(section, key)
        return values[-1] if values else None


def parse_into(unit: Unit, text: str) -> None:
    """Apply one unit file or drop-in to `unit`."""
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.split("\n"):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            # systemd joins a continued line with a space.
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.sections.setdefault(line[1:-1], {})
            continue
        key, eq, value = line.partition("=")
        if not eq or section is None:
            continue
        key, value = key.strip(), value.strip()
        if value:
            section.setdefault(key, []).append(value)
        else:
            section[key] = []


def read_text(path: Path) -> str:
    """A unit file's text, or UnitError saying why it is none."""
    try:
        data = path.read_bytes()[: MAX_UNIT_BYTES + 1]
    except OSError as exc:
        raise UnitError(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_UNIT_BYTES:
        raise UnitError("it is larger than 1 MiB")
    if b"\x00" in data:
        raise UnitError("it is not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnitError("it is not UTF-8 text") from None


def find_units(root: Path, suffix: str) -> dict[str, Path]:
    """name -> file of every unit with `suffix` under `root`, as systemd picks
    them: the first directory of UNIT_DIRS that has a name wins. Directories
    that are one through a symlink (/lib -> /usr/lib) are read once."""
    found: dict[str, Path] = {}
    for directory in _unit_dirs(root):
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(suffix) and entry.name not in found:
                found[entry.name] = entry
    return found


def _unit_dirs(root: Path) -> list[Path]:
    seen: set[Path] = set()
    dirs = []
    for rel in UNIT_DIRS:
        directory = root / rel
        try:
            real = directory.resolve()
        except OSError:
            continue
        if real not in seen and directory.is_dir():
            seen.add(real)
            dirs.append(directory)
    return dirs


def load_unit(root: Path, name: str, path: Path) -> Unit:
    """The unit at `path` with its drop-ins (`<name>.d/*.conf` in every unit
    directory, applied in file-name order; a name in an earlier directory
    hides the same name in a later one). UnitError if it cannot be read or is
    masked (a link to /dev/null, or empty)."""
    if path.is_symlink() and path.resolve() == Path("/dev/null"):
        raise UnitError("it is masked")
    unit = Unit(name, path)
    text = read_text(path)
    if not text.strip():
        raise UnitError("it is empty (masked)")
    parse_into(unit, text)
    dropins: dict[str, Path] = {}
    for directory in _unit_dirs(root):
        try:
            entries = list((directory / f"{name}.d").glob("*.conf"))
        except OSError:
            continue
        for entry in entries:
            dropins.setdefault(entry.name, entry)
    for file_name in sorted(dropins):
        try:
            parse_into(unit, read_text(dropins[file_name]))
        except UnitError:
            # systemd skips a drop-in it cannot read; so do we.
            continue
    return unit


def enabled_units(root: Path) -> set[str]:
    """Names linked into a .wants/ or .requires/ directory: enabled by the
    admin (under /etc) or by the package itself (under /lib, "static")."""
    names: set[str] = set()
    for directory in _unit_dirs(root):
        for pattern in ("*.wants/*", "*.requires/*"):
            try:
                names.update(entry.name for entry in directory.glob(pattern))
            except OSError:
                continue
    return names


def parse_timespan(text: str) -> int:
    """Seconds (rounded up) in a systemd time span: "12h", "1h 30min", "6000", "1.5d"."""
    total = 0.0
    pos = 0
    text = text.strip()
    if not text:
        raise ValueError("an empty time span")
    while pos < len(text):
        match = _SPAN_PART.match(text, pos)
        if match is None or match.end() == pos or match[2] not in _SPAN_UNITS:
            raise ValueError(f'not a time span: "{text[:40]}"')
        total += float(match[1]) * _SPAN_UNITS[match[2]]
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not math.isfinite(total) or total > 10 * 366 * 86400:
        raise ValueError(f'time span too long: "{text[:40]}"')
    return math.ceil(total)


def first_span(values: Sequence[str]) -> int | None:
    """The shortest of a list setting's time spans (OnUnitActiveSec= may repeat)."""
    spans = []
    for value in values:
        try:
            spans.append(parse_timespan(value))
        except ValueError:
            continue
    return min(spans) if spans else None
