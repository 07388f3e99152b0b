"""Listen addresses ("host:port", "[v6]:port"), read one way everywhere.

The config validates `[server] listen` with `split_address`; the daemon binds
and the CLI finds the daemon with the same function, so what the config
accepts is what they use.
"""

from __future__ import annotations

import ipaddress

from heartbeatd.durations import quote

DEFAULT_LISTEN = "127.0.0.1:8080"


def split_address(address: str) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" -> (host, port); ValueError with a message."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f'expected "host:port" like "{DEFAULT_LISTEN}", got {quote(address)}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"expected an IPv6 address in brackets, got {quote(address)}"
            ) from None
    elif ":" in host:
        raise ValueError(
            f'write an IPv6 address in brackets, like "[::1]:8080", got {quote(address)}'
        )
    # isascii: "²" is a digit to isdigit() and not to int(); the length
    # check keeps int() away from a 5,000-digit "port".
    is_number = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
    if not is_number or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port from 1 to 65535, got {quote(address)}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """True for a host only this machine can reach ("localhost", 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
