"""What the daemon asks of its process before it serves: more open files,
memory handed back to the system, and its listening sockets."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import resource
import socket

from heartbeatd.addresses import split_address

# The daemon's logger: these lines are the daemon's start-up and read as such.
log = logging.getLogger("heartbeatd.daemon")

# Cron jobs fire on the minute, all at once: a short listen backlog would
# drop their connection attempts for a second.
LISTEN_BACKLOG = 1024

# glibc's mallopt() parameter, and the size from which a block gets a mapping
# of its own, returned to the system as soon as it is freed.
M_MMAP_THRESHOLD = -3
BIG_BLOCK = 1024 * 1024


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one: every connection is a
    file descriptor, and the usual soft limit (1024) is a few idle clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            # E.g. a seccomp filter that refuses setrlimit (systemd's @resources).
            log.warning("open files limit not raised limit=%d hard=%d error=%s", soft, hard, exc)
            return
    log.debug("open files limit=%d", resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def return_big_blocks() -> None:
    """Map every block of 1 MiB or more on its own (glibc only).

    A ping body of up to 10 MiB passes through a few such blocks (the read
    buffer, its text, SQLite's record) and is freed once stored. By default
    glibc raises its threshold after the first one is freed, so later bodies
    come from the heap and stay resident: tens of MB kept for nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, BIG_BLOCK)


def release_memory(*, collect: bool = True) -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc only).

    Without malloc_trim, memory freed after a big config load stays in the
    process and RSS only ever ratchets up across reloads. What is left is the
    config and the states, long-lived: frozen, so the collector stops walking
    a million objects again and again.

    Start-up passes collect=False: it makes no garbage cycles (its garbage is
    freed as it goes; tests/test_startup_scale.py holds it to that), so a
    collection would walk a million objects to find a handful (0.2 s at
    100,000 monitors).
    """
    if collect:
        gc.collect()
    gc.freeze()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


async def bind_all(listen: tuple[str, ...]) -> list[socket.socket]:
    """Listening sockets for every [server] listen address, all or none.

    An error reads as aiohttp's own did: "error while attempting to bind on
    address ('127.0.0.1', 8080): address already in use".
    """
    loop = asyncio.get_running_loop()
    sockets: list[socket.socket] = []
    try:
        for address in listen:
            host, port = split_address(address)
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            # One socket per distinct address ("localhost" may give ::1 and 127.0.0.1).
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    # Else [::]:8080 also takes 0.0.0.0:8080 from another listen line.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(addr)
                except OSError as exc:
                    reason = (exc.strerror or str(exc)).lower()
                    message = f"error while attempting to bind on address {addr!r}: {reason}"
                    raise OSError(exc.errno, message) from None
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
