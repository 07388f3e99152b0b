"""Password hashes for [web.users] (the command that prints them: test_cli.py)."""

from __future__ import annotations

import base64
import hashlib

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
