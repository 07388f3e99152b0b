"""Keys of the Healthchecks-compatible management API ([api] keys_file).

The file holds one key a line: `rw <key>` (read-write) or `ro <key>`
(read-only), or the key's SHA-256 instead of the key itself (`rw
sha256:<64 hex digits>`), so the file need not hold a usable secret. Blank
lines and lines starting with `#` are skipped.

Keys are compared by their SHA-256 digests with `hmac.compare_digest`, and
every key is compared, so neither the time an answer takes nor which key
matched tells a caller anything about the others.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

# Shorter than this is guessable; Healthchecks' own keys have 32 characters.
MIN_KEY_LENGTH = 16
_HASHED = re.compile(r"sha256:([0-9a-f]{64})")
_KEY = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class ApiKey:
    read_write: bool
    # SHA-256 of the key; repr shows neither the key nor this.
    digest: bytes

    def __repr__(self) -> str:
        return f"ApiKey(read_write={self.read_write}, digest=<secret>)"


def parse_keys(text: str) -> tuple[list[ApiKey], list[str]]:
    """The keys of a keys file, and one problem per bad line ("line 3: ...").

    A problem never quotes the key: the line may hold a real secret."""
    keys: list[ApiKey] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, key = line.partition(" ")
        key = key.strip()
        if kind not in ("rw", "ro"):
            problems.append(f'line {number}: expected "rw <key>" or "ro <key>"')
            continue
        hashed = _HASHED.fullmatch(key)
        if hashed is not None:
            digest = bytes.fromhex(hashed[1])
        elif len(key) < MIN_KEY_LENGTH or not _KEY.fullmatch(key):
            problems.append(
                f"line {number}: a key needs at least {MIN_KEY_LENGTH} printable characters"
                " and no spaces (not shown: a secret)"
            )
            continue
        else:
            digest = hash_key(key)
        keys.append(ApiKey(read_write=kind == "rw", digest=digest))
    return keys, problems


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).digest()


def find_key(keys: tuple[ApiKey, ...] | list[ApiKey], given: str) -> ApiKey | None:
    """The key `given` is, or None; compares against every key in constant time."""
    digest = hash_key(given)
    found = None
    for key in keys:
        if hmac.compare_digest(key.digest, digest) and found is None:
            found = key
    return found
