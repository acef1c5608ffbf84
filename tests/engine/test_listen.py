"""The engine's listening socket: every accepted connection sends small writes at once."""

import asyncio
import socket

from engine.listen import listening_socket


async def _nodelay_of_accepted(sock: socket.socket) -> int:
    seen: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_client(_reader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_client, sock=sock)
    async with server:
        host, port = sock.getsockname()[:2]
        _reader, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()


def test_accepted_connections_have_nagle_off():
    """uvicorn writes a response's headers and body separately: with Nagle's algorithm on, the
    body waited for the client's delayed ACK and every keep-alive request took 40 ms more."""
    sock = listening_socket("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP  # asyncio only sets TCP_NODELAY on TCP sockets
    assert asyncio.run(_nodelay_of_accepted(sock)) != 0


def test_an_address_in_use_is_an_os_error_and_leaks_no_socket():
    first = listening_socket("127.0.0.1", 0)
    first.listen()
    port = first.getsockname()[1]
    try:
        try:
            listening_socket("127.0.0.1", port).listen()
        except OSError:
            pass
        else:  # SO_REUSEADDR lets some systems bind twice; listen() then fails
            raise AssertionError("a second socket listened on a port in use")
    finally:
        first.close()
