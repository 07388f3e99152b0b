"""Hostile input, in-process: clients that stall or send junk headers, and
config files that are junk.

The ping server runs on aiohttp's test server with a real Store and a
FakeClock: the body timeout is measured on that clock, so a test moves time
instead of waiting ten seconds. The config loader gets random TOML documents
(built as dicts and written out by a small serialiser below) and random bytes;
whatever it gets, it returns a Config or raises ConfigError.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import math
import string
import sys
import textwrap
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.http_parser import SINGLETON_HEADERS
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from heartbeatd.channels import CHANNEL_TYPES
from heartbeatd.cli.app import ClientErrorFilter
from heartbeatd.config import Config, load_config
from heartbeatd.tables import ConfigError
from heartbeatd.web import BODY_TIMEOUT, make_app
from tests.harness import POLL, PROMPT, healthy, open_stack

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UUID = "9c4a2f4e-1d5b-4c2e-8f3a-0b6d7e8f9a1b"
RID = "0c7b3a0e-3c5e-4b0e-9a51-111111111111"
MAX_BODY = 100

CONFIG = f"""
[server]
# Loopback is a trusted proxy here, so X-Forwarded-For is parsed, not ignored.
trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]

[storage]
path = "hb.db"
max_body = {MAX_BODY}

[channels.log]
type = "log"

[monitors.backup]
period = "1h"
uuid = "{UUID}"
"""


class DaemonLikeServer(TestServer):
    """aiohttp's test server, but like the daemon's runner it lets a handler
    whose client has gone run on (aiohttp's default) instead of cancelling it."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return await super()._make_runner(**kwargs)


@pytest.fixture
async def client(tmp_path, aiohttp_client, clock):
    """The ping app; its server closes connections idle for 0.5 s (the daemon: 75 s)."""
    path = tmp_path / "heartbeatd.toml"
    path.write_text(textwrap.dedent(CONFIG))
    stack = await open_stack(path, clock)
    server = DaemonLikeServer(stack.app())
    # Started here: TestServer(**kwargs) drops runner options, start_server() passes them.
    # aiohttp's keep-alive timer runs on the loop's time, which no FakeClock
    # moves, so it is real and short; tests wait for its effect within PROMPT.
    await server.start_server(keepalive_timeout=0.5)
    client = await aiohttp_client(server)
    client.store = stack.store
    client.engine = stack.engine
    yield client
    await stack.close()


async def stored(client) -> list[dict[str, Any]]:
    return list(reversed(await client.store.pings("backup")))


# -- a raw HTTP/1.1 connection, for clients aiohttp's own client will not imitate --


async def connect(client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(client.server.host, client.server.port)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response."""
    status_line = await reader.readline()
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), status_line
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def is_silent(reader: asyncio.StreamReader, seconds: float = 0.1) -> bool:
    """True if nothing (not even EOF) arrives within `seconds`."""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except asyncio.TimeoutError:
        return True
    return False


async def answer_once_time_passes(reader, clock, step: float) -> tuple[int, dict[str, str], bytes]:
    """Advance the clock by `step` until an answer comes.

    The handler arms its timer some moment after the request was sent; moving
    the clock again until the answer comes makes the test not depend on when.
    """
    for _ in range(int(PROMPT / POLL)):
        clock.advance(seconds=step)
        try:
            return await asyncio.wait_for(read_answer(reader), POLL)
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"no answer within {PROMPT}s of moving the clock")


# -- slow clients ----------------------------------------------------------------------


async def test_a_body_that_never_finishes_gets_408_while_other_pings_go_on(client, clock):
    reader, writer = await connect(client)
    try:
        writer.write(
            b"POST /ping/backup/fail HTTP/1.1\r\nHost: hb\r\nContent-Length: 1000\r\n\r\n"
            + b"x" * 10
        )
        await writer.drain()
        # The stalled body holds up no one: pings on other connections are served.
        for _ in range(3):
            response = await client.get("/ping/backup")
            assert response.status == 200
        assert await is_silent(reader), "answered before the body timeout"

        status, headers, body = await answer_once_time_passes(reader, clock, BODY_TIMEOUT)
        assert status == 408
        assert body == b"request body not received in time"
        assert headers["ping-body-limit"] == str(MAX_BODY)
        assert headers["connection"] == "close"
    finally:
        writer.close()
    # The cut-off ping did not count; the three others did.
    assert [p["kind"] for p in await stored(client)] == ["success"] * 3


async def test_a_slow_body_that_finishes_in_time_counts(client, clock):
    reader, writer = await connect(client)
    try:
        writer.write(b"POST /ping/backup HTTP/1.1\r\nHost: hb\r\nContent-Length: 20\r\n\r\n")
        writer.write(b"first half")
        await writer.drain()
        assert (await client.get("/ping/backup/start")).status == 200
        clock.advance(seconds=BODY_TIMEOUT - 1)
        assert await is_silent(reader)
        writer.write(b" and end")
        writer.write(b"..")
        await writer.drain()
        status, _, body = await asyncio.wait_for(read_answer(reader), PROMPT)
    finally:
        writer.close()
    assert (status, body) == (200, b"OK")
    assert [(p["kind"], p["body"]) for p in await stored(client)] == [
        ("start", ""),
        ("success", "first half and end.."),
    ]


async def test_half_sent_headers_hold_up_no_one_and_are_cut_off(client):
    """aiohttp has no header-read timeout of its own; its keep-alive timer
    (armed when a connection opens, since aiohttp 3.14.4) closes a connection
    that has not sent a whole request by then."""
    reader, writer = await connect(client)
    try:
        writer.write(b"GET /ping/backup HTTP/1.1\r\nHost: hb\r\nUser-Ag")
        await writer.drain()
        assert (await client.get("/ping/backup")).status == 200
        # keepalive_timeout is 0.5 s in this fixture.
        closed = await asyncio.wait_for(reader.read(), PROMPT)
    except asyncio.TimeoutError:
        pytest.fail("aiohttp kept a connection with half its headers open (aiohttp < 3.14.4?)")
    finally:
        writer.close()
    assert closed == b"", "the half request was answered"
    assert len(await stored(client)) == 1


async def test_a_connection_that_sends_nothing_is_closed(client):
    reader, writer = await connect(client)
    try:
        assert await asyncio.wait_for(reader.read(), PROMPT) == b""
    finally:
        writer.close()


async def test_a_compressed_body_that_does_not_decompress_gets_400(client):
    reader, writer = await connect(client)
    try:
        writer.write(
            b"POST /ping/backup/fail HTTP/1.1\r\nHost: hb\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: 9\r\n\r\n"
        )
        await writer.drain()
        # Another ping in between, so the handler is reading when the bytes come.
        assert (await client.get("/ping/backup/start")).status == 200
        writer.write(b"not gzip!")
        await writer.drain()
        status, headers, body = await asyncio.wait_for(read_answer(reader), PROMPT)
    finally:
        writer.close()
    assert (status, body) == (400, b"request body cannot be decoded")
    assert headers["ping-body-limit"] == str(MAX_BODY)
    assert [p["kind"] for p in await stored(client)] == ["start"]


# -- bodies that cannot be decoded, clients that leave, reloads mid-body ---------------------


@pytest.fixture
def daemon_log(caplog):
    """aiohttp's server log with the daemon's filter on it, every level captured."""
    server_log = logging.getLogger("aiohttp.server")
    quieter = ClientErrorFilter()
    server_log.addFilter(quieter)
    caplog.set_level(logging.DEBUG)
    yield caplog
    server_log.removeFilter(quieter)


def server_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in ("aiohttp.server", "heartbeatd.web")]


def assert_at_most_one_debug_line(caplog) -> None:
    records = server_lines(caplog)
    assert [r.levelname for r in records] in ([], ["DEBUG"]), [r.getMessage() for r in records]
    for record in records:
        assert record.exc_info is None
        assert "\n" not in record.getMessage(), record.getMessage()


GZIP = gzip.compress(b"job output " * 20)
UNDECODABLE = {
    "gzip": (b"Content-Encoding: gzip\r\nContent-Length: 9\r\n", b"not gzip!"),
    "deflate": (b"Content-Encoding: deflate\r\nContent-Length: 11\r\n", b"not deflate"),
    "chunked-gzip": (
        b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        b"9\r\nnot gzip!\r\n0\r\n\r\n",
    ),
}


@pytest.mark.parametrize(
    ("path", "status"),
    [("/ping/backup/fail", 400), ("/api/v1/monitors/backup/pause", 403), ("/nowhere", 404)],
    ids=["ping", "api", "unknown-url"],
)
@pytest.mark.parametrize("case", sorted(UNDECODABLE))
async def test_a_body_that_does_not_decode_costs_one_debug_line_at_most(
    client, daemon_log, path, status, case
):
    """aiohttp reads what a handler left of a body after answering; a body
    that fails to decode then raised from there, logged as an unhandled
    error with a traceback, whatever the URL."""
    headers, body = UNDECODABLE[case]
    reader, writer = await connect(client)
    try:
        writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: hb\r\n" + headers + b"\r\n")
        await writer.drain()
        # Another ping in between, so the handler is under way when the bytes come.
        assert (await client.get("/ping/backup/start")).status == 200
        daemon_log.clear()
        writer.write(body)
        await writer.drain()
        answer, _, text = await asyncio.wait_for(read_answer(reader), PROMPT)
        # Closed once all is done (and logged): no request can follow a broken body.
        assert await asyncio.wait_for(reader.read(), PROMPT) == b""
    finally:
        writer.close()
    assert answer == status
    if status == 400:
        assert text == b"request body cannot be decoded"
    assert_at_most_one_debug_line(daemon_log)
    assert [p["kind"] for p in await stored(client)] == ["start"]


async def test_a_client_that_leaves_mid_body_costs_one_debug_line_at_most(client, daemon_log):
    _, writer = await connect(client)
    writer.write(b"POST /ping/backup/fail HTTP/1.1\r\nHost: hb\r\nContent-Length: 100\r\n\r\nhalf")
    await writer.drain()
    assert (await client.get("/ping/backup/start")).status == 200
    daemon_log.clear()
    writer.close()
    # aiohttp notices the closed socket on its own: poll for it within a bound.
    for _ in range(int(PROMPT / POLL)):
        if server_lines(daemon_log):
            break
        await asyncio.sleep(POLL)
    else:
        pytest.fail("the server never noticed the client left")
    assert_at_most_one_debug_line(daemon_log)
    assert [p["kind"] for p in await stored(client)] == ["start"]


async def handlers_done() -> None:
    """Wait until no request handler of aiohttp's runs any more.

    aiohttp ends them as their sockets close, which no clock step hurries: this
    polls within a bound."""
    for _ in range(int(PROMPT / POLL)):
        running = [
            t
            for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "").endswith("_handle_request")
        ]
        if not running:
            return
        await asyncio.sleep(POLL)
    pytest.fail("a request handler still runs")


async def test_a_handler_cancelled_as_its_client_leaves_mid_body_logs_nothing(
    aiohttp_client, client, clock, caplog
):
    """aiohttp's test server (not the daemon) cancels the handler of a client
    that left; the body read it was waiting on must not be left to die as a
    task whose error was never retrieved."""
    cancelling = await aiohttp_client(TestServer(make_app(client.engine, clock, health=healthy)))
    _, writer = await connect(cancelling)
    writer.write(b"POST /ping/backup/fail HTTP/1.1\r\nHost: hb\r\nContent-Length: 100\r\n\r\nhalf")
    await writer.drain()
    assert (await cancelling.get("/ping/backup/start")).status == 200
    caplog.clear()
    writer.close()
    await handlers_done()
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_body_in_an_unknown_content_encoding_is_kept_as_sent(client, daemon_log):
    """Only gzip and deflate (and br, zstd when aiohttp has their decoders) are
    decoded; another coding is not refused: the ping counts, its body is kept as
    received. A wrong header must not make a job look down."""
    response = await client.post(
        "/ping/backup", data=b"output", headers={"Content-Encoding": "utf-8"}
    )
    assert (response.status, await response.text()) == (200, "OK")
    assert [(p["kind"], p["body"]) for p in await stored(client)] == [("success", "output")]
    assert server_lines(daemon_log) == []


async def test_a_truncated_gzip_body_keeps_what_decodes(client):
    response = await client.post(
        "/ping/backup", data=GZIP[: len(GZIP) // 2], headers={"Content-Encoding": "gzip"}
    )
    assert response.status == 200
    # aiohttp does not check that a gzip stream ends: what decoded is kept.
    [ping] = await stored(client)
    assert ping["body"] and ("job output " * 20).startswith(ping["body"])


async def test_a_chunked_body_whose_framing_breaks_gets_408_at_the_body_timeout(
    client, clock, daemon_log
):
    """aiohttp's parser stops at a bad chunk size but never tells the handler
    already reading the body; the body timeout ends the wait."""
    reader, writer = await connect(client)
    try:
        writer.write(
            b"POST /ping/backup/fail HTTP/1.1\r\nHost: hb\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        assert (await client.get("/ping/backup/start")).status == 200
        daemon_log.clear()
        writer.write(b"zz\r\nabc\r\n0\r\n\r\n")
        await writer.drain()
        status, headers, _ = await answer_once_time_passes(reader, clock, BODY_TIMEOUT)
    finally:
        writer.close()
    assert (status, headers["connection"]) == (408, "close")
    assert_at_most_one_debug_line(daemon_log)
    assert [p["kind"] for p in await stored(client)] == ["start"]


RELOADED = """
[storage]
path = "hb.db"
max_body = 100

[monitors.other]
period = "1h"
"""


async def test_a_ping_whose_monitor_a_reload_removes_while_its_body_arrives_gets_404(
    client, clock, tmp_path
):
    reader, writer = await connect(client)
    try:
        writer.write(
            f"POST /ping/{UUID}/fail HTTP/1.1\r\nHost: hb\r\nContent-Length: 20\r\n\r\n".encode()
            + b"first half"
        )
        await writer.drain()
        # By the time another ping is answered, this one has found its monitor.
        assert (await client.get("/ping/backup/start")).status == 200
        path = tmp_path / "reloaded.toml"
        path.write_text(textwrap.dedent(RELOADED))
        client.engine.apply_config(load_config(path), clock.now())
        writer.write(b"second one")
        await writer.drain()
        status, headers, body = await asyncio.wait_for(read_answer(reader), PROMPT)
    finally:
        writer.close()
    assert (status, body) == (404, b"not found")
    assert headers["ping-body-limit"] == str(MAX_BODY)
    assert [p["kind"] for p in await stored(client)] == ["start"]


# -- random headers, paths and queries against the ping URLs ------------------------------

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# Headers aiohttp's client sets itself, or that make a request the client
# cannot send consistently (a Content-Length that disagrees with the body).
CLIENT_OWNED = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
HEADER_VALUE = st.text(
    # Visible ASCII, space and tab, and non-ASCII text (sent as UTF-8 bytes).
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t"),
    max_size=60,
).map(str.strip)
HEADER = st.one_of(
    st.tuples(
        st.text(alphabet=TCHAR, min_size=1, max_size=20).filter(
            lambda n: n.lower() not in CLIENT_OWNED
        ),
        HEADER_VALUE,
    ),
    st.tuples(
        st.just("X-Forwarded-For"),
        st.one_of(
            HEADER_VALUE,
            st.lists(
                st.sampled_from(["203.0.113.9", "10.1.2.3", "::1", "", " ", "999.1.1.1", "x"]),
                max_size=6,
            ).map(", ".join),
        ),
    ),
    st.tuples(st.just("User-Agent"), st.text(alphabet=string.printable[:94], max_size=8000)),
    st.tuples(
        st.just("Content-Encoding"), st.sampled_from(["gzip", "deflate", "identity", "nope"])
    ),
    st.tuples(
        st.just("Content-Type"),
        st.sampled_from(["text/plain", "application/json", "multipart/form-data", "x/y; a=b"]),
    ),
    st.tuples(st.just("Authorization"), HEADER_VALUE),
)
QUERY_PAIR = st.tuples(
    st.sampled_from(["rid", "RID", "", "x"]),
    st.one_of(st.sampled_from(["", RID, RID.upper(), "not-a-uuid"]), st.text(max_size=20)),
)
# Raw query strings: broken percent-escapes, bytes that are not UTF-8.
RAW_QUERY = st.sampled_from(["rid=%ZZ", "rid=%FF%FE", "rid", "rid=&rid=", "=&&=", "rid=%00", "%"])
PING_PATH = st.sampled_from(
    ["/ping/backup", "/ping/backup/start", "/ping/backup/fail", f"/ping/{UUID}/3", "/ping/nope"]
)


def once_if_singleton(header: tuple[str, str]) -> Any:
    # aiohttp's parser refuses a repeated User-Agent, Content-Type, ... (see the
    # test below); other headers may repeat.
    name = header[0].lower()
    return name if name in SINGLETON_HEADERS else header


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=PING_PATH,
    method=st.sampled_from(["GET", "POST", "HEAD"]),
    headers=st.lists(HEADER, max_size=6, unique_by=once_if_singleton),
    query=st.one_of(st.lists(QUERY_PAIR, max_size=4), RAW_QUERY),
    body=st.binary(max_size=300),
)
async def test_no_header_or_query_ever_gets_a_5xx_from_a_ping(
    client, path, method, headers, query, body
):
    url = client.make_url(path)
    # A raw query goes out as written; pairs are encoded by yarl.
    url = URL(f"{url}?{query}", encoded=True) if isinstance(query, str) else url.with_query(query)
    response = await client.session.request(
        method, url, headers=headers, data=body if method == "POST" else None
    )
    assert response.status < 500, await response.text()
    if "Ping-Body-Limit" not in response.headers:
        # Only aiohttp's parser answers before our handler, and only to a
        # compressed body it cannot decompress.
        compressed = any(v in ("gzip", "deflate") for n, v in headers if n == "Content-Encoding")
        assert response.status == 400 and compressed and body and method == "POST"
        return
    assert response.headers["Ping-Body-Limit"] == str(MAX_BODY)


async def test_a_request_aiohttp_cannot_parse_gets_400_from_aiohttp(client):
    """Answered by aiohttp's parser before any handler runs: a plain 400 that
    closes the connection, without the ping headers."""
    reader, writer = await connect(client)
    try:
        writer.write(
            b"GET /ping/backup HTTP/1.1\r\nHost: hb\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n"
        )
        await writer.drain()
        status, headers, _ = await asyncio.wait_for(read_answer(reader), PROMPT)
        rest = await asyncio.wait_for(reader.read(), PROMPT)
    finally:
        writer.close()
    assert status == 400
    assert "ping-body-limit" not in headers
    assert rest == b"", "the connection stayed open"
    assert await stored(client) == []


# -- random TOML into the config loader ------------------------------------------------


def toml_string(text: str) -> str:
    # JSON escapes are TOML escapes; TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (int, datetime, date, time)):
        return value.isoformat() if not isinstance(value, int) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"not a TOML value: {value!r}")


def dump_toml(data: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """A TOML document for `data`: plain keys first, then one [table] per sub-dict."""
    lines = ["[" + ".".join(toml_string(p) for p in path) + "]"] if path else []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    text = "\n".join(lines) + "\n"
    for key, value in tables:
        text += "\n" + dump_toml(value, (*path, key))
    return text


OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
SCALAR = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.datetimes(timezones=st.one_of(st.none(), OFFSETS)),
    st.dates(),
    st.times(),
)
KEY = st.text(max_size=12)
ANY_VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=3),
    max_leaves=8,
)
RANDOM_DOCUMENT = st.dictionaries(KEY, ANY_VALUE, max_size=5)


def usually(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, anything TOML can hold otherwise."""
    return st.one_of(plausible, plausible, plausible, ANY_VALUE)


def table(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    keys = {k: usually(v) for k, v in optional.items()}
    keys["typo"] = ANY_VALUE
    return st.fixed_dictionaries({k: usually(v) for k, v in required.items()}, optional=keys)


# Files next to the config (written by the test): a secret, an empty file, not UTF-8.
FILES = st.sampled_from(["secret.txt", "empty.txt", "binary.bin", "missing.txt", "", ".", "/"])
DURATION = st.one_of(
    st.sampled_from(["30s", "5m", "1h30m", "1d", "1w", "0s", "-5m", "5 min", "", "1h1h", "3650d"]),
    st.sampled_from(["3651d", "99999999999999999999w", " 1H ", "1s1s"]),
    st.integers(-5, 10 * 365 * 86400 + 5),
)
SLUG = st.one_of(
    st.sampled_from(["backup", "web", "start", "log", "123", UUID, "Caps", "a" * 65, ""]),
    st.text(alphabet="abc-_1", min_size=1, max_size=6),
)
CHANNEL_NAME = st.sampled_from(["ops", "hook", "log", "Bad Name", ""])
ADDRESS = st.sampled_from(
    [
        "127.0.0.1:8080",
        "[::1]:8080",
        "::1:8080",
        "0.0.0.0:0",
        "host:99999",
        "nohost",
        ":80",
        "[x]:1",
    ]
)
URLS = st.sampled_from(
    ["https://hb.example.com", "http://h/x?y", "ftp://h", "http://", "", "https://h/$slug/$event"]
)
ZONE = st.sampled_from(["UTC", "Europe/Riga", "Nope/Zone", "../../etc/passwd", "", "a\x00b"])
CRON = st.sampled_from(["0 2 * * *", "*/5 * * * *", "0 0 31 2 *", "61 * * * *", "", "* * *"])
NAMES = st.lists(st.one_of(CHANNEL_NAME, st.text(max_size=5)), max_size=3)

SERVER = table(
    {},
    {
        "listen": st.one_of(ADDRESS, st.lists(ADDRESS, max_size=3)),
        "base_url": URLS,
        "ping_key": st.sampled_from(["k3y", "has space", "", "ü"]),
        "ping_key_file": FILES,
        "api_token": st.text(max_size=10),
        "api_token_file": FILES,
        "badge_key": st.text(max_size=10),
        "badge_key_file": FILES,
        "trusted_proxies": st.lists(st.sampled_from(["10.0.0.0/8", "::1", "10.0.0.0/33", "x"])),
    },
)
STORAGE = table(
    {},
    {
        "path": st.sampled_from(["hb.db", "", "  ", "a\x00b"]),
        "ping_history": st.integers(-1, 10**20),
        "max_body": st.integers(-1, 10**20),
        "synchronous": st.sampled_from(["full", "normal", "extra", "off"]),
    },
)
ALERTS = table({}, {"give_up_after": DURATION, "send_timeout": DURATION})
DEFAULTS = table(
    {},
    {
        "grace": DURATION,
        "timezone": ZONE,
        "channels": NAMES,
        "max_runtime": DURATION,
        "repeat": st.one_of(DURATION, st.just(False)),
        "repeat_limit": st.integers(-1, 5),
    },
)
WEB = table(
    {},
    {
        "users": st.dictionaries(
            st.sampled_from(["admin", "", "a:b"]),
            st.sampled_from(["scrypt$", "scrypt$1$2$3$x$y", "hunter2"]),
            max_size=2,
        )
    },
)
SMTP = table(
    {"host": st.sampled_from(["smtp.example.com", ""])},
    {
        "port": st.integers(-1, 70000),
        "tls": st.booleans(),
        "starttls": st.booleans(),
        "username": st.sampled_from(["alerts", ""]),
        "password": st.text(max_size=8),
        "password_file": FILES,
        "from": st.sampled_from(["heartbeatd <a@example.com>", "not an address", ""]),
        "timeout": DURATION,
    },
)
CHANNEL_OPTIONS = {
    "to": st.one_of(st.sampled_from(["ops@example.com", "nope", ""]), st.lists(st.text())),
    "subject_prefix": st.text(max_size=5),
    "url": URLS,
    "url_file": FILES,
    "method": st.sampled_from(["POST", "GET", "PUT", "TRACE"]),
    "body": st.sampled_from(['{"m": "$slug"}', "$nope", "{", "$$"]),
    "body_down": st.sampled_from(['{"m": "$slug"}', "$nope"]),
    "headers": st.dictionaries(st.sampled_from(["X-A", "Bad Name", ""]), st.text(max_size=5)),
    "headers_file": FILES,
    "server": URLS,
    "topic": st.sampled_from(["ops", "", "has space"]),
    "tags": st.lists(st.text(max_size=5)),
    "priority": st.one_of(st.integers(-1, 7), st.sampled_from(["high", "nope"])),
    "priority_up": st.integers(0, 6),
    "token": st.text(max_size=8),
    "token_file": FILES,
    "bot_token": st.sampled_from(["123:abc", "nope", ""]),
    "bot_token_file": FILES,
    "chat_id": st.one_of(st.integers(), st.sampled_from(["@chan", "", "x y"])),
    "api_url": URLS,
    "command": st.one_of(st.lists(st.text(max_size=5)), st.text(max_size=5)),
    "timeout": DURATION,
    "level": st.sampled_from(["warning", "error", "loud"]),
}
CHANNEL = table(
    {"type": st.one_of(st.sampled_from(sorted(CHANNEL_TYPES)), st.text(max_size=6))},
    CHANNEL_OPTIONS,
)
MONITOR = table(
    {},
    {
        "name": st.text(max_size=8),
        "description": st.text(max_size=8),
        "period": DURATION,
        "schedule": CRON,
        "timezone": ZONE,
        "grace": DURATION,
        "max_runtime": DURATION,
        "channels": NAMES,
        "uuid": st.sampled_from([UUID, UUID.upper(), "nope", ""]),
        "repeat": st.one_of(DURATION, st.just(False)),
        "repeat_limit": st.integers(-1, 5),
    },
)
KNOWN_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "server": usually(SERVER),
        "storage": usually(STORAGE),
        "alerts": usually(ALERTS),
        "defaults": usually(DEFAULTS),
        "web": usually(WEB),
        "smtp": usually(SMTP),
        "channels": usually(st.dictionaries(CHANNEL_NAME, usually(CHANNEL), max_size=3)),
        "monitors": usually(st.dictionaries(SLUG, usually(MONITOR), max_size=3)),
        "typo": ANY_VALUE,
    },
)


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "secret.txt").write_text("s3cret\n")
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00")
    return tmp_path


def load_or_refuse(path) -> Config | ConfigError:
    """The loader's verdict; any other exception fails the test."""
    try:
        return load_config(path)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError without a problem"
        assert all(line.startswith(str(path)) for line in exc.problems), exc.problems
        return exc


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=RANDOM_DOCUMENT)
def test_a_random_toml_document_loads_or_is_refused(config_dir, data):
    text = dump_toml(data)
    # The serialiser itself: what it writes reads back as what it was given.
    assert tomllib.loads(text) == data
    path = config_dir / "heartbeatd.toml"
    path.write_text(text, encoding="utf-8")
    load_or_refuse(path)


@settings(FUZZ, max_examples=200)
@given(data=KNOWN_DOCUMENT)
def test_a_config_with_real_keys_and_random_values_loads_or_is_refused(config_dir, data):
    text = dump_toml(data)
    assert tomllib.loads(text) == data
    path = config_dir / "heartbeatd.toml"
    path.write_text(text, encoding="utf-8")
    load_or_refuse(path)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_random_bytes_as_a_config_file_are_refused_or_load(config_dir, raw):
    path = config_dir / "heartbeatd.toml"
    path.write_bytes(raw)
    load_or_refuse(path)


@pytest.mark.parametrize(
    "document",
    [
        {"monitors": {"backup": {"period": "1h"}}},
        {"channels": {"ops": {"type": "log"}}, "monitors": {"web": {"schedule": "0 2 * * *"}}},
    ],
    ids=["period", "cron"],
)
def test_the_serialiser_writes_configs_the_loader_accepts(config_dir, document):
    # Guards the fuzz tests above against a serialiser that only ever writes junk.
    path = config_dir / "heartbeatd.toml"
    path.write_text(dump_toml(document))
    assert isinstance(load_or_refuse(path), Config)


def test_a_nul_in_the_database_path_is_refused_not_left_for_sqlite(config_dir):
    path = config_dir / "heartbeatd.toml"
    path.write_text(dump_toml({"storage": {"path": "hb\x00.db"}}))
    assert load_or_refuse(path).problems == [
        f"{path}: storage.path: must not contain a NUL character"
    ]


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"server": {"ping_key_file": "a\x00b"}}, "server.ping_key_file"),
        (
            {"channels": {"hook": {"type": "webhook", "url": "http://h", "headers_file": "\x00"}}},
            "channels.hook.headers_file",
        ),
    ],
    ids=["secret-file", "headers-file"],
)
def test_a_nul_in_a_file_key_is_a_config_error(config_dir, document, key):
    path = config_dir / "heartbeatd.toml"
    path.write_text(dump_toml(document))
    [problem] = load_or_refuse(path).problems
    assert problem.startswith(f"{path}: {key}: cannot read ")
