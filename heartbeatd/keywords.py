"""What a ping means by its body and method, as Healthchecks' filtering rules say.

A plain ping (no /start, /fail or exit status in its URL) of a monitor with
keyword lists is classified by its body: a failure keyword makes it a
failure, else a success keyword a success, else a start keyword a start;
matching is by case-sensitive substring. A body matching none is ignored, or
with `keywords_default = "fail"` a failure. With `methods = "post"` a ping by
any other method is ignored, whatever its URL says: link-preview bots and
scanners GET every URL pasted into a chat.

An ignored ping is recorded with the kind `ignored` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from heartbeatd.model import Ping, PingKind


@dataclass(frozen=True, slots=True)
class PingFilter:
    failure: tuple[str, ...] = ()
    success: tuple[str, ...] = ()
    start: tuple[str, ...] = ()
    # keywords_default = "fail": a body that matches no keyword is a failure.
    default_fail: bool = False
    # methods = "post": only POST pings count.
    post_only: bool = False

    @property
    def has_keywords(self) -> bool:
        # As in Healthchecks: with no keyword lists the rules are off, and
        # every body means what its URL says.
        return bool(self.failure or self.success or self.start)


def classify(ping: Ping, rules: PingFilter | None) -> Ping:
    """The ping as the rules read it: the same ping, or one of another kind."""
    if rules is None:
        return ping
    if rules.post_only and ping.method.upper() != "POST":
        return replace(ping, kind=PingKind.IGNORED)
    # Only a plain ping is read by its body: an explicit /fail, /start or exit
    # status is what the job itself said.
    if not rules.has_keywords or ping.kind is not PingKind.SUCCESS or ping.exit_status is not None:
        return ping
    return replace(ping, kind=kind_of_body(ping.body, rules))


def kind_of_body(body: str, rules: PingFilter) -> PingKind:
    if _contains_any(body, rules.failure):
        return PingKind.FAIL
    if _contains_any(body, rules.success):
        return PingKind.SUCCESS
    if _contains_any(body, rules.start):
        return PingKind.START
    return PingKind.FAIL if rules.default_fail else PingKind.IGNORED


def _contains_any(body: str, words: tuple[str, ...]) -> bool:
    return any(word in body for word in words)
