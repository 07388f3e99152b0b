"""HTTP surfaces: thin aiohttp handlers over the engine.

What lives where (each imports only what is below it):

    app.py       make_app: the application's state and routes, and which
                 routes need a login
    ping.py      the ping hot path: /ping/... (URL grammar in pingurl.py),
                 body within a deadline, answer once committed
    api.py       the JSON API under /api/v1
    hcapi.py     the Healthchecks management API under /api/v1|v2|v3/checks/...
    hcfields.py  a Healthchecks create or update body read into a monitor table
    hcauth.py    the Healthchecks API's keys ([api] keys_file) and error answers
    surfaces.py  the status page, /metrics, badges and /healthz
    guards.py    the API token, [web] users, guard_read/guard_write/guard_page
    keys.py      the AppKeys of the application's typed state

ping, api, hcapi and surfaces do not import each other. Their log lines all come
from the logger "heartbeatd.web".
"""

from heartbeatd.web.app import make_app
from heartbeatd.web.ping import BODY_TIMEOUT

__all__ = ["BODY_TIMEOUT", "make_app"]
