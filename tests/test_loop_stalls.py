"""No surface holds the event loop for a whole render (20,000 monitors).

The daemon's stall meter (looplag.LoopLag, on the real Clock: a stall is
real time) runs in the test's loop beside the app, served by aiohttp on
loopback; the page is requested and read to the end meanwhile. A render
done in one piece stalls the loop for about as long as the whole request
takes; one that yields between chunks stalls it for one slice. The bound is
half a whole render timed in the same test, so it holds on a slow machine
and still catches a whole render on a fast one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time

import pytest

from heartbeatd.clock import Clock
from heartbeatd.looplag import LoopLag
from heartbeatd.metrics import render_metrics
from heartbeatd.web.scrape import _snapshot as scrape_snapshot

MONITORS = 20_000


def many_monitors(n: int) -> str:
    lines = ['[storage]\npath = "hb.db"\n']
    lines += [f'[monitors.m{i:05d}]\nperiod = "1h"\n' for i in range(n)]
    return "\n".join(lines)


@pytest.fixture
async def big_client(make_client):
    client = await make_client(many_monitors(MONITORS))
    # As the daemon does after start-up (process.release_memory): the config
    # and states are frozen, so a collection does not walk them in the middle
    # of a measurement.
    gc.collect()
    gc.freeze()
    yield client
    gc.unfreeze()


async def worst_stall_while(coro) -> tuple[float, float]:
    """(worst loop stall, seconds the request took) while `coro` runs."""
    clock = Clock()
    probe = LoopLag(clock, interval=0.005, warn_above=10.0)
    task = asyncio.ensure_future(probe.run())
    try:
        # One wake-up first, so the probe is sleeping when the request starts.
        await clock.sleep(0.02)
        probe.reset_worst()
        started = clock.monotonic()
        await coro
        took = clock.monotonic() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return probe.worst, took


async def read(client, path: str) -> bytes:
    resp = await client.get(path)
    assert resp.status == 200
    return await resp.read()


async def test_metrics_never_holds_the_loop_for_the_whole_render(big_client):
    body = []

    async def scrape() -> None:
        body.append(await read(big_client, "/metrics"))

    worst, _ = await worst_stall_while(scrape())
    assert body[0].count(b"\nheartbeatd_monitor_up{") == MONITORS
    # What a scrape that never let go would stall for: the same page in one
    # piece, on this machine, now (the faster of two). A fixed bound would
    # let a whole render pass on a fast machine: 20,000 monitors render in
    # about 0.1 s.
    whole = min([await render_time(big_client) for _ in range(2)])
    assert worst < whole / 2, f"loop stalled {worst:.3f}s; the whole page takes {whole:.3f}s"


async def render_time(client) -> float:
    snapshot = await scrape_snapshot(client.server.app)
    started = time.perf_counter()
    render_metrics(snapshot)
    return time.perf_counter() - started


async def test_metrics_without_per_monitor_families_count_them_by_status(make_client):
    client = await make_client(many_monitors(3) + "\n[metrics]\nper_monitor = false\n")
    text = (await read(client, "/metrics")).decode()
    assert "monitor=" not in text
    assert 'heartbeatd_monitors{status="new"} 3\n' in text


async def test_the_healthchecks_list_of_checks_never_holds_the_loop_for_the_whole_list(
    make_client, tmp_path
):
    (tmp_path / "api-keys").write_text("rw rw-key-0123456789abcdef\n")
    client = await make_client(many_monitors(MONITORS) + '\n[api]\nkeys_file = "api-keys"\n')
    gc.collect()
    gc.freeze()
    try:
        await list_all_checks(client)
    finally:
        gc.unfreeze()


async def list_all_checks(client) -> None:
    body = []

    async def listing() -> None:
        resp = await client.get("/api/v3/checks/", headers={"X-Api-Key": "rw-key-0123456789abcdef"})
        assert resp.status == 200
        body.append(await resp.json())

    worst, took = await worst_stall_while(listing())
    checks = body[0]["checks"]
    assert [c["slug"] for c in checks] == [f"m{i:05d}" for i in range(MONITORS)]
    # Listed in one piece, the loop stalls for about the whole request.
    assert worst < took / 2, f"loop stalled {worst:.3f}s of a {took:.3f}s list"


async def test_an_unknown_check_id_costs_no_walk_over_the_monitors(
    make_client, tmp_path, monkeypatch
):
    from heartbeatd import hcjson

    (tmp_path / "api-keys").write_text("ro ro-key-0123456789abcdef\n")
    client = await make_client(many_monitors(50) + '\n[api]\nkeys_file = "api-keys"\n')
    derived = []
    real = hcjson.check_code
    monkeypatch.setattr(hcjson, "check_code", lambda m: derived.append(m.slug) or real(m))
    headers = {"X-Api-Key": "ro-key-0123456789abcdef"}
    for _ in range(200):
        resp = await client.get(
            "/api/v3/checks/00000000-0000-4000-8000-000000000000", headers=headers
        )
        assert resp.status == 404
    # The codes were worked out once for the config, not once per request.
    assert len(derived) == 50
    code = real(client.engine.config.monitors["m00007"])
    resp = await client.get(f"/api/v3/checks/{hcjson.unique_key(code)}", headers=headers)
    assert (resp.status, (await resp.json())["slug"]) == (200, "m00007")
    # Found in the same index; only the monitor found works out its own code
    # again (that it still answers to it, and for the answer).
    assert set(derived[50:]) == {"m00007"}


async def test_thousands_of_deadlines_in_one_second_leave_room_for_pings(make_stack, clock):
    from heartbeatd.model import Ping, PingKind, Status
    from heartbeatd.ticking import TICK_PIECE, tick_in_slices

    n = 3000
    stack = await make_stack(
        '[storage]\npath = "hb.db"\n'
        + "".join(f'[monitors.m{i:05d}]\nperiod = "1m"\ngrace = "1m"\n' for i in range(n))
    )
    engine = stack.engine
    # A restart after an outage, say: every deadline passes in the same second.
    clock.advance(minutes=3)
    ticks = []
    applying = asyncio.ensure_future(
        tick_in_slices(engine, clock, clock.now(), lambda: ticks.append(1))
    )
    # A ping comes in while the deadlines are being applied.
    while not ticks:
        await asyncio.sleep(0)
    pending = [s for s, state in engine.states.items() if state.status is not Status.DOWN]
    assert pending, f"all {n} deadlines were applied before the ping could be"
    pinged = pending[-1]
    await engine.handle_ping(pinged, Ping(kind=PingKind.SUCCESS, at=clock.now()))
    await applying
    # The rest went down; the ping that came in between was not undone.
    down = {s for s, state in engine.states.items() if state.status is Status.DOWN}
    assert engine.states[pinged].status is Status.UP
    assert down == set(engine.config.monitors) - {pinged}
    assert len(ticks) == -(-n // TICK_PIECE)
    await stack.store.flush()


async def test_a_monitor_whose_state_went_between_two_slices_is_skipped_quietly(
    make_stack, clock, caplog
):
    from heartbeatd.model import Status

    stack = await make_stack(
        '[storage]\npath = "hb.db"\n'
        + "".join(f'[monitors.m{i}]\nperiod = "1m"\ngrace = "1m"\n' for i in range(3))
    )
    engine = stack.engine
    clock.advance(minutes=3)
    due = engine.pop_due(clock.now())
    # What a rolled-back first write does to a monitor between the slices.
    del engine.states["m1"]
    engine.tick_due(due, clock.now())
    assert "tick failed" not in caplog.text
    assert {s: engine.states[s].status for s in ("m0", "m2")} == {
        "m0": Status.DOWN,
        "m2": Status.DOWN,
    }
    await stack.store.flush()
