"""Loopback addresses the tests use, and free ports on them."""

from __future__ import annotations

import socket


def free_port(*addresses: str) -> int:
    """A TCP port that is free on every one of `addresses`."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        if all(port_free(address, port) for address in addresses[1:]):
            return port
    raise RuntimeError("no free port")


def port_free(address: str, port: int) -> bool:
    """Whether `port` on `address` can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


TEST_ADDRESSES = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
