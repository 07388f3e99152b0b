"""Password hashes for `[web.users]`: scrypt from the standard library.

A hash is one line, "scrypt$n$r$p$salt$hash" (salt and hash in base64), so the
parameters travel with it: hashes made today still verify after the defaults
are raised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

SCHEME = "scrypt"
# n=2^15, r=8, p=1 uses 32 MiB and ~0.1 s: cheap for one login, costly for a
# brute force of a stolen config file.
DEFAULT_N = 2**15
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
# Bounds on the parameters read from a hash, so a mistyped config cannot make
# one login allocate gigabytes.
MAX_N = 2**20
MAX_R = 32
MAX_P = 16
MAX_MEMORY = 256 * 1024 * 1024
# The hash of a random password nobody kept: checked for an unknown user name,
# so that a wrong name costs as long as a wrong password and names cannot be
# told apart by timing.
DECOY_HASH = "scrypt$32768$8$1$1LN4E48wlgh0bJGaNVyrkA$S38AmNUMnoTRlQ/u4pxGG24cZCh4iIfadEzfiohfoKw"


class HashError(ValueError):
    """A string that is not a hash made by `hash_password`."""


def hash_password(
    password: str,
    *,
    n: int = DEFAULT_N,
    r: int = DEFAULT_R,
    p: int = DEFAULT_P,
    salt: bytes | None = None,
) -> str:
    """The hash line to store in `[web.users]`; a fresh random salt each time."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _derive(password, salt, n, r, p, KEY_BYTES)
    return "$".join((SCHEME, str(n), str(r), str(p), _b64(salt), _b64(key)))


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches `encoded`; False for a wrong password or a bad hash."""
    try:
        n, r, p, salt, expected = parse_hash(encoded)
    except HashError:
        return False
    key = _derive(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(key, expected)


def check_user(users: Mapping[str, str], name: str, password: str) -> bool:
    """True if `name` is in `users` and `password` matches its hash."""
    encoded = users.get(name)
    matches = verify_password(password, encoded if encoded is not None else DECOY_HASH)
    return matches and encoded is not None


def parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, key) of a hash line, or HashError saying what is wrong."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise HashError('expected "scrypt$n$r$p$salt$hash"')
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        raise HashError("n, r and p must be whole numbers") from None
    if n < 2 or n > MAX_N or n & (n - 1):
        raise HashError(f"n must be a power of 2 up to {MAX_N}")
    if not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise HashError(f"r must be 1-{MAX_R} and p 1-{MAX_P}")
    salt, key = _unb64(parts[4]), _unb64(parts[5])
    if not salt or len(key) < 16:
        raise HashError("the salt or the hash is too short")
    return n, r, p, salt, key


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL refuses by default past 32 MiB; scrypt needs 128 * n * r * p bytes.
    maxmem = min(MAX_MEMORY, 128 * n * r * (p + 1) + 1024 * 1024)
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise HashError("the salt and hash must be base64") from None
