"""A reload's plan: the monitors to look at, found off the event loop.

At 100,000 monitors comparing every monitor's settings takes a good part of
a second; plan_reload does it in a thread and Engine.apply_config then looks
only at the monitors it names, with the same outcome as comparing them all.
"""

from __future__ import annotations

import textwrap

from heartbeatd.config import load_config
from heartbeatd.reloadplan import plan_reload
from tests.conftest import NOW

BEFORE = """
[storage]
path = "hb.db"

[monitors.same]
period = "1h"

[monitors.regraced]
period = "1h"
grace = "5m"

[monitors.gone]
period = "1h"

[monitors.uuid]
period = "1h"
uuid = "0f4e6a0a-8f2b-4c59-9b43-3f1d0f0a4e11"
"""

AFTER = """
[storage]
path = "hb.db"

[monitors.same]
period = "1h"

[monitors.regraced]
period = "1h"
grace = "7m"

[monitors.new]
period = "1d"

[monitors.uuid]
period = "1h"
uuid = "0f4e6a0a-8f2b-4c59-9b43-3f1d0f0a4e11"
"""


def write(tmp_path, text):
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(text))
    return path


async def test_the_plan_names_only_added_changed_and_stateless_monitors(make_stack, tmp_path):
    stack = await make_stack(BEFORE)
    new = load_config(write(tmp_path, AFTER), stack.engine.config)
    plan = plan_reload(stack.engine.config, new, [s for s in stack.engine.states if s != "uuid"])
    assert sorted(plan.touched) == ["new", "regraced", "uuid"]
    assert plan.removed == ["gone"]
    assert plan.uuids == {"0f4e6a0a-8f2b-4c59-9b43-3f1d0f0a4e11": "uuid"}


async def test_a_reload_with_a_plan_ends_as_one_without(make_stack, tmp_path):
    outcomes = []
    for db, use_plan in (("planned.db", True), ("compared.db", False)):
        stack = await make_stack(BEFORE.replace("hb.db", db), name=f"{db}.toml")
        path = tmp_path / f"{db}.new.toml"
        path.write_text(textwrap.dedent(AFTER.replace("hb.db", db)))
        new = load_config(path, stack.engine.config)
        plan = plan_reload(stack.engine.config, new, list(stack.engine.states))
        diff = stack.engine.apply_config(new, NOW, plan if use_plan else None)
        uuid = stack.engine.slug_for_uuid("0f4e6a0a-8f2b-4c59-9b43-3f1d0f0a4e11")
        outcomes.append((diff, dict(stack.engine.states), uuid))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == {"added": ["new"], "removed": ["gone"], "changed": ["regraced"]}
    assert outcomes[0][2] == "uuid"
