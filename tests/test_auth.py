"""Password hashes for [web.users] (the command that prints them: test_cli.py)."""

from __future__ import annotations

import base64
import hashlib
import itertools
from pathlib import Path

import pytest

from heartbeatd import auth
from heartbeatd.auth import HashError, check_user, hash_password, parse_hash, verify_password

# Cheap parameters: the tests check the format, not the cost.
FAST = {"n": 16, "r": 1, "p": 1}


def test_it_verifies_the_password_it_hashed():
    encoded = hash_password("correct horse", **FAST)
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse ", encoded)
    assert not verify_password("", encoded)


def test_it_writes_scrypt_n_r_p_salt_hash():
    salt = bytes(range(16))
    encoded = hash_password("pw", n=16, r=2, p=1, salt=salt)
    scheme, n, r, p, salt_b64, key_b64 = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16", "2", "1")
    assert base64.b64decode(salt_b64 + "==") == salt
    expected = hashlib.scrypt(b"pw", salt=salt, n=16, r=2, p=1, dklen=32)
    assert base64.b64decode(key_b64 + "=") == expected


def test_it_uses_a_fresh_salt_each_time():
    assert hash_password("pw", **FAST) != hash_password("pw", **FAST)


def test_it_hashes_with_strong_defaults():
    n, r, p, salt, key = parse_hash(hash_password("pw"))
    assert (n, r, p) == (2**15, 8, 1)
    assert (len(salt), len(key)) == (16, 32)


def test_it_handles_non_ascii_passwords():
    encoded = hash_password("pässwörd ✓", **FAST)
    assert verify_password("pässwörd ✓", encoded)
    assert not verify_password("passwort ✓", encoded)


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("bcrypt$16$1$1$AAAA$" + "A" * 43, "expected"),
        ("scrypt$16$1$1$AAAA", "expected"),
        ("scrypt$x$1$1$AAAA$" + "A" * 43, "whole numbers"),
        ("scrypt$15$1$1$AAAA$" + "A" * 43, "power of 2"),
        ("scrypt$4194304$1$1$AAAA$" + "A" * 43, "power of 2"),
        ("scrypt$16$0$1$AAAA$" + "A" * 43, "r must be"),
        ("scrypt$16$1$99$AAAA$" + "A" * 43, "r must be"),
        ("scrypt$16$1$1$!!!!$" + "A" * 43, "base64"),
        ("scrypt$16$1$1$AAAA$AAAA", "too short"),
    ],
    ids=[
        "other-scheme",
        "missing-part",
        "n-not-a-number",
        "n-not-power-of-2",
        "n-too-big",
        "r-zero",
        "p-too-big",
        "salt-not-base64",
        "hash-too-short",
    ],
)
def test_it_rejects_malformed_hashes(encoded, message):
    with pytest.raises(HashError, match=message):
        parse_hash(encoded)
    assert not verify_password("anything", encoded)


def test_it_checks_users_by_name_and_password():
    users = {"alice": hash_password("a-pass", **FAST), "bob": hash_password("b-pass", **FAST)}
    assert check_user(users, "alice", "a-pass")
    assert not check_user(users, "alice", "b-pass")
    assert not check_user(users, "carol", "a-pass")


def test_it_spends_a_hash_on_an_unknown_user(monkeypatch):
    seen = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda pw, enc: seen.append(enc) or real(pw, enc))
    assert not check_user({}, "nobody", "pw")
    assert seen == [auth.DECOY_HASH]


def test_the_decoy_hash_is_well_formed():
    assert parse_hash(auth.DECOY_HASH)[:3] == (auth.DEFAULT_N, auth.DEFAULT_R, auth.DEFAULT_P)


# -- the README's table of who may see what, against the real app -------------------

README = Path(__file__).resolve().parent.parent / "README.md"
TOKEN = "t0ken-for-tests"
BADGE_KEY = "b4dge-key"
USER_LINE = f'alice = "{hash_password("alice-pass", **FAST)}"'
SURFACES = {
    "pings": ("GET", "/ping/backup"),
    "`/healthz`": ("GET", "/healthz"),
    "status page": ("GET", "/"),
    "read API": ("GET", "/api/v1/monitors"),
    "`/metrics`": ("GET", "/metrics"),
    "write API": ("POST", "/api/v1/monitors/backup/pause"),
}
LOGINS = {
    "none": {},
    "token": {"Authorization": f"Bearer {TOKEN}"},
    "user": {"Authorization": "Basic " + base64.b64encode(b"alice:alice-pass").decode()},
    "wrong user": {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()},
}
# Which logins each word in the table lets in (2xx); the others get 401, or
# 403 for "off".
LET_IN = {
    "open": {"none", "token", "user", "wrong user"},
    "token": {"token"},
    "user": {"user"},
    "token or user": {"token", "user"},
    "off": set(),
}


def readme_auth_rows() -> list[dict[str, str]]:
    lines = README.read_text().split("<!-- auth-table -->\n", 1)[1].splitlines()
    table = [line for line in itertools.takewhile(lambda x: x.startswith("|"), lines)]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in table[2:]
    ]


ROWS = readme_auth_rows()


def test_the_readme_table_covers_every_combination():
    combos = {(r["`api_token_file`"], r["`[web.users]`"], r["`badge_key`"]) for r in ROWS}
    assert combos == set(itertools.product(("no", "yes"), repeat=3))


KEYS = ("`api_token_file`", "`[web.users]`", "`badge_key`")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: "-".join(r[k] for k in KEYS))
async def test_the_app_answers_as_the_readme_table_says(row, tmp_path, make_client):
    (tmp_path / "token").write_text(TOKEN + "\n")
    server: list[str] = []
    if row["`api_token_file`"] == "yes":
        server.append(f'api_token_file = "{tmp_path / "token"}"')
    if row["`badge_key`"] == "yes":
        server.append(f'badge_key = "{BADGE_KEY}"')
    users = f"[web.users]\n{USER_LINE}\n" if row["`[web.users]`"] == "yes" else ""
    config = "[server]\n" + "\n".join(server) + "\n"
    config += '[storage]\npath = "hb.db"\n[monitors.backup]\nperiod = "1h"\n' + users
    client = await make_client(config)
    for surface, (method, path) in SURFACES.items():
        word = row[surface]
        for login, headers in LOGINS.items():
            response = await client.request(method, path, headers=headers)
            want = "2xx" if login in LET_IN[word] else ("403" if word == "off" else "401")
            got = "2xx" if response.status < 300 else str(response.status)
            assert got == want, f"{surface} as {login}: {response.status}, table says {word}"
    keyed = await client.get(f"/badge/{BADGE_KEY}/backup.svg")
    plain = await client.get("/badge/backup.svg")
    if row["badges"] == "key":
        assert (keyed.status, plain.status) == (200, 404)
    else:
        assert row["badges"] == "open"
        assert plain.status == 200
