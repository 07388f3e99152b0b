from __future__ import annotations

import asyncio
import logging
import random
import types
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from heartbeatd.alerts import Alert
from heartbeatd.channels import CHANNEL_TYPES
from heartbeatd.channels import log as log_channel
from heartbeatd.channels.base import DeliveryError, SendContext, describe_failure
from heartbeatd.clock import FakeClock
from heartbeatd.model import AlertEvent, Flip, Reason, Status
from heartbeatd.outbox import LEASE_MARGIN, Outbox, backoff
from heartbeatd.store import Store
from tests.conftest import NOW
from tests.harness.inprocess import advance_until_done
from tests.samples import DOWN, DOWN_ALERT, DOWN_FLIP, UP


@dataclass(frozen=True)
class Channel:
    """A configured channel as the config layer hands it over."""

    type: str
    options: Any


@dataclass(frozen=True)
class FakeOptions:
    name: str
    failures: int = 0
    permanent: bool = False
    error: type[Exception] = DeliveryError
    hang: bool = False


class FakeChannelType:
    """The `fake` channel type: fails `failures` times, then succeeds; records all."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.events: list[str] = []
        # (channel, event) of every alert sent.
        self.sent: list[tuple[str, str]] = []
        self.called = asyncio.Event()

    def module(self) -> types.ModuleType:
        module = types.ModuleType("fake")
        module.send = self.send  # type: ignore[attr-defined]
        return module

    async def send(self, alert: Alert, opts: FakeOptions, ctx: SendContext) -> None:
        assert isinstance(ctx, SendContext)
        self.calls.append(opts.name)
        self.called.set()
        if opts.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.events.append(f"{opts.name} cut")
                raise
        if self.calls.count(opts.name) <= opts.failures:
            if opts.error is DeliveryError:
                raise DeliveryError(f"{opts.name}.example.com: 503", permanent=opts.permanent)
            raise opts.error("connection reset")
        self.events.append(f"{opts.name} sent")
        self.sent.append((opts.name, alert.event.value))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeChannelType:
    fake = FakeChannelType()
    monkeypatch.setitem(CHANNEL_TYPES, "fake", fake.module())
    return fake


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock):
    store = await Store.open(tmp_path / "heartbeatd.db", clock=clock)
    yield store
    await store.close()


@pytest.fixture
async def outboxes():
    made: list[Outbox] = []
    yield made
    for outbox in made:
        await outbox.close()


@pytest.fixture
def make_outbox(store: Store, clock: FakeClock, outboxes: list[Outbox]):
    def make(*options: FakeOptions, **kwargs: Any) -> Outbox:
        channels = {o.name: Channel("fake", o) for o in options}
        outbox = Outbox(store, clock, channels=channels, rng=random.Random(7), **kwargs)
        outboxes.append(outbox)
        return outbox

    return make


async def queue_alert(store: Store, *channels: str) -> None:
    await store.queue_change(
        "backup", DOWN, flip=DOWN_FLIP, alerts=[(c, DOWN_ALERT) for c in channels]
    )


async def deliveries(store: Store) -> list[tuple[str, str, int, str | None]]:
    [flip] = await store.flips("backup")
    return [(d["channel"], d["state"], d["attempts"], d["last_error"]) for d in flip["deliveries"]]


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 10), (2, 20), (3, 40), (4, 80), (8, 1280), (9, 1800), (50, 1800), (10**6, 1800)],
    ids=["first", "second", "third", "fourth", "eighth", "capped", "long-outage", "huge"],
)
def test_it_backs_off_doubling_from_10s_to_30min_with_jitter(attempts: int, seconds: float):
    delays = [backoff(attempts, random.Random(seed)) for seed in range(50)]
    assert all(0.8 * seconds <= d <= 1.2 * seconds for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (DeliveryError("smtp.example.com: 451 try later"), "smtp.example.com: 451 try later"),
        (
            OSError("cannot reach https://user:pw@hooks.example.com/T0/B1/secret?x=1"),
            "OSError: cannot reach https://hooks.example.com/…",
        ),
        (RuntimeError(), "RuntimeError"),
    ],
    ids=["delivery-error-as-is", "url-path-and-userinfo-stripped", "no-message"],
)
def test_it_describes_failures_without_secrets(exc: Exception, text: str):
    assert describe_failure(exc) == text


async def test_it_delivers_once_after_retries(fake, store, clock, make_outbox, caplog):
    caplog.set_level(logging.INFO)
    outbox = make_outbox(FakeOptions("ops", failures=2))
    await queue_alert(store, "ops")

    assert await outbox.deliver_due() == 1
    assert await deliveries(store) == [("ops", "pending", 1, "ops.example.com: 503")]
    for _ in range(3):
        clock.advance(hours=1)
        await outbox.deliver_due()
    clock.advance(hours=1)
    assert await outbox.deliver_due() == 0

    assert fake.calls == ["ops", "ops", "ops"]
    assert await deliveries(store) == [("ops", "sent", 3, "ops.example.com: 503")]
    assert outbox.stats.sent == {"ops": 1}
    assert outbox.stats.attempts == 3
    assert "alert delivered monitor=backup channel=ops event=down attempts=3" in caplog.text
    assert "alert delivery failed monitor=backup channel=ops event=down attempts=1" in caplog.text


async def test_it_retries_on_the_backoff_schedule(fake, store, clock, make_outbox):
    outbox = make_outbox(FakeOptions("ops", failures=4))
    expected = random.Random(7)
    await queue_alert(store, "ops")
    assert await outbox.deliver_due() == 1

    for attempt in range(1, 5):
        due = clock.now() + timedelta(seconds=backoff(attempt, expected))
        assert await store.next_due() == due
        clock.advance((due - clock.now()).total_seconds() - 0.001)
        assert await outbox.deliver_due() == 0
        clock.advance(0.001)
        assert await outbox.deliver_due() == 1
        assert (await deliveries(store))[0][2] == attempt + 1

    assert await deliveries(store) == [("ops", "sent", 5, "ops.example.com: 503")]


async def test_it_fails_a_permanent_error_after_one_attempt(
    fake, store, clock, make_outbox, caplog
):
    outbox = make_outbox(FakeOptions("ops", failures=1, permanent=True))
    await queue_alert(store, "ops")
    assert await outbox.deliver_due() == 1
    clock.advance(days=1)
    assert await outbox.deliver_due() == 0
    assert await deliveries(store) == [("ops", "failed", 1, "ops.example.com: 503")]
    assert outbox.stats.failed == {"ops": 1}
    [record] = [r for r in caplog.records if r.name == "heartbeatd.outbox"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "alert failed monitor=backup channel=ops event=down attempts=1 error=ops.example.com: 503"
    )


@pytest.mark.parametrize(
    "error", [OSError, TimeoutError, ValueError], ids=["os-error", "timeout", "channel-bug"]
)
async def test_it_retries_other_exceptions(fake, store, make_outbox, error):
    outbox = make_outbox(FakeOptions("ops", failures=1, error=error))
    await queue_alert(store, "ops")
    assert await outbox.deliver_due() == 1
    [(_, state, attempts, last_error)] = await deliveries(store)
    assert (state, attempts) == ("pending", 1)
    assert last_error is not None


async def test_it_gives_up_after_give_up_after(fake, store, clock, make_outbox, caplog):
    outbox = make_outbox(FakeOptions("ops", failures=1000), give_up_after=60)
    await queue_alert(store, "ops")
    deadline = clock.now() + timedelta(seconds=60)
    attempts = 0
    while (due := await store.next_due()) is not None:
        clock.advance(max((due - clock.now()).total_seconds(), 0))
        attempts += await outbox.deliver_due()
    # 10 s, 20 s, then the rest of the minute: the last try falls on the deadline.
    assert attempts == 4
    assert clock.now() == deadline
    assert await deliveries(store) == [("ops", "failed", 4, "ops.example.com: 503")]
    assert "alert given up monitor=backup channel=ops event=down attempts=4" in caplog.text


async def test_it_cuts_a_hung_send_without_delaying_others(fake, store, clock, make_outbox):
    outbox = make_outbox(FakeOptions("stuck", hang=True), FakeOptions("ops"), send_timeout=30)
    await queue_alert(store, "stuck", "ops")
    delivering = asyncio.ensure_future(outbox.deliver_due())
    # The send timeout runs on the clock: the hung send is cut once it has passed.
    await advance_until_done(clock, delivering, 30)
    assert delivering.result() == 2
    assert fake.events == ["ops sent", "stuck cut"]
    assert await deliveries(store) == [
        ("stuck", "pending", 1, "timed out after 30s"),
        ("ops", "sent", 1, None),
    ]


async def test_it_delivers_pending_rows_after_a_restart(fake, tmp_path, clock, outboxes):
    path = tmp_path / "heartbeatd.db"
    async with await Store.open(path, clock=clock) as store:
        await queue_alert(store, "ops")
    async with await Store.open(path, clock=clock) as store:
        outbox = Outbox(store, clock, channels={"ops": Channel("fake", FakeOptions("ops"))})
        outboxes.append(outbox)
        assert await outbox.deliver_due() == 1
        assert await deliveries(store) == [("ops", "sent", 1, None)]


@dataclass(frozen=True)
class Monitor:
    """A configured monitor, as far as the outbox looks at it."""

    channels: tuple[str, ...]


def fakes(*names: str) -> dict[str, Channel]:
    return {name: Channel("fake", FakeOptions(name)) for name in names}


async def test_it_moves_alerts_of_a_removed_channel_to_the_monitors_channels(
    fake, store, make_outbox, caplog
):
    outbox = make_outbox(FakeOptions("ops"), FakeOptions("hook"))
    await queue_alert(store, "ops", "hook")
    # A reload renames hook to pager; ops already has this alert.
    outbox.set_channels(fakes("ops", "pager"), {"backup": Monitor(("ops", "pager"))})
    assert await outbox.deliver_due() == 2
    assert sorted(fake.calls) == ["ops", "pager"]
    assert await deliveries(store) == [
        ("ops", "sent", 1, None),
        ("hook", "moved", 0, "channel hook is no longer configured; moved to pager"),
        ("pager", "sent", 1, None),
    ]
    assert "alert moved monitor=backup event=down from=hook to=pager already=ops" in caplog.text
    assert await outbox.deliver_due() == 0


async def test_a_moved_alert_keeps_its_place_ahead_of_later_alerts_of_its_monitor(
    fake, store, make_outbox
):
    outbox = make_outbox(FakeOptions("hook"))
    await queue_alert(store, "hook")
    # The recovery, raised under the new config, reached the store first.
    up_flip = Flip(
        at=NOW, old=Status.DOWN, new=Status.UP, reason=Reason.RECOVERED, event=AlertEvent.UP
    )
    up_alert = replace(DOWN_ALERT, event=AlertEvent.UP, status=Status.UP)
    await store.queue_change("backup", UP, flip=up_flip, alerts=[("pager", up_alert)])
    outbox.set_channels(fakes("pager"), {"backup": Monitor(("pager",))})
    assert await outbox.deliver_due() == 1
    assert await outbox.deliver_due() == 1
    # Down before up: in the order the monitor raised them.
    assert fake.sent == [("pager", "down"), ("pager", "up")]


async def test_it_keeps_an_alert_with_nowhere_to_go_until_a_reload_gives_it_a_channel(
    fake, store, clock, make_outbox, caplog
):
    outbox = make_outbox(FakeOptions("hook"))
    await queue_alert(store, "hook")
    # Both the channel and the monitor are gone from the config.
    outbox.set_channels(fakes("ops"), {})
    assert await outbox.deliver_due() == 0
    error = "channel hook is no longer configured and monitor backup is no longer configured"
    assert await deliveries(store) == [("hook", "pending", 1, error)]
    assert (
        f"alert has no channel to go to monitor=backup channel=hook event=down error={error}"
        in caplog.text
    )
    # The monitor comes back, with a channel.
    outbox.set_channels(fakes("ops"), {"backup": Monitor(("ops",))})
    assert await outbox.deliver_due() == 1
    assert fake.calls == ["ops"]
    assert [d[:2] for d in await deliveries(store)] == [("hook", "moved"), ("ops", "sent")]


async def test_it_moves_an_alert_whose_send_was_under_way_when_its_channel_went(
    gated, store, clock
):
    outbox = Outbox(store, clock, channels={"hook": Channel("gated", FakeOptions("hook", 1))})
    await queue_alert(store, "hook")
    sending = asyncio.ensure_future(outbox.deliver_due())
    assert await gated.next_started() == "hook"
    # Reloaded mid-send: the send goes on with the old channel, and fails.
    outbox.set_channels(
        {"pager": Channel("gated", FakeOptions("pager"))}, {"backup": Monitor(("pager",))}
    )
    gated.open("hook")
    await sending
    assert [d[:3] for d in await deliveries(store)] == [("hook", "pending", 1)]
    clock.advance(minutes=1)
    gated.open("pager")
    await outbox.deliver_due()
    await outbox.deliver_due()
    assert gated.sent == ["pager"]
    assert [d[:3] for d in await deliveries(store)] == [("hook", "moved", 1), ("pager", "sent", 1)]


async def test_a_moved_alert_is_superseded_where_a_newer_alert_of_its_monitor_went_out(
    gated, store, clock, caplog
):
    outbox = Outbox(store, clock, channels={"hook": Channel("gated", FakeOptions("hook", 1))})
    await queue_alert(store, "hook")
    sending = asyncio.ensure_future(outbox.deliver_due())
    assert await gated.next_started() == "hook"
    # Reloaded while the DOWN's send to hook hangs: pager replaces hook.
    outbox.set_channels(
        {"pager": Channel("gated", FakeOptions("pager"))}, {"backup": Monitor(("pager",))}
    )
    # backup recovers meanwhile, and its UP reaches pager at once.
    up_flip = Flip(
        at=NOW, old=Status.DOWN, new=Status.UP, reason=Reason.RECOVERED, event=AlertEvent.UP
    )
    up_alert = replace(DOWN_ALERT, event=AlertEvent.UP, status=Status.UP)
    await store.queue_change("backup", UP, flip=up_flip, alerts=[("pager", up_alert)])
    gated.open("pager")
    assert await outbox.deliver_due() == 1
    # The hung send fails; moved to pager now, the DOWN would follow the UP.
    gated.open("hook")
    await sending
    clock.advance(minutes=1)
    await outbox.deliver_due()
    await outbox.deliver_due()
    assert gated.alerts == [("pager", "up")]
    up, down = await store.flips("backup")
    assert [(d["channel"], d["state"]) for d in up["deliveries"]] == [("pager", "sent")]
    assert [(d["channel"], d["state"], d["last_error"]) for d in down["deliveries"]] == [
        (
            "hook",
            "superseded",
            "channel hook is no longer configured; not moved: pager already had a newer alert",
        )
    ]
    assert (
        "alert superseded, a newer alert of its monitor went out already"
        " monitor=backup event=down channel=hook newer_on=pager" in caplog.text
    )
    assert await store.next_due() is None
    await outbox.close()


async def test_it_moves_alerts_of_channels_removed_while_it_was_stopped(fake, store, clock):
    await queue_alert(store, "hook")
    outbox = Outbox(store, clock, channels=fakes("ops"), monitors={"backup": Monitor(("ops",))})
    stop = asyncio.Event()
    worker = asyncio.ensure_future(outbox.run(stop))
    await asyncio.wait_for(fake.called.wait(), 5)
    stop.set()
    await asyncio.wait_for(worker, 5)
    assert [d[:2] for d in await deliveries(store)] == [("hook", "moved"), ("ops", "sent")]


async def test_it_claims_a_row_for_longer_than_a_send_may_take(gated, store, clock):
    outbox = Outbox(
        store, clock, channels={"ops": Channel("gated", FakeOptions("ops"))}, send_timeout=600
    )
    await queue_alert(store, "ops")
    sending = asyncio.ensure_future(outbox.deliver_due())
    await gated.next_started()
    assert await store.next_due() == clock.now() + timedelta(seconds=600 + LEASE_MARGIN)
    gated.open("ops")
    await sending


async def test_it_records_only_the_outcome_of_the_current_claim(gated, store, clock, caplog):
    # Two workers on one database (a second heartbeatd started by mistake);
    # the first one's send outlives its lease over a wall-clock jump.
    first = Outbox(store, clock, channels={"ops": Channel("gated", FakeOptions("a", 1))})
    second = Outbox(store, clock, channels={"ops": Channel("gated", FakeOptions("b"))})
    await queue_alert(store, "ops")
    sending_a = asyncio.ensure_future(first.deliver_due())
    assert await gated.next_started() == "a"
    # Past the lease (before it followed send_timeout, it was 300 s).
    clock.advance(seconds=300)
    sending_b = asyncio.ensure_future(second.deliver_due())
    assert await gated.next_started() == "b"
    # The stale attempt fails: it must not release the claim of the send under way.
    gated.open("a")
    await sending_a
    assert await store.claim_due(clock.now() + timedelta(minutes=1)) == []
    assert await deliveries(store) == [("ops", "pending", 0, None)]
    assert (
        "alert outcome not recorded, its claim is stale monitor=backup channel=ops outbox_id=1"
        " claim=1 outcome=retry" in caplog.text
    )
    gated.open("b")
    await sending_b
    assert await deliveries(store) == [("ops", "sent", 1, None)]


async def test_it_delivers_through_the_log_channel(store, clock, outboxes, caplog):
    caplog.set_level(logging.INFO)
    channels = {"journal": Channel("log", log_channel.Options(level="error"))}
    outbox = Outbox(store, clock, channels=channels)
    outboxes.append(outbox)
    await queue_alert(store, "journal")
    assert await outbox.deliver_due() == 1
    [alert_line] = [r for r in caplog.records if r.name == "heartbeatd.alert"]
    assert alert_line.levelno == logging.ERROR
    assert alert_line.getMessage().startswith("alert event=down monitor=backup status=down")
    assert "alert delivered monitor=backup channel=journal event=down attempts=1" in caplog.text
    assert await store.outbox_counts() == {"pending": 0, "sent": 1, "failed": 0}


class WatchedClock(FakeClock):
    """A FakeClock that tells the test when the worker goes to sleep."""

    def __init__(self) -> None:
        super().__init__(NOW)
        self.sleeps: asyncio.Queue[float] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        # sleep(0) only yields to the loop (the store's writer does that).
        if seconds > 0:
            self.sleeps.put_nowait(seconds)
        await super().sleep(seconds)


async def test_it_runs_until_stopped_waking_on_new_rows_and_due_times(fake, tmp_path):
    clock = WatchedClock()
    async with await Store.open(tmp_path / "heartbeatd.db", clock=clock) as store:
        channels = {"ops": Channel("fake", FakeOptions("ops", failures=1))}
        outbox = Outbox(store, clock, channels=channels, rng=random.Random(7))
        stop = asyncio.Event()
        worker = asyncio.ensure_future(outbox.run(stop))

        await queue_alert(store, "ops")
        outbox.wake()
        # The first attempt fails; the worker sleeps until the retry is due.
        seconds = await asyncio.wait_for(clock.sleeps.get(), 5)
        assert seconds == pytest.approx(backoff(1, random.Random(7)))
        assert fake.calls == ["ops"]

        fake.called.clear()
        clock.advance(seconds)
        await asyncio.wait_for(fake.called.wait(), 5)
        # Stopping lets the attempt in flight finish and be recorded.
        stop.set()
        await asyncio.wait_for(worker, 5)
        assert await deliveries(store) == [("ops", "sent", 2, "ops.example.com: 503")]


async def test_it_stops_within_the_drain_timeout_when_a_send_hangs(fake, store, clock):
    channels = {"stuck": Channel("fake", FakeOptions("stuck", hang=True))}
    outbox = Outbox(store, clock, channels=channels, drain_timeout=10)
    stop = asyncio.Event()
    await queue_alert(store, "stuck")
    claimed_at = clock.now()
    worker = asyncio.ensure_future(outbox.run(stop))
    await asyncio.wait_for(fake.called.wait(), 5)
    stop.set()
    # The drain timeout runs on the clock; the send timeout (30 s) is longer.
    await advance_until_done(clock, worker, 10)
    assert clock.now() - claimed_at < timedelta(seconds=30)
    assert fake.events == ["stuck cut"]
    # Still claimed: tried again once the lease ends (at least once delivery).
    assert await deliveries(store) == [("stuck", "pending", 0, None)]
    assert await store.next_due() == claimed_at + timedelta(seconds=outbox.lease)


class GatedChannelType:
    """The `gated` channel type: each send waits until the test opens its gate,
    then fails if its options have `failures`."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.gates: dict[str, asyncio.Event] = {}
        self.sent: list[str] = []
        # (channel, event) of every alert sent, in order.
        self.alerts: list[tuple[str, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def module(self) -> types.ModuleType:
        module = types.ModuleType("gated")
        module.send = self.send  # type: ignore[attr-defined]
        return module

    def open(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()

    async def send(self, alert: Alert, opts: FakeOptions, ctx: SendContext) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.started.put_nowait(opts.name)
        try:
            await self.gates.setdefault(opts.name, asyncio.Event()).wait()
        finally:
            self.in_flight -= 1
        if opts.failures:
            raise DeliveryError(f"{opts.name}.example.com: 503")
        self.sent.append(opts.name)
        self.alerts.append((opts.name, alert.event.value))

    async def next_started(self) -> str:
        return await asyncio.wait_for(self.started.get(), 5)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> GatedChannelType:
    gated = GatedChannelType()
    monkeypatch.setitem(CHANNEL_TYPES, "gated", gated.module())
    return gated


async def test_it_starts_the_next_send_as_soon_as_one_ends_up_to_its_concurrency(
    gated, store, clock
):
    names = ["a", "b", "c", "d", "e"]
    channels = {n: Channel("gated", FakeOptions(n)) for n in names}
    outbox = Outbox(store, clock, channels=channels, concurrency=3)
    stop = asyncio.Event()
    await queue_alert(store, *names)
    worker = asyncio.ensure_future(outbox.run(stop))
    try:
        first = {await gated.next_started() for _ in range(3)}
        assert gated.started.empty()
        # One send ends: the worker claims one more at once, while two still hang.
        done = sorted(first)[0]
        gated.open(done)
        fourth = await gated.next_started()
        assert fourth not in first
        assert gated.sent == [done]
        assert gated.in_flight == 3
        for name in names:
            gated.open(name)
        await gated.next_started()
    finally:
        # Stopping lets the sends in flight finish and be recorded.
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert sorted(gated.sent) == names
    assert gated.most_in_flight == 3
    assert await store.outbox_counts() == {"pending": 0, "sent": 5, "failed": 0}


async def test_it_sends_the_alerts_of_one_channel_and_monitor_in_order(gated, store, clock):
    outbox = Outbox(store, clock, channels={"ops": Channel("gated", FakeOptions("ops"))})
    stop = asyncio.Event()
    await queue_alert(store, "ops")
    await queue_alert(store, "ops")
    worker = asyncio.ensure_future(outbox.run(stop))
    try:
        assert await gated.next_started() == "ops"
        # There is room for more sends, but the second alert waits for the first.
        outbox.wake()
        for _ in range(20):
            await asyncio.sleep(0)
        assert gated.started.empty()
        gated.open("ops")
        assert await gated.next_started() == "ops"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert await store.outbox_counts() == {"pending": 0, "sent": 2, "failed": 0}
