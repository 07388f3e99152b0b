"""The job's output: copied through to where it should be shown, and its tail kept."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import IO, Any

READ_SIZE = 65536
# Reads per readiness callback: a job that prints without pause must not
# starve the loop (signal forwarding runs on it too).
READS_PER_WAKEUP = 16

Output = IO[Any] | int


class OutputTail:
    """The last `limit` bytes of the job's output, in bounded memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        if self.limit <= 0:
            return
        self._buf += chunk[-self.limit :]
        excess = len(self._buf) - self.limit
        if excess > 0:
            # Deleting from the front of a bytearray is cheap (no copy of the rest).
            del self._buf[:excess]

    def value(self) -> bytes:
        return bytes(self._buf)


class Sink:
    """Where copied output goes: a file descriptor or a binary (or text) file object."""

    def __init__(
        self, target: Output | None, on_error: Callable[[OSError], None] | None = None
    ) -> None:
        # None: show nothing (--quiet, --silent).
        if target is not None and not isinstance(target, int):
            target = getattr(target, "buffer", target)
        self._target = target
        self._on_error = on_error
        self._broken = False

    def write(self, data: bytes) -> None:
        if self._broken or self._target is None:
            return
        try:
            if isinstance(self._target, int):
                view = memoryview(data)
                while view:
                    view = view[os.write(self._target, view) :]
            else:
                self._target.write(data)
                self._target.flush()
        except OSError as exc:
            # A closed stdout (`| head`) must not kill the job or lose its tail:
            # stop copying to it and keep capturing.
            self._broken = True
            if self._on_error is not None:
                self._on_error(exc)


class Pump:
    """Copies one of the job's output pipes to a sink and into the tail."""

    def __init__(self, fd: int, sink: Sink, tail: OutputTail) -> None:
        self._fd = fd
        self._sink = sink
        self._tail = tail
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self.drain, READS_PER_WAKEUP)

    def drain(self, max_reads: int) -> None:
        for _ in range(max_reads):
            if self.done.done():
                return
            try:
                chunk = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return
            if not chunk:
                self.close()
                return
            self._sink.write(chunk)
            self._tail.feed(chunk)

    def close(self) -> None:
        if not self.done.done():
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self.done.set_result(None)
