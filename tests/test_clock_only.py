"""Every sleep and timeout in heartbeatd goes through heartbeatd.clock.

ruff bans asyncio.sleep and asyncio.wait_for by name, but cannot tell
`asyncio.wait(fs)` (fine) from `asyncio.wait(fs, timeout=...)` (a timeout on
the event loop's time, which a FakeClock cannot move), nor see
`loop.call_later`. This walks the syntax tree of every module instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "heartbeatd"
# The one module allowed to wait on the event loop's time.
CLOCK = PACKAGE / "clock.py"

# asyncio functions that always wait on loop time.
BANNED = {"sleep", "wait_for", "timeout", "timeout_at"}
# Methods of an event loop that schedule on loop time, whatever the object is called.
BANNED_METHODS = {"call_later", "call_at"}


def loop_time_waits(source: str, filename: str) -> list[str]:
    """`filename:line what` for each wait on loop time in `source`."""
    tree = ast.parse(source, filename)
    # Names that mean the asyncio module, and names bound to asyncio functions.
    modules = {"asyncio"}
    functions: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == "asyncio")
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            functions.update({a.asname or a.name: a.name for a in node.names})
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = None
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id in modules:
                name = func.attr
            elif func.attr in BANNED_METHODS:
                found.append(f"{filename}:{node.lineno} .{func.attr}()")
                continue
        elif isinstance(func, ast.Name) and func.id in functions:
            name = functions[func.id]
        if name in BANNED:
            found.append(f"{filename}:{node.lineno} asyncio.{name}()")
        elif name == "wait" and any(k.arg == "timeout" for k in node.keywords):
            found.append(f"{filename}:{node.lineno} asyncio.wait(timeout=...)")
    return found


def test_no_module_but_the_clock_waits_on_loop_time():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == CLOCK:
            continue
        relative = str(path.relative_to(PACKAGE.parent))
        found += loop_time_waits(path.read_text(encoding="utf-8"), relative)
    assert not found, "wait through heartbeatd.clock.Clock instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import asyncio\nawait asyncio.wait(fs, timeout=5)", "asyncio.wait(timeout=...)"),
        ("import asyncio\nawait asyncio.wait_for(aw, 5)", "asyncio.wait_for()"),
        ("import asyncio as aio\nawait aio.sleep(1)", "asyncio.sleep()"),
        ("from asyncio import wait_for as w\nawait w(aw, 5)", "asyncio.wait_for()"),
        ("from asyncio import wait\nawait wait(fs, timeout=1)", "asyncio.wait(timeout=...)"),
        ("import asyncio\nasync with asyncio.timeout(5): pass", "asyncio.timeout()"),
        ("self._loop.call_later(5, f)", ".call_later()"),
        ("asyncio.get_running_loop().call_at(t, f)", ".call_at()"),
    ],
)
def test_it_finds_each_kind_of_loop_time_wait(source: str, what: str):
    assert loop_time_waits(source, "x.py") == [f"x.py:{source.count(chr(10)) + 1} {what}"]


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio\nawait asyncio.wait(fs, return_when=asyncio.FIRST_COMPLETED)",
        "await clock.wait_for(aw, 5)",
        "await self._clock.wait(fs, 5)",
        "await clock.sleep(1)",
    ],
)
def test_it_lets_waits_without_loop_time_pass(source: str):
    assert loop_time_waits(source, "x.py") == []
