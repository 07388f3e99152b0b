"""SQLite storage: monitor states, ping and flip history, and the alert outbox.

Everyone outside this package uses `Store` (and the values it hands out);
the modules behind it, from the bottom up:

- `errors`: `StoreError`, the one error the store raises.
- `schema`: the tables and their migrations (`PRAGMA user_version`), and
  opening the database: WAL read back, pragmas, the read-only `Reader`. A new
  column or index is a new entry in `MIGRATIONS`.
- `writer`: group commit. One task batches every queued job into one
  transaction on one thread; savepoints, `after` chains, `flush`. It knows
  nothing about monitors: what a monitor change writes comes from the facade.
- `history`: states, pings, flips and meta, with ping trims and flip prunes
  (`PingRecord`).
- `outbox`: alert rows: claim, mark with the claim, next due, release,
  move to other channels, prune finished ones (`OutboxItem`, `Move`).
- `facade`: `Store`, which turns each call into a writer job or a read made
  of history's and outbox's SQL, and writes monitor changes.
- `provisioned`: monitors created at run time (the api_monitors table),
  and the ping-body and flip-range reads of the Healthchecks API.
- `verify`: beside the rest, not behind `Store`: the read-only checks of
  `heartbeatd verify-db` on a file no daemon may have opened (`verify`).

history and outbox never import each other, and neither knows about the
writer; an import-linter contract keeps this order.
"""

from heartbeatd.store.errors import StoreError
from heartbeatd.store.facade import PRUNE_BATCH, Store
from heartbeatd.store.history import PingRecord
from heartbeatd.store.outbox import Move, OutboxItem
from heartbeatd.store.provisioned import Definition
from heartbeatd.store.schema import BUSY_TIMEOUT_MS, MIGRATIONS, SYNCHRONOUS_MODES
from heartbeatd.store.writer import MAX_BATCH

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MAX_BATCH",
    "MIGRATIONS",
    "PRUNE_BATCH",
    "SYNCHRONOUS_MODES",
    "Definition",
    "Move",
    "OutboxItem",
    "PingRecord",
    "Store",
    "StoreError",
]
