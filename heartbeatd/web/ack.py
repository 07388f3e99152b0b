"""Acknowledging an incident: `POST /api/v1/monitors/<slug>/ack` (write
API), and the link every down alert carries, `/ack/<token>`.

The link needs no login, so it works from a phone: the incident's random
token is the only guard, compared in constant time (Engine.slug_for_ack_token).
Its GET only shows a confirmation page, because mail scanners and chat
previews fetch every link they see; the page's form POSTs to the same
address, and only that POST acknowledges. The form carries nothing a forger
could not put there without the token: the POST must carry the token in its
form as well as in its path, so a cross-site POST needs the secret it is
meant to prove; and the page's CSP lets its form post only to this site.
"""

from __future__ import annotations

import hmac
import html
import logging
from typing import Any

from aiohttp import web

from heartbeatd.escalation import MAX_BY, MAX_NOTE
from heartbeatd.store import StoreError
from heartbeatd.times import isoformat
from heartbeatd.web.keys import CLOCK, ENGINE

log = logging.getLogger(__package__)

# As the status page's, but the form may post back here (and only here).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The token is in the address: no Referer may carry it elsewhere.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A form body holds a name and a note, not a document.
MAX_FORM = 4096


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def api_ack(request: web.Request) -> web.Response:
    """Body (optional) `{"note": "…", "by": "…"}`; answers the monitor."""
    engine = request.app[ENGINE]
    slug = request.match_info["slug"]
    if engine.monitor(slug) is None:
        return _error(404, "no such monitor")
    data: Any = {}
    if request.can_read_body:
        try:
            data = await request.json()
        except ValueError:
            return _error(400, 'body must be JSON like {"note": "on it", "by": "ana"}')
    if not isinstance(data, dict):
        return _error(400, 'body must be JSON like {"note": "on it", "by": "ana"}')
    note, by = data.get("note", ""), data.get("by", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        return _error(400, f"note must be a string of at most {MAX_NOTE} characters")
    if not isinstance(by, str) or len(by) > MAX_BY:
        return _error(400, f"by must be a string of at most {MAX_BY} characters")
    done = engine.ack(slug, request.app[CLOCK].now(), by, note)
    if done is None:
        return _error(409, "no incident to acknowledge: the monitor's alert state is quiet")
    try:
        await done
    except StoreError:
        return _error(503, "storage unavailable")
    if engine.monitor(slug) is None:
        # A reload removed it while the write waited for the database.
        return _error(404, "no such monitor")
    return web.json_response(engine.view(slug).to_json())


async def page_ack(request: web.Request) -> web.Response:
    """The confirmation page: it shows the incident and a form; no change."""
    engine = request.app[ENGINE]
    slug = engine.slug_for_ack_token(request.match_info["token"])
    if slug is None:
        return _page(404, "Nothing to acknowledge", _GONE)
    view = engine.view(slug)
    name = html.escape(view.name)
    if view.acked_at is not None:
        return _page(200, f"{name}: acknowledged", _acked(view.acked_at, view.acked_by))
    form = (
        f"<p><b>{name}</b> ({html.escape(slug)}) is {html.escape(view.status.value)}."
        " Acknowledging stops its reminders and escalations until the next incident.</p>"
        '<form method="post">'
        f'<input type="hidden" name="token" value="{html.escape(request.match_info["token"])}">'
        f'<p><label>Your name <input name="by" maxlength="{MAX_BY}"></label></p>'
        f'<p><label>Note <input name="note" maxlength="{MAX_NOTE}"></label></p>'
        '<p><button type="submit">Acknowledge</button></p></form>'
    )
    return _page(200, f"Acknowledge {name}?", form)


async def post_ack(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    slug = engine.slug_for_ack_token(request.match_info["token"])
    if slug is None:
        return _page(404, "Nothing to acknowledge", _GONE)
    if (request.content_length or 0) > MAX_FORM:
        return _page(413, "Too long", "<p>The name and note are too long.</p>")
    form = await request.post()
    given = str(form.get("token", "")).encode()
    if not hmac.compare_digest(given, request.match_info["token"].encode()):
        # Only the page's own form carries the token in its body too.
        return _page(403, "Not acknowledged", "<p>Open the link again and use its form.</p>")
    by = str(form.get("by", ""))[:MAX_BY] or "ack link"
    note = str(form.get("note", ""))[:MAX_NOTE]
    done = engine.ack(slug, request.app[CLOCK].now(), by, note)
    if done is None:
        return _page(404, "Nothing to acknowledge", _GONE)
    try:
        await done
    except StoreError:
        return _page(503, "Try again", "<p>The acknowledgement could not be stored.</p>")
    if engine.monitor(slug) is None:
        return _page(404, "Nothing to acknowledge", _GONE)
    view = engine.view(slug)
    assert view.acked_at is not None
    name = html.escape(view.name)
    return _page(200, f"{name}: acknowledged", _acked(view.acked_at, view.acked_by))


_GONE = "<p>This incident is over, or the link is not one heartbeatd sent.</p>"


def _acked(at: Any, by: str) -> str:
    who = f" by {html.escape(by)}" if by else ""
    return f"<p>Acknowledged{who} at {html.escape(isoformat(at) or '')}.</p>"


def _page(status: int, title: str, body: str) -> web.Response:
    text = (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )
