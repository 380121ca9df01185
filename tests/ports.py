"""A free loopback port for a server a test starts: free for TCP and UDP alike, since the DNS filter takes
both (a port free for UDP alone can be held on TCP by another test's connection, and the server then
fails to start)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP at the time of asking."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free loopback port")
