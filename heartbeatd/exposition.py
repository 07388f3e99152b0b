"""The Prometheus text exposition format 0.0.4: headers, samples, escaping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[Mapping[str, str], float]


def header(name: str, kind: str, text: str) -> str:
    return f"# HELP {name} {_escape_help(text)}\n# TYPE {name} {kind}\n"


def family(out: list[str], name: str, kind: str, text: str, samples: Iterable[Sample]) -> None:
    out.append(header(name, kind, text))
    for labels, value in samples:
        out.append(f"{name}{_label_set(labels)} {number(value)}\n")


def _label_set(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{key}="{escape_label_value(value)}"' for key, value in labels.items())
    return "{" + pairs + "}"


def escape_label_value(value: str) -> str:
    """A label value as format 0.0.4 writes it: backslash, quote and newline escaped."""
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    if type(value) is int:
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
