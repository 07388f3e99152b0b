"""The quick reader of monitor tables: whatever it takes, it reads as tomllib
does; what it cannot read exactly, or what is not TOML, it leaves to tomllib."""

from __future__ import annotations

import sys

import pytest

from heartbeatd.config.quicktoml import quick_loads

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

HEAD = '[server]\nlisten = "127.0.0.1:8080"\n\n[defaults]\ngrace = "5m"\nchannels = []\n\n'

# Files the quick reader takes: it must give tomllib's answer.
TAKEN = [
    HEAD + '[monitors.a]\nperiod = "1h"\n',
    HEAD + "[monitors.a]\nperiod = 3600\ngrace = -0\nrepeat = false\nname = 'a \"b\"'\n",
    HEAD + '[monitors.a]\n  period = "1h"   # hourly\n# a comment\n\n[monitors.b]\nperiod="1d"\n',
    HEAD + '[monitors.a]\ntags = ["db", \'it"s\', ]\nchannels = []\nperiod = "1h"\n',
    HEAD + '[monitors.a]\nname = "Zürich \tbackup # not a comment"\nperiod = "1h"',
    HEAD + "[monitors.a.b]\nx = 1\n[monitors.a]\ny = 2\n",
    HEAD + '[monitors.a]\nperiod = "1h"\n[channels.ops]\ntype = "log"\n',
    HEAD + '[monitors.a]\nbig = 99999999999999999\nperiod = "1h"\n',
    '[monitors.a]\nperiod = "1h"\n',
    '# only a comment\n[monitors.a]\nperiod = "1h"\n',
]

# Files it must leave to tomllib: valid TOML it does not read exactly, and
# files that are not TOML at all (tomllib words their errors).
DECLINED = [
    HEAD + '[monitors.a]\nname = "tab\\tescape"\n',
    HEAD + "[monitors.a]\nratio = 0.5\n",
    HEAD + "[monitors.a]\nn = +1\n",
    HEAD + "[monitors.a]\nn = 1_000\n",
    HEAD + "[monitors.a]\nn = 0x10\n",
    HEAD + "[monitors.a]\nat = 1979-05-27\n",
    HEAD + '[monitors.a]\nchannels = [{channel = "pager", after = "30m"}]\n',
    HEAD + '[monitors."a.b"]\nperiod = "1h"\n',
    HEAD + '[monitors.a]\nsub.key = "x"\n',
    HEAD + '[monitors.a]\nbody = """\nmore\n"""\n',
    HEAD + '[[monitors.a]]\nperiod = "1h"\n',
    HEAD + '[ monitors.b ]\n[monitors.a]\nperiod = "1h"\n',
    # Not TOML: tomllib must say so.
    HEAD + '[monitors.a]\nperiod = "1h"\n[monitors.a]\nperiod = "2h"\n',
    HEAD + '[monitors.a]\nperiod = "1h"\nperiod = "2h"\n',
    HEAD + "[monitors.a]\nb = 1\n[monitors.a.b]\nc = 1\n",
    HEAD + "[monitors.a.b]\nc = 1\n[monitors.a]\nb = 1\n",
    HEAD + "[monitors.a]\nn = 01\n",
    HEAD + '[monitors.a]\nname = "a\x01b"\n',
    HEAD + '[monitors.a]\nname = "a\rb"\n',
    HEAD + '[monitors.a]\nname = "a" # bell\x07\n',
    HEAD + "[monitors.a]\nname = \n",
    HEAD + '[monitors.a]\nname = "x" y\n',
    HEAD + "[monitors.a]\nn = [,]\n",
    HEAD + "[monitors.a]\nn = 12345678901234567890\n",
    '[monitors]\nx = 1\n[monitors.a]\nperiod = "1h"\n',
    'monitors.b.period = "1h"\n[monitors.a]\nperiod = "1h"\n',
    '[server]\nlisten = "127.0.0.1:8080"\n[monitors.a]\nperiod = "1h"\n[server]\nx = 1\n',
    # The monitor tables only seem to start inside a string or an array.
    'body = """\n[monitors.a]\n"""\n[monitors.b]\nperiod = "1h"\n',
    'x = [\n[monitors.a]\n]\n[monitors.b]\nperiod = "1h"\n',
    "[server\n[monitors.a]\n",
    # A CR ends a line only before a LF: one that ends the file is refused.
    '[monitors.a]\nperiod = "1h"\r',
    '[monitors.a]\r\nperiod = "1h"\r',
    # No monitor tables: a small file, tomllib reads it.
    HEAD,
]


def tomllib_or_error(text: str) -> object:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "error"


@pytest.mark.parametrize("text", TAKEN)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_what_it_takes_it_reads_as_tomllib_does(text: str, newline: str):
    text = text.replace("\n", newline)
    expected = tomllib.loads(text)
    assert quick_loads(text) == expected


@pytest.mark.parametrize("text", DECLINED)
def test_what_it_cannot_read_exactly_goes_to_tomllib(text: str):
    assert quick_loads(text) is None


@pytest.mark.parametrize("text", TAKEN + DECLINED)
def test_it_never_reads_a_file_otherwise_than_tomllib(text: str):
    # The rule itself, over every sample: None, or tomllib's very answer.
    quick = quick_loads(text)
    assert quick is None or quick == tomllib_or_error(text)


def test_a_generated_file_of_many_monitors_is_read_quickly_and_alike():
    text = HEAD + "".join(
        f'[monitors.m{i:05d}]\nperiod = "{i % 24 + 1}h"\ntags = ["t{i % 7}"]\n\n'
        for i in range(2000)
    )
    quick = quick_loads(text)
    assert quick is not None
    assert quick == tomllib.loads(text)
    assert list(quick["monitors"]) == [f"m{i:05d}" for i in range(2000)]
