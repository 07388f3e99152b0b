"""Failed writes never lose a flip: the engine with a real SQLite store whose
writes fail for real (a trigger that raises, as a full disk or an outside write
lock would fail a batch), and a fake clock.

The rule under test: whatever the database holds is a story the flips table
tells. A monitor stored `down` has the down flip (and its alerts) that took it
there; a monitor stored `up` after a down has its recovery flip. Every ping
that was acknowledged is stored, and no other.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import textwrap
from collections.abc import Collection
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heartbeatd.clock import FakeClock
from heartbeatd.config import Config, load_config
from heartbeatd.engine import RETRY_AFTER, Engine
from heartbeatd.model import Ping, PingKind, Status
from heartbeatd.store import Store, StoreError
from tests.conftest import NOW

CONFIG = """
[server]
base_url = "https://hb.example.com"

[storage]
path = "hb.db"

[channels.ops]
type = "log"

[channels.pager]
type = "log"

[monitors.backup]
period = "1h"
grace = "5m"

[monitors.queue]
period = "10m"
grace = "1m"
max_runtime = "3m"
"""
CHANNELS = ("ops", "pager")
# A ping with a body starting so cannot be written: its whole batch fails.
BOOM = "boom"


def write_config(directory: Path, name: str = "heartbeatd.toml") -> Config:
    path = directory / name
    text = CONFIG if name == "heartbeatd.toml" else CONFIG.replace('"10m"', '"15m"')
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def install_faults(path: Path) -> None:
    """Triggers that fail a write as a full disk would: any batch holding a
    ping whose body starts with BOOM, and every batch while `fault.on` is 1."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            f"""
            CREATE TABLE fault (on_ INTEGER NOT NULL);
            INSERT INTO fault VALUES (0);
            CREATE TRIGGER big_body BEFORE INSERT ON pings
            WHEN NEW.body LIKE '{BOOM}%'
            BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
            CREATE TRIGGER disk_full BEFORE INSERT ON monitors
            WHEN (SELECT on_ FROM fault)
            BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
            """
        )


def set_fault(path: Path, on: bool) -> None:
    with sqlite3.connect(path, timeout=10) as conn:
        conn.execute("UPDATE fault SET on_ = ?", (int(on),))


def sql(path: Path, query: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(query, params).fetchall()


async def batch_in_flight(store: Store) -> None:
    """Let the writer take every queued job into a batch and start writing it,
    so the next change waits for a later batch (as behind an outside lock)."""
    while not store._writer._queue.empty():
        await asyncio.sleep(0)
    # It took the last job; one more turn and the batch is on its thread.
    await asyncio.sleep(0)


def assert_the_flips_tell_the_stored_state(path: Path, paused: Collection[str] = ()) -> None:
    """The database's flips and outbox account for every stored status.

    A pause and a resume are not flips, so for a monitor in `paused` (ever
    paused) only what no pause explains is checked: a stored `down` has its
    down flip last, and a recovery follows a down flip.
    """
    stored = {
        slug: json.loads(state) for slug, state in sql(path, "SELECT slug, state FROM monitors")
    }
    for slug, state in stored.items():
        status = state.get("status", "new")
        flips = sql(
            path, "SELECT id, old, new, event FROM flips WHERE monitor = ? ORDER BY id", (slug,)
        )
        walked = "new"
        for flip_id, old, new, event in flips:
            if slug not in paused or old == "down":
                assert old == walked, f"{slug}: flip {flip_id} {old}->{new} after {walked}: {flips}"
            walked = new
            if event is not None:
                rows = sql(
                    path,
                    "SELECT channel, event FROM outbox WHERE flip_id = ? ORDER BY channel",
                    (flip_id,),
                )
                assert rows == [(channel, event) for channel in sorted(CHANNELS)], (slug, flip_id)
        if slug not in paused or status == "down":
            # `late` is a shade of `up` (no flip); `new` has had none.
            expected = "up" if status == "late" else status
            assert walked == expected, f"{slug}: stored {status}, flips end at {walked}: {flips}"
        # Rolled-back pings are neither counted nor stored.
        stored_pings = sql(path, "SELECT count(*) FROM pings WHERE monitor = ?", (slug,))[0][0]
        assert state.get("n_pings", 0) == stored_pings, slug


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock):
    store = await Store.open(tmp_path / "hb.db", clock=clock)
    install_faults(tmp_path / "hb.db")
    yield store
    await store.close()


@pytest.fixture
async def engine(tmp_path: Path, store: Store, clock: FakeClock) -> Engine:
    engine = Engine(write_config(tmp_path), store)
    await engine.recover(clock.now())
    return engine


def ping(clock: FakeClock, kind: PingKind, body: str = "") -> Ping:
    return Ping(kind, at=clock.now(), body=body)


async def settle(*futures: asyncio.Future[None]) -> list[BaseException | None]:
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def test_a_failed_down_flip_is_not_buried_by_a_later_ping(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", ping(clock, PingKind.SUCCESS))
    # The down flip's batch fails (disk full) while the job's next failure
    # waits behind it in the writer's queue.
    flip = engine.handle_ping("backup", ping(clock, PingKind.FAIL, BOOM))
    await batch_in_flight(store)
    later = engine.handle_ping("backup", ping(clock, PingKind.FAIL, "second failure"))
    results = await settle(flip, later)

    assert_the_flips_tell_the_stored_state(tmp_path / "hb.db")
    # Built on a change that failed: not stored, and so not acknowledged.
    assert [type(r) for r in results] == [StoreError, StoreError]
    assert engine.state("backup").status is Status.UP
    # The job retries its failure: it goes down, with its alerts, now.
    await engine.handle_ping("backup", ping(clock, PingKind.FAIL, "retried"))
    assert sql(tmp_path / "hb.db", "SELECT new, event FROM flips WHERE new = 'down'") == [
        ("down", "down")
    ]
    assert_the_flips_tell_the_stored_state(tmp_path / "hb.db")


async def test_a_failed_recovery_is_not_buried_by_a_later_ping(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", ping(clock, PingKind.FAIL, "broken"))
    recovery = engine.handle_ping("backup", ping(clock, PingKind.SUCCESS, BOOM))
    await batch_in_flight(store)
    later = engine.handle_ping("backup", ping(clock, PingKind.SUCCESS, "fine"))
    results = await settle(recovery, later)

    assert_the_flips_tell_the_stored_state(tmp_path / "hb.db")
    assert [type(r) for r in results] == [StoreError, StoreError]
    assert engine.state("backup").status is Status.DOWN
    await engine.handle_ping("backup", ping(clock, PingKind.SUCCESS, "fine again"))
    assert sql(tmp_path / "hb.db", "SELECT event FROM flips ORDER BY id") == [("down",), ("up",)]
    assert_the_flips_tell_the_stored_state(tmp_path / "hb.db")


async def test_two_pings_of_one_monitor_in_one_failing_batch_both_roll_back(
    tmp_path: Path, clock: FakeClock, engine: Engine
):
    await engine.handle_ping("backup", ping(clock, PingKind.SUCCESS))
    # Queued together: one batch, which a big body makes fail as a whole.
    first = engine.handle_ping("backup", ping(clock, PingKind.FAIL, BOOM))
    second = engine.handle_ping("backup", ping(clock, PingKind.FAIL, "small"))
    assert [type(r) for r in await settle(first, second)] == [StoreError, StoreError]

    assert engine.state("backup").status is Status.UP
    await engine.handle_ping("backup", ping(clock, PingKind.FAIL, "small"))
    assert sql(tmp_path / "hb.db", "SELECT old, new, event FROM flips ORDER BY id") == [
        ("new", "up", None),
        ("up", "down", "down"),
    ]
    assert_the_flips_tell_the_stored_state(tmp_path / "hb.db")


async def test_a_failed_missed_flip_is_not_buried_by_a_later_failure(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    db = tmp_path / "hb.db"
    await engine.handle_ping("backup", ping(clock, PingKind.SUCCESS))
    # Only the missed flip's state (down, last ping a success) cannot be written.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER missed BEFORE INSERT ON monitors"
            " WHEN json_extract(NEW.state, '$.status') = 'down'"
            " AND json_extract(NEW.state, '$.last_kind') = 'success'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    clock.advance(hours=1, minutes=5)
    engine.tick(clock.now())
    assert engine.state("backup").status is Status.DOWN
    await batch_in_flight(store)
    later = engine.handle_ping("backup", ping(clock, PingKind.FAIL, "and it failed"))
    result = (await settle(later))[0]
    assert_the_flips_tell_the_stored_state(db)
    assert isinstance(result, StoreError)

    # The tick tries the missed deadline again a little later.
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER missed")
    clock.advance(seconds=5)
    engine.tick(clock.now())
    await engine.handle_ping("backup", ping(clock, PingKind.FAIL, "and it failed"))
    down = "SELECT reason FROM flips WHERE monitor = 'backup' AND new = 'down'"
    assert sql(db, down) == [("missed",)]
    assert_the_flips_tell_the_stored_state(db)


async def test_a_failed_write_rolls_back_even_if_its_caller_went_away(
    tmp_path: Path, clock: FakeClock, engine: Engine, store: Store
):
    await engine.handle_ping("backup", ping(clock, PingKind.SUCCESS))
    # The client hangs up: aiohttp cancels the handler awaiting the ping.
    engine.handle_ping("backup", ping(clock, PingKind.FAIL, BOOM)).cancel()
    # Written (and failed) in the same batch: once this resolves, so has it.
    await store.flush()
    assert engine.state("backup").status is Status.UP
    await engine.handle_ping("backup", ping(clock, PingKind.FAIL, "retried"))
    assert_the_flips_tell_the_stored_state(tmp_path / "hb.db")


async def test_a_failed_save_at_start_up_is_retried(tmp_path: Path, clock: FakeClock, store: Store):
    db = tmp_path / "hb.db"
    set_fault(db, True)
    engine = Engine(write_config(tmp_path), store)
    await engine.recover(clock.now())
    # A ping queued behind the failing start-up save fails with it.
    early = engine.handle_ping("backup", ping(clock, PingKind.SUCCESS))
    assert isinstance((await settle(early))[0], StoreError)
    assert (await store.load_states()) == {}
    # Both monitors keep the state start-up gave them, and the next tick
    # (after the retry delay) stores it.
    assert engine.state("backup").first_seen == NOW
    set_fault(db, False)
    clock.advance(seconds=5)
    engine.tick(clock.now())
    await store.flush()
    stored = await store.load_states()
    assert stored["backup"] == engine.state("backup")
    assert stored["queue"] == engine.state("queue")
    assert stored["backup"].first_seen == NOW


# -- any interleaving --------------------------------------------------------------

KINDS = (PingKind.SUCCESS, PingKind.FAIL, PingKind.START, PingKind.LOG)
MONITORS = st.sampled_from(("backup", "queue"))
# A ping; one in four has a body too big for the full disk.
PING = st.tuples(
    st.just("ping"), MONITORS, st.sampled_from(KINDS), st.integers(0, 3).map(lambda n: n == 0)
)
# Time passes (up to past both monitors' deadlines) and the wheel ticks.
TICK = st.tuples(st.just("tick"), st.integers(0, 80))
# The loop turns a few times (0: until the writer has taken all that is
# queued): batches are written while more changes queue up behind them.
TURN = st.tuples(st.just("turn"), st.integers(0, 3))
# Every queued write resolves.
SETTLE = st.tuples(st.just("settle"))
# The disk fills up or has room again.
DISK = st.tuples(st.just("disk_full"), st.booleans())
# The other changes: the API pauses or resumes, a reload changes a schedule,
# the wall clock jumps forward.
OTHER = st.one_of(
    st.tuples(st.sampled_from(("pause", "resume")), MONITORS),
    st.tuples(st.just("reload")),
    st.tuples(st.just("jump"), st.integers(1, 120)),
)
# Listed more than once: drawn more often.
STEPS = st.lists(st.one_of(PING, PING, PING, TICK, TURN, TURN, SETTLE, DISK, OTHER), max_size=40)


class Player:
    """Plays steps against an engine and remembers what each caller was told."""

    def __init__(self, directory: Path, clock: FakeClock, store: Store) -> None:
        self.db = directory / "hb.db"
        self.clock = clock
        self.store = store
        # The same monitors; a reload switches the queue's period back and forth.
        self.configs = [write_config(directory), write_config(directory, "other.toml")]
        self.engine = Engine(self.configs[0], store)
        self.pings: list[tuple[asyncio.Future[None], str, str]] = []
        self.answers: list[asyncio.Future[None]] = []
        self.paused: set[str] = set()

    async def play(self, n: int, step: tuple) -> None:
        engine, clock = self.engine, self.clock
        what = step[0]
        if what == "ping":
            _, slug, kind, big = step
            body = f"{BOOM if big else 'out'}-{n}"
            self.pings.append((engine.handle_ping(slug, ping(clock, kind, body)), slug, body))
        elif what == "tick":
            clock.advance(minutes=step[1])
            engine.tick(clock.now())
        elif what == "turn" and step[1] == 0:
            await batch_in_flight(self.store)
        elif what == "turn":
            for _ in range(step[1]):
                await asyncio.sleep(0)
        elif what == "settle":
            await self.settle()
        elif what == "disk_full":
            set_fault(self.db, step[1])
        elif what == "pause":
            self.paused.add(step[1])
            self.answers.append(engine.pause(step[1]))
        elif what == "resume":
            self.answers.append(engine.resume(step[1], clock.now()))
        elif what == "reload":
            self.configs.reverse()
            engine.apply_config(self.configs[0], clock.now())
        else:
            clock.advance(minutes=step[1])
            engine.forgive(clock.now())

    async def settle(self) -> None:
        await settle(*(future for future, _, _ in self.pings), *self.answers)


async def play(directory: Path, full_at_start: bool, steps: list[tuple]) -> None:
    clock = FakeClock(NOW)
    store = await Store.open(directory / "hb.db", synchronous="normal", clock=clock)
    install_faults(directory / "hb.db")
    set_fault(directory / "hb.db", full_at_start)
    player = Player(directory, clock, store)
    engine = player.engine
    try:
        await engine.recover(clock.now())
        for n, step in enumerate(steps):
            await player.play(n, step)
        # The disk has room again; what was rolled back is retried by the
        # next ticks (the pings by their clients, which are not modelled).
        set_fault(player.db, False)
        await player.settle()
        for _ in range(2):
            clock.advance(RETRY_AFTER.total_seconds())
            engine.tick(clock.now())
            await store.flush()
        stored = await store.load_states()
    finally:
        await store.close()

    assert_the_flips_tell_the_stored_state(player.db, player.paused)
    # What the engine holds in memory is what the database holds.
    for slug in ("backup", "queue"):
        assert engine.state(slug) == stored.get(slug), slug
    # A ping is stored if and only if it was acknowledged.
    stored_bodies = set(sql(player.db, "SELECT monitor, body FROM pings"))
    for future, slug, body in player.pings:
        assert ((slug, body) in stored_bodies) == (future.exception() is None), (slug, body)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(full_at_start=st.booleans(), steps=STEPS)
def test_no_interleaving_of_pings_ticks_and_failed_writes_loses_a_flip(
    full_at_start: bool, steps: list[tuple]
):
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(play(Path(directory), full_at_start, steps))
