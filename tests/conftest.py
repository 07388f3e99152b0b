from __future__ import annotations

from datetime import datetime, timezone

import pytest

from heartbeatd.clock import FakeClock

# A fixed "now" for tests: a Wednesday, away from any DST change.
NOW = datetime(2026, 1, 14, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)
