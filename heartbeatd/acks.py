"""Which monitor an ack link acknowledges: its token, looked up in an index.

An incident's ack link holds a random token, minted by the engine with the
incident (escalation.needs_token) and stored in the monitor's state. The
engine tells this index every change of a monitor's state, so a link is
found with one lookup instead of a walk over every monitor's state: at
100,000 monitors a walk would let anyone holding the URL stall the loop.

The index is keyed by the SHA-256 of the token, not the token: a lookup
by the token itself would compare a guess with a real token byte by byte,
in a time that tells how much of it is right; the digest of a guess tells
nothing of a token's bytes. The found state's token is compared again in
constant time, so a stale entry never acknowledges the wrong incident.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from heartbeatd.model import MonitorState


class AckTokens:
    def __init__(self) -> None:
        self._slugs: dict[bytes, str] = {}

    def rebuild(self, states: Mapping[str, MonitorState]) -> None:
        """Index every state that holds a token (start-up)."""
        self._slugs = {_key(s.ack_token): slug for slug, s in states.items() if s.ack_token}

    def update(self, slug: str, old: MonitorState | None, new: MonitorState | None) -> None:
        """`slug`'s state goes from `old` to `new` (None: it has none)."""
        was = old.ack_token if old is not None else ""
        now = new.ack_token if new is not None else ""
        if was == now:
            return
        if was and self._slugs.get(_key(was)) == slug:
            del self._slugs[_key(was)]
        if now:
            self._slugs[_key(now)] = slug

    def slug_for(self, token: str, states: Mapping[str, MonitorState]) -> str | None:
        """The monitor whose state in `states` holds `token`, if any."""
        slug = self._slugs.get(_key(token))
        state = states.get(slug) if slug is not None else None
        if state is None or not state.ack_token:
            return None
        return slug if hmac.compare_digest(state.ack_token.encode(), token.encode()) else None

    def __len__(self) -> int:
        return len(self._slugs)


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
