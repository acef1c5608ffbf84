"""The engine's listening socket.

Created here rather than by uvicorn so that ``--port 0`` can print the port the OS chose. It is
made with ``IPPROTO_TCP`` on purpose: asyncio turns Nagle's algorithm off (``TCP_NODELAY``) on
each accepted connection only when the socket says it is TCP, and a socket made with protocol 0
does not. With Nagle on, uvicorn's two writes per response (headers, then body) met the client's
delayed ACK on every keep-alive connection — the app's and every script's — and each answer
took 40 ms more than its work (``/v1/health``: p50 44 ms → 0.4 ms, docs/performance.md).
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port), not yet listening; raises
    ``OSError`` when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections on Linux; asyncio sets it on each one as well.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
