from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from heartbeatd.alerts import Alert
from heartbeatd.clock import FakeClock
from heartbeatd.model import (
    BODY_PREVIEW,
    AlertEvent,
    Flip,
    MonitorState,
    Ping,
    PingKind,
    Reason,
    Status,
)
from heartbeatd.store import MIGRATIONS, PingRecord, Store, StoreError
from tests import wal
from tests.conftest import NOW
from tests.samples import DOWN, DOWN_ALERT, DOWN_FLIP, UP


def ping(body: str = "", at=NOW) -> PingRecord:
    return PingRecord(Ping(PingKind.SUCCESS, at=at, body=body), duration=1.5)


def sql(path: Path, query: str, params: tuple = ()) -> list[tuple]:
    """Read the database file the way another process would."""
    with sqlite3.connect(path) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "heartbeatd.db"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock):
    store = await Store.open(db_path, clock=clock)
    yield store
    await store.close()


async def test_it_creates_the_directory_migrates_and_uses_wal(store: Store, db_path: Path):
    assert sql(db_path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert sql(db_path, "PRAGMA journal_mode") == [("wal",)]
    tables = {row[0] for row in sql(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "monitors", "pings", "flips", "outbox"} <= tables


async def test_it_refuses_a_database_from_a_newer_heartbeatd(db_path: Path, clock: FakeClock):
    db_path.parent.mkdir()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this heartbeatd"):
        await Store.open(db_path, clock=clock)


async def test_it_refuses_a_database_without_wal(clock: FakeClock):
    # An in-memory database cannot use WAL: journal_mode reads back "memory".
    with pytest.raises(StoreError, match="need 'wal'"):
        await Store.open(":memory:", clock=clock)


async def test_it_rejects_an_unknown_synchronous_mode(db_path: Path):
    with pytest.raises(ValueError, match="synchronous"):
        await Store.open(db_path, synchronous="off")


async def test_it_keeps_states_and_meta_across_reopening(db_path: Path, clock: FakeClock):
    async with await Store.open(db_path, clock=clock) as store:
        await store.queue_change("backup", UP, ping=ping())
        await store.queue_change("queue", DOWN)
        await store.set_meta("last_stop", "2026-01-14T12:00:00Z")
    async with await Store.open(db_path, synchronous="normal", clock=clock) as store:
        assert await store.load_states() == {"backup": UP, "queue": DOWN}
        assert await store.get_meta("last_stop") == "2026-01-14T12:00:00Z"
        assert await store.get_meta("missing") is None


async def test_it_loads_a_state_stored_with_a_whole_body_as_its_end(
    db_path: Path, clock: FakeClock
):
    # Databases written by heartbeatd 0.1.0 kept each monitor's whole last
    # body (up to 10 MiB) in its state, under `last_body`.
    async with await Store.open(db_path, clock=clock):
        pass
    body = "x" * 1_000_000 + "the end"
    old = json.dumps({"status": "down", "n_pings": 3, "last_body": body})
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO monitors (slug, state, updated_at) VALUES ('backup', ?, ?)",
            (old, NOW.isoformat()),
        )
    async with await Store.open(db_path, clock=clock) as store:
        state = (await store.load_states())["backup"]
    assert (state.status, state.n_pings) == (Status.DOWN, 3)
    assert len(state.body_preview) == BODY_PREVIEW
    assert state.body_preview.endswith("xxthe end")
    assert "last_body" not in state.to_json()


async def test_it_commits_many_concurrent_changes_in_few_transactions(store: Store, db_path: Path):
    before = wal.commits(db_path)
    states = {f"m{i}": MonitorState(status=Status.UP, n_pings=i) for i in range(500)}
    await asyncio.gather(*(store.queue_change(s, st, ping=ping()) for s, st in states.items()))
    assert await store.load_states() == states
    assert len(await store.pings("m7")) == 1
    assert 1 <= wal.commits(db_path) - before <= 10


async def test_it_keeps_the_last_state_queued_for_a_monitor(store: Store):
    futures = [store.queue_change("backup", MonitorState(n_pings=n), ping=ping()) for n in range(5)]
    await asyncio.gather(*futures)
    assert (await store.load_states())["backup"].n_pings == 4
    assert len(await store.pings("backup")) == 5


async def test_it_resolves_a_change_only_once_it_is_committed(store: Store, db_path: Path):
    seen = []
    future = store.queue_change("backup", UP, ping=ping("hello"))
    future.add_done_callback(lambda _: seen.extend(sql(db_path, "SELECT body FROM pings")))
    await future
    assert seen == [("hello",)]


async def test_it_writes_a_flip_and_its_alerts_together(store: Store, clock: FakeClock):
    clock.advance(minutes=5)
    alerts = [("ops", DOWN_ALERT), ("hook", DOWN_ALERT)]
    await store.queue_change("backup", DOWN, flip=DOWN_FLIP, alerts=alerts)

    [flip] = await store.flips("backup")
    assert flip["at"] == "2026-01-14T12:00:00Z"
    assert (flip["old"], flip["new"], flip["reason"], flip["event"]) == (
        "up",
        "down",
        "missed",
        "down",
    )
    assert [d["channel"] for d in flip["deliveries"]] == ["ops", "hook"]
    assert flip["deliveries"][0] == {
        "channel": "ops",
        "state": "pending",
        "attempts": 0,
        "last_error": None,
        "delivered_at": None,
        "failed_at": None,
    }
    # Due at the flip's time, not when the change was committed.
    assert await store.next_due() == NOW
    items = await store.claim_due(clock.now())
    assert [(i.flip_id, i.channel, i.alert) for i in items] == [
        (flip["id"], "ops", DOWN_ALERT),
        (flip["id"], "hook", DOWN_ALERT),
    ]
    assert items[0].created_at == clock.now()


async def test_it_writes_no_flip_for_a_reminder_but_queues_its_alert(store: Store, db_path: Path):
    reminder = Flip(
        at=NOW, old=Status.DOWN, new=Status.DOWN, reason=Reason.MISSED, event=AlertEvent.REMINDER
    )
    await store.queue_change("backup", DOWN, flip=reminder, alerts=[("ops", DOWN_ALERT)])
    assert await store.flips("backup") == []
    assert sql(db_path, "SELECT flip_id, channel, state FROM outbox") == [(None, "ops", "pending")]


async def test_it_gives_flips_of_one_batch_their_own_ids(store: Store):
    up_flip = Flip(at=NOW, old=Status.DOWN, new=Status.UP, reason=Reason.RECOVERED)
    await asyncio.gather(
        store.queue_change("a", DOWN, flip=DOWN_FLIP, alerts=[("ops", DOWN_ALERT)]),
        store.queue_change("b", DOWN, flip=DOWN_FLIP, alerts=[("ops", DOWN_ALERT)]),
        store.queue_change("a", UP, flip=up_flip),
    )
    flips_a = await store.flips("a")
    [flip_b] = await store.flips("b")
    assert [f["new"] for f in flips_a] == ["up", "down"]
    assert [len(f["deliveries"]) for f in flips_a] == [0, 1]
    assert len(flip_b["deliveries"]) == 1
    assert len({flips_a[0]["id"], flips_a[1]["id"], flip_b["id"]}) == 3


async def test_it_lists_pings_newest_first(store: Store, clock: FakeClock):
    await store.queue_change("backup", UP, ping=ping("first"))
    fail = Ping(
        PingKind.FAIL,
        at=NOW + timedelta(minutes=1),
        exit_status=3,
        rid="r1",
        method="POST",
        remote_addr="10.0.0.1",
        user_agent="curl/8",
        body="x" * 10,
        truncated=True,
    )
    await store.queue_change("backup", DOWN, ping=PingRecord(fail, duration=None))
    newest, oldest = await store.pings("backup")
    assert newest == {
        "id": oldest["id"] + 1,
        "at": "2026-01-14T12:01:00Z",
        "kind": "fail",
        "exit_status": 3,
        "rid": "r1",
        "method": "POST",
        "remote_addr": "10.0.0.1",
        "user_agent": "curl/8",
        "body": "xxxxxxxxxx",
        "truncated": True,
        "duration": None,
    }
    assert oldest["body"] == "first"
    assert oldest["duration"] == 1.5
    assert await store.pings("backup", limit=1) == [newest]


async def test_it_trims_pings_to_the_newest_per_monitor(db_path: Path, clock: FakeClock):
    async with await Store.open(db_path, clock=clock) as store:
        for n in range(5):
            await store.queue_change("a", UP, ping=ping(f"a{n}"))
            await store.queue_change("b", UP, ping=ping(f"b{n}"))
        await store.queue_change("c", UP, ping=ping("c0"))
        assert await store.trim_pings(3) == 4
        assert [p["body"] for p in await store.pings("a")] == ["a4", "a3", "a2"]
        assert [p["body"] for p in await store.pings("c")] == ["c0"]
        # Nothing pinged since the last trim: nothing to look at.
        assert await store.trim_pings(0) == 0
        await store.queue_change("a", UP, ping=ping("a5"))
        assert await store.trim_pings(3) == 1
        assert [p["body"] for p in await store.pings("b")] == ["b4", "b3", "b2"]
    # After a restart the first trim looks at every monitor.
    async with await Store.open(db_path, clock=clock) as store:
        assert await store.trim_pings(1) == 4
        assert [p["body"] for p in await store.pings("a")] == ["a5"]


async def test_it_claims_a_due_row_once_until_the_lease_ends(store: Store, clock: FakeClock):
    await store.queue_change("backup", DOWN, flip=DOWN_FLIP, alerts=[("ops", DOWN_ALERT)])
    now = clock.now()
    [item] = await store.claim_due(now, lease=60)
    assert await store.claim_due(now, lease=60) == []
    # While claimed, the row is next claimable when its lease ends.
    assert await store.next_due() == now + timedelta(seconds=60)
    assert await store.claim_due(now + timedelta(seconds=59)) == []
    [again] = await store.claim_due(now + timedelta(seconds=60))
    assert again.id == item.id


async def test_it_releases_leases_left_by_a_crash_mid_send(store: Store, clock: FakeClock):
    await store.queue_change("backup", DOWN, flip=DOWN_FLIP, alerts=[("ops", DOWN_ALERT)])
    [item] = await store.claim_due(clock.now(), lease=300)
    assert await store.release_claims() == 1
    [again] = await store.claim_due(clock.now())
    assert again.id == item.id


async def test_it_delivers_one_monitors_alerts_to_a_channel_in_order(
    store: Store, clock: FakeClock
):
    up_flip = Flip(
        at=NOW, old=Status.DOWN, new=Status.UP, reason=Reason.RECOVERED, event=AlertEvent.UP
    )
    up_alert = Alert(
        event=AlertEvent.UP,
        monitor="backup",
        name="Nightly backup",
        status=Status.UP,
        reason=Reason.RECOVERED,
        at=NOW,
    )
    await store.queue_change("backup", DOWN, flip=DOWN_FLIP, alerts=[("ops", DOWN_ALERT)])
    await store.queue_change(
        "backup", UP, flip=up_flip, alerts=[("ops", up_alert), ("pager", up_alert)]
    )
    [down, pager_up] = await store.claim_due(clock.now())
    assert (down.channel, down.alert.event) == ("ops", AlertEvent.DOWN)
    assert (pager_up.channel, pager_up.alert.event) == ("pager", AlertEvent.UP)
    await store.mark_delivered(pager_up, clock.now())
    # The DOWN to ops is being retried later: the UP to ops waits behind it.
    later = clock.now() + timedelta(minutes=10)
    await store.mark_retry(down, "HTTP 503", later)
    assert await store.claim_due(clock.now()) == []
    assert await store.next_due() == later
    [retried] = await store.claim_due(later)
    await store.mark_delivered(retried, later)
    [up] = await store.claim_due(later)
    assert (up.channel, up.alert.event) == ("ops", AlertEvent.UP)


async def test_it_claims_concurrently_without_handing_out_a_row_twice(store: Store):
    alerts = [(f"ch{n}", DOWN_ALERT) for n in range(20)]
    await store.queue_change("backup", DOWN, flip=DOWN_FLIP, alerts=alerts)
    claims = await asyncio.gather(*(store.claim_due(NOW, limit=3) for _ in range(10)))
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == len(set(ids)) == 20


async def test_it_records_delivery_retry_and_failure(store: Store, clock: FakeClock):
    alerts = [("ops", DOWN_ALERT), ("hook", DOWN_ALERT), ("chat", DOWN_ALERT)]
    await store.queue_change("backup", DOWN, flip=DOWN_FLIP, alerts=alerts)
    ops, hook, chat = await store.claim_due(NOW)
    later = NOW + timedelta(seconds=10)
    await store.mark_delivered(ops, NOW)
    await store.mark_retry(hook, "smtp.example.com: 451 try later", later)
    await store.mark_failed(chat, "hooks.slack.com: 404", NOW)

    assert await store.outbox_counts() == {"pending": 1, "sent": 1, "failed": 1}
    assert await store.outbox_pending() == 1
    assert await store.next_due() == later
    assert await store.claim_due(NOW) == []
    [retry] = await store.claim_due(later)
    assert (retry.id, retry.attempts, retry.next_attempt_at) == (hook.id, 1, later)
    [flip] = await store.flips("backup")
    assert [(d["state"], d["attempts"], d["last_error"]) for d in flip["deliveries"]] == [
        ("sent", 1, None),
        ("pending", 1, "smtp.example.com: 451 try later"),
        ("failed", 1, "hooks.slack.com: 404"),
    ]
    assert flip["deliveries"][0]["delivered_at"] == "2026-01-14T12:00:00Z"


async def test_it_has_nothing_due_when_the_outbox_is_empty(store: Store):
    assert await store.next_due() is None
    assert await store.outbox_counts() == {"pending": 0, "sent": 0, "failed": 0}
    assert await store.outbox_pending() == 0


def break_writes(path: Path, body: str) -> None:
    """Make any write of a ping with this body fail, as a full disk would fail it."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER break_writes BEFORE INSERT ON pings "
            f"WHEN NEW.body = '{body}' BEGIN SELECT RAISE(FAIL, 'simulated I/O error'); END"
        )


async def test_it_fails_a_batch_it_cannot_write_and_keeps_writing(
    store: Store, db_path: Path, caplog: pytest.LogCaptureFixture
):
    break_writes(db_path, "boom")
    with pytest.raises(StoreError, match="simulated I/O error"):
        await store.queue_change("backup", UP, ping=ping("boom"))
    assert "store write failed" in caplog.text
    assert caplog.records[-1].levelno == logging.ERROR
    assert await store.load_states() == {}

    await store.queue_change("backup", UP, ping=ping("fine"))
    assert await store.load_states() == {"backup": UP}
    assert [p["body"] for p in await store.pings("backup")] == ["fine"]


async def test_it_fails_every_change_of_a_failed_batch(store: Store, db_path: Path):
    break_writes(db_path, "boom")
    results = await asyncio.gather(
        store.queue_change("a", UP, ping=ping("boom")),
        store.queue_change("b", UP, ping=ping("fine")),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [StoreError, StoreError]
    assert await store.load_states() == {}


async def test_it_keeps_a_failing_change_from_failing_other_operations(store: Store, db_path: Path):
    break_writes(db_path, "boom")
    results = await asyncio.gather(
        store.queue_change("a", UP, ping=ping("boom")),
        store.set_meta("k", "v"),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError)
    assert results[1] is None
    assert await store.get_meta("k") == "v"


async def test_it_fails_a_change_built_on_a_failed_one_without_writing_it(
    store: Store, db_path: Path
):
    break_writes(db_path, "boom")
    failed = store.queue_change("backup", DOWN, ping=ping("boom"))
    with pytest.raises(StoreError):
        await failed
    # Built on the failed change, and on that one in turn: neither is written.
    built = store.queue_change("backup", UP, ping=ping("fine"), after=failed)
    on_top = store.queue_change("backup", UP, ping=ping("fine too"), after=built)
    ok = store.queue_change("other", UP, ping=ping("other"))
    results = await asyncio.gather(built, on_top, ok, return_exceptions=True)
    assert [type(r) for r in results] == [StoreError, StoreError, type(None)]
    assert "the change it builds on failed" in str(results[0])
    assert await store.pings("backup") == []
    # Built on a change that was written: written too.
    await store.queue_change("other", DOWN, ping=ping("next"), after=ok)
    assert [p["body"] for p in await store.pings("other")] == ["next", "other"]


async def test_it_writes_queued_changes_before_closing(db_path: Path, clock: FakeClock):
    store = await Store.open(db_path, clock=clock)
    futures = [store.queue_change(f"m{n}", UP) for n in range(50)]
    await store.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert sql(db_path, "SELECT count(*) FROM monitors") == [(50,)]


async def test_it_refuses_changes_after_closing(db_path: Path, clock: FakeClock):
    store = await Store.open(db_path, clock=clock)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.queue_change("backup", UP)


async def test_it_saves_many_states_in_one_job_in_queue_order(store: Store, clock: FakeClock):
    older = {f"m{n}": DOWN for n in range(500)}
    bulk = store.queue_states(older)
    # A change queued after the bulk save wins over it.
    newer = store.queue_change("m7", UP)
    await asyncio.gather(bulk, newer)
    states = await store.load_states()
    assert len(states) == 500
    assert states["m7"] == UP
    assert states["m8"] == DOWN


async def test_it_flushes_once_everything_queued_before_is_committed(store: Store, db_path: Path):
    seen = []
    first = store.queue_change("a", UP, ping=ping("first"))
    # Let the writer take the first change out of the queue: a batch being
    # written is no longer queued, and a flush must wait for it all the same.
    await asyncio.sleep(0)
    second = store.queue_change("b", DOWN, ping=ping("second"))
    flushed = store.flush()
    flushed.add_done_callback(lambda _: seen.extend(sql(db_path, "SELECT body FROM pings")))
    await flushed
    assert first.done() and second.done()
    assert sorted(seen) == [("first",), ("second",)]


async def test_it_writes_nothing_for_a_flush(store: Store, db_path: Path):
    await store.flush()
    await store.flush()
    assert await store.load_states() == {}
    assert sql(db_path, "SELECT count(*) FROM meta") == [(0,)]


async def test_it_flushes_past_a_change_that_failed(store: Store, db_path: Path):
    break_writes(db_path, "boom")
    failed = store.queue_change("backup", UP, ping=ping("boom"))
    # The failure is the change's to report: the flush only waits for it.
    await store.flush()
    assert isinstance(failed.exception(), StoreError)


async def test_it_refuses_to_flush_a_closed_store(db_path: Path, clock: FakeClock):
    store = await Store.open(db_path, clock=clock)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.flush()
