from __future__ import annotations

from typing import Any

import pytest

from heartbeatd.tables import ConfigError, Problems, Table

FILE = "heartbeatd.toml"


def table(**data: Any) -> Table:
    return Table(data, "server", Problems(FILE))


def problems(t: Table) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        t.problems.raise_if_any()
    return caught.value.problems


def test_a_reader_returns_the_value_or_else_its_default() -> None:
    t = table(name="backup", port=587, tls=True, every="1h", to="ops@example.com")
    assert t.text("name") == "backup"
    assert t.text("missing", "fallback") == "fallback"
    assert t.text("missing", None) is None
    assert t.integer("port", 25, at_least=1, at_most=65535) == 587
    assert t.boolean("tls", False) is True
    assert t.duration("every", 60) == 3600
    assert t.text_list("to", [], allow_text=True) == ["ops@example.com"]
    assert t.choice("level", ("info", "error"), "info") == "info"
    t.done()
    assert t.problems.lines == []


def test_a_wrong_value_is_recorded_and_read_as_the_default() -> None:
    t = table(name=1, port=0, tls="yes", every="5 min", to=["a", 2], level="loud", big=2**64)
    assert t.text("name", "x") == "x"
    assert t.integer("port", 25, at_least=1, at_most=65535) == 25
    assert t.boolean("tls", False) is False
    assert t.duration("every", 60) == 60
    assert t.text_list("to", []) == []
    assert t.choice("level", ("info", "error"), "info") == "info"
    assert t.integer("big", 1) == 1
    assert problems(t) == [
        f"{FILE}: server.name: expected a string, got 1",
        f"{FILE}: server.port: expected a number from 1 to 65535, got 0",
        f'{FILE}: server.tls: expected true or false, got "yes"',
        f'{FILE}: server.every: expected a duration like "30s", "5m" or "1h30m", got "5 min"',
        f'{FILE}: server.to: expected a list of strings, got ["a", 2]',
        f'{FILE}: server.level: expected one of "info", "error", got "loud"',
        f"{FILE}: server.big: expected a whole number that fits in 64 bits,"
        " got a number of 65 bits",
    ]


def test_a_required_key_that_is_missing_or_wrong_reads_as_none() -> None:
    t = table(port=True)
    assert t.text("host") is None
    assert t.integer("port") is None
    t.done()
    assert problems(t) == [
        f"{FILE}: server.host: is required",
        f"{FILE}: server.port: expected a whole number, got true",
    ]


def test_a_key_no_reader_asked_for_is_unknown() -> None:
    t = table(listen="127.0.0.1:8080", colour="x")
    t.text("listen")
    t.done()
    assert problems(t) == [f"{FILE}: server.colour: unknown key"]


def test_an_unknown_key_close_to_a_known_one_suggests_it() -> None:
    t = table(listen="127.0.0.1:8080", lisen="x", zzz=1)
    t.text("listen")
    t.done()
    assert problems(t) == [
        f"{FILE}: server.lisen: unknown key; did you mean `listen`?",
        f"{FILE}: server.zzz: unknown key",
    ]


def test_a_key_a_reader_skipped_is_still_suggested_when_named_as_known() -> None:
    t = table(perod="1h")
    t.done(known=("period", "schedule"))
    assert problems(t) == [f"{FILE}: server.perod: unknown key; did you mean `period`?"]


def test_an_unknown_top_level_table_suggests_the_table_header() -> None:
    problems_ = Problems(FILE)
    root = Table({"monitor": {"a": {"period": "1h"}}, "sever": {"listen": "x"}}, "", problems_)
    root.table("monitors")
    root.table("server")
    root.done()
    assert problems_.lines == [
        f"{FILE}: monitor: unknown key; did you mean `[monitors.a]`?",
        f"{FILE}: sever: unknown key; did you mean `[server]`?",
    ]
