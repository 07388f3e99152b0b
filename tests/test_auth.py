"""Password hashes for [web.users] and `heartbeatd hash-password`."""

from __future__ import annotations

import base64
import hashlib

import pytest
from click.testing import CliRunner

from heartbeatd import auth, cli
from heartbeatd.auth import HashError, check_user, hash_password, parse_hash, verify_password
from heartbeatd.config import parse_config

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


# -- heartbeatd hash-password -----------------------------------------------------


def test_it_reads_the_password_from_stdin_when_not_a_terminal():
    result = CliRunner().invoke(cli.main, ["hash-password"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("scrypt$")
    assert verify_password("s3cret", line)


def test_it_prints_a_line_to_paste_under_web_users(tmp_path):
    result = CliRunner().invoke(cli.main, ["hash-password", "admin"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith('admin = "scrypt$')
    # What it prints is a valid config as it is.
    config = parse_config({"web": {"users": {"admin": line.split('"')[1]}}}, tmp_path / "hb.toml")
    assert verify_password("s3cret", config.web.users["admin"])


def test_it_quotes_a_user_name_that_is_not_a_bare_key():
    result = CliRunner().invoke(cli.main, ["hash-password", "ops team"], input="pw\n")
    assert result.output.startswith('"ops team" = "scrypt$')


def test_it_asks_twice_without_echo_on_a_terminal(monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    result = CliRunner().invoke(cli.main, ["hash-password"], input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert "s3cret" not in result.output
    assert verify_password("s3cret", result.output.strip().splitlines()[-1])


def test_it_asks_again_when_the_two_entries_differ(monkeypatch):
    monkeypatch.setattr(cli, "_stdin_is_tty", lambda: True)
    result = CliRunner().invoke(cli.main, ["hash-password"], input="one\ntwo\nthree\nthree\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert verify_password("three", result.output.strip().splitlines()[-1])


def test_it_refuses_an_empty_password():
    result = CliRunner().invoke(cli.main, ["hash-password"], input="\n")
    assert result.exit_code == 2
    assert "no password given" in result.output


def test_it_refuses_a_user_name_with_a_colon():
    result = CliRunner().invoke(cli.main, ["hash-password", "a:b"], input="pw\n")
    assert result.exit_code == 2
    assert "must not be empty or contain" in result.output
