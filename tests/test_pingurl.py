"""The ping URL grammar: what we build is what we parse, and what we refuse is a 4xx."""

from __future__ import annotations

import string
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heartbeatd import pingurl
from heartbeatd.model import PingKind
from heartbeatd.names import name_problem
from heartbeatd.pingurl import By, PingTarget, PingUrlError

UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
RID = "0c7b3a0e-3c5e-4b0e-9a51-111111111111"
BASE = "https://hb.example.com"
KEY = "s3cret-key"

# Whatever `heartbeatd check` accepts as a slug and a ping key.
SLUGS = st.from_regex(r"[a-z0-9_-]{1,30}", fullmatch=True).filter(lambda s: not name_problem(s))
# A UUID-shaped key would make /ping/<key>/<slug> read as /ping/<uuid>/<action>.
KEYS = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True).filter(
    lambda k: not pingurl.UUID_SHAPE.fullmatch(k)
)
UUIDS = st.uuids().map(str)
ACTIONS = st.one_of(
    # `ignored` is a kind heartbeatd gives a ping (keywords.py), never one a URL says.
    st.sampled_from([(kind, None) for kind in PingKind if kind is not PingKind.IGNORED]),
    st.integers(0, pingurl.MAX_EXIT_STATUS).map(lambda n: (pingurl.exit_kind(n), n)),
)


@st.composite
def targets(draw: st.DrawFn) -> tuple[PingTarget, str | None]:
    """A target, and the ping key the server is configured with."""
    kind, exit_status = draw(ACTIONS)
    rid = draw(st.none() | UUIDS)
    if draw(st.booleans()):
        target = PingTarget(By.UUID, draw(UUIDS), kind, exit_status, rid=rid)
        # Uuid URLs work the same with a ping key or without.
        return target, draw(st.none() | KEYS)
    key = draw(st.none() | KEYS)
    return PingTarget(By.SLUG, draw(SLUGS), kind, exit_status, key, rid), key


def parse_url(url: str, ping_key: str | None) -> PingTarget:
    """Parse `url` as the server gets it: the path decoded, the rid from the query."""
    parts = urlsplit(url)
    assert parts.path.startswith(pingurl.PREFIX), url
    rid = parse_qs(parts.query).get("rid", [None])[0]
    tail = unquote(parts.path.removeprefix(pingurl.PREFIX))
    return pingurl.parse(tail, ping_key=ping_key, rid=rid)


@given(targets())
def test_it_parses_every_url_it_builds_back_into_its_target(case):
    target, configured_key = case
    assert parse_url(pingurl.build(BASE, target), configured_key) == target


@given(targets())
def test_an_action_added_to_a_monitor_url_parses_back_too(case):
    target, configured_key = case
    monitor_url = pingurl.build(
        BASE, PingTarget(target.by, target.monitor, ping_key=target.ping_key)
    )
    url = pingurl.extend(monitor_url, target.kind, target.exit_status, rid=target.rid)
    assert parse_url(url, configured_key) == target


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (PingTarget(By.UUID, UUID), f"{BASE}/ping/{UUID}"),
        (PingTarget(By.SLUG, "backup"), f"{BASE}/ping/backup"),
        (PingTarget(By.SLUG, "backup", ping_key=KEY), f"{BASE}/ping/{KEY}/backup"),
        (PingTarget(By.SLUG, "backup", PingKind.START), f"{BASE}/ping/backup/start"),
        (PingTarget(By.SLUG, "backup", PingKind.FAIL), f"{BASE}/ping/backup/fail"),
        (PingTarget(By.UUID, UUID, PingKind.LOG), f"{BASE}/ping/{UUID}/log"),
        (PingTarget(By.SLUG, "backup", PingKind.SUCCESS, 0), f"{BASE}/ping/backup/0"),
        (PingTarget(By.SLUG, "backup", PingKind.FAIL, 3), f"{BASE}/ping/backup/3"),
        (PingTarget(By.SLUG, "backup", rid=RID), f"{BASE}/ping/backup?rid={RID}"),
        # `heartbeatd exec --ping-key` takes any text; it stays one segment.
        (PingTarget(By.SLUG, "backup", ping_key="a/b c"), f"{BASE}/ping/a%2Fb%20c/backup"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_it_builds_the_urls_of_the_contract(target, url):
    assert pingurl.build(BASE, target) == url


@pytest.mark.parametrize(
    ("url", "kind", "exit_status", "expected"),
    [
        ("http://h/ping/backup", PingKind.START, None, f"http://h/ping/backup/start?rid={RID}"),
        ("http://h/ping/backup/", PingKind.FAIL, 7, f"http://h/ping/backup/7?rid={RID}"),
        # A URL behind a proxy keeps its own path and query.
        ("https://h/hb/ping/x?t=1", PingKind.FAIL, None, f"https://h/hb/ping/x/fail?t=1&rid={RID}"),
    ],
)
def test_it_adds_an_action_and_a_rid_to_a_url_a_user_gave(url, kind, exit_status, expected):
    assert pingurl.extend(url, kind, exit_status, rid=RID) == expected


@pytest.mark.parametrize(
    ("tail", "ping_key", "status"),
    [
        ("", None, 404),
        ("/backup", None, 404),
        ("backup/start/extra", None, 404),
        (f"{UUID}/backup/start", None, 404),
        ("backup/nope", None, 404),
        ("backup/-1", None, 404),
        # Digits of other scripts are digits to str.isdigit(), not to int().
        ("backup/\u0663", None, 404),
        ("backup/256", None, 400),
        ("backup/0255", None, 400),
        ("backup/" + "9" * 5000, None, 400),
        ("backup", KEY, 404),
        ("wrong-key/backup", KEY, 404),
        (KEY, KEY, 404),
    ],
)
def test_it_refuses_what_is_no_ping(tail, ping_key, status):
    with pytest.raises(PingUrlError) as refused:
        pingurl.parse(tail, ping_key=ping_key)
    assert refused.value.status == status


def test_an_unknown_monitor_is_404_before_its_exit_status_is_read():
    def known(by: By, monitor: str) -> bool:
        return monitor == "backup"

    with pytest.raises(PingUrlError) as refused:
        pingurl.parse("nope/999", ping_key=None, exists=known)
    assert refused.value.status == 404
    with pytest.raises(PingUrlError) as refused:
        pingurl.parse("backup/999", ping_key=None, exists=known)
    assert refused.value.status == 400


@pytest.mark.parametrize("rid", ["not-a-uuid", UUID + "0", " " + UUID])
def test_a_malformed_rid_is_400(rid):
    with pytest.raises(PingUrlError) as refused:
        pingurl.parse("backup", ping_key=None, rid=rid)
    assert refused.value.status == 400


def test_a_uuid_and_a_rid_in_upper_case_are_the_same_in_lower_case():
    target = pingurl.parse(UUID.upper() + "/start", ping_key=None, rid=RID.upper())
    assert target == PingTarget(By.UUID, UUID, PingKind.START, rid=RID)


@given(
    tail=st.text(alphabet=string.ascii_letters + string.digits + "-_/.%\u0663", max_size=60),
    rid=st.none() | st.text(max_size=40),
    ping_key=st.none() | st.just(KEY),
)
def test_any_path_is_a_target_or_a_4xx(tail, rid, ping_key):
    try:
        pingurl.parse(tail, ping_key=ping_key, rid=rid)
    except PingUrlError as exc:
        assert exc.status in (400, 404)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PingTarget(By.SLUG, "backup", PingKind.SUCCESS, 3),
        lambda: PingTarget(By.SLUG, "backup", PingKind.START, 0),
        lambda: PingTarget(By.SLUG, "backup", PingKind.FAIL, 256),
        lambda: PingTarget(By.UUID, UUID, ping_key=KEY),
    ],
    ids=["success-with-3", "start-with-0", "exit-256", "uuid-with-key"],
)
def test_a_target_no_url_can_say_is_refused(make):
    with pytest.raises(ValueError):
        make()
