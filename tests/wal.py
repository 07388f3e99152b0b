"""Counting a database's transactions from its WAL file, as another process would."""

from __future__ import annotations

import struct
from pathlib import Path

HEADER = 32
FRAME_HEADER = 24


def commits(db_path: Path) -> int:
    """Transactions committed to the WAL since it last started over.

    Each commit's last frame carries the database size after it; other
    frames carry 0. Frames left from before the WAL started over have the
    old salts and are not counted.
    """
    data = Path(f"{db_path}-wal").read_bytes()
    if len(data) < HEADER:
        return 0
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    count = 0
    for start in range(HEADER, len(data) - FRAME_HEADER + 1, FRAME_HEADER + page_size):
        frame = data[start : start + FRAME_HEADER]
        if frame[8:16] != salts:
            break
        if struct.unpack(">I", frame[4:8])[0] != 0:
            count += 1
    return count
