"""The outbox: delivering what the outbox table holds (DESIGN §5).

- worker.py: `Outbox`, the delivery worker: claims due rows, keeps up to
  CONCURRENCY sends in flight, and waits on events between them.
- outcomes.py: how a send ended, recorded: delivered, a retry with backoff,
  or failed for good (permanent, or give_up_after passed); `DeliveryStats`.
- moves.py: where an alert goes when a reload removed its channel, and
  the log of what moved.

The worker uses the other two; they never import each other. Their logs
all name `heartbeatd.outbox`.
"""

from heartbeatd.outbox.outcomes import DeliveryStats as DeliveryStats
from heartbeatd.outbox.outcomes import backoff as backoff
from heartbeatd.outbox.worker import LEASE_MARGIN as LEASE_MARGIN
from heartbeatd.outbox.worker import Outbox as Outbox
