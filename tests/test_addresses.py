from __future__ import annotations

import pytest

from heartbeatd.addresses import is_loopback, split_address


@pytest.mark.parametrize(
    ("address", "parts"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:80", ("::1", 80)), ("hb:1", ("hb", 1))],
)
def test_it_splits_listen_addresses(address: str, parts: tuple[str, int]) -> None:
    assert split_address(address) == parts


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("8080", 'expected "host:port" like "127.0.0.1:8080", got "8080"'),
        (":8080", 'expected "host:port" like "127.0.0.1:8080", got ":8080"'),
        ("::1:8080", 'write an IPv6 address in brackets, like "[::1]:8080", got "::1:8080"'),
        ("[::g]:80", 'expected an IPv6 address in brackets, got "[::g]:80"'),
        ("hb:0", 'expected a port from 1 to 65535, got "hb:0"'),
        ("hb:65536", 'expected a port from 1 to 65535, got "hb:65536"'),
        ("hb:²", 'expected a port from 1 to 65535, got "hb:²"'),
    ],
)
def test_it_says_what_is_wrong_with_an_address(address: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_address(address)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.1", False),
        ("hb.example.com", False),
    ],
)
def test_it_tells_a_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
