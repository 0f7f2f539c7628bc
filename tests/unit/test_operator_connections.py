"""main() returns with every connection it opened closed (operator/connections.py).

A connection still saying goodbye when the loop ends (kopf's watches close with a TLS
``close_notify`` nobody awaits) stays open until the garbage collector warns about it, in
whatever test runs then. Here a peer that never reads makes a client's ``close()`` wait on
its write buffer, as a peer that never answers ``close_notify`` does: it must be closed when
``Connections.close`` returns, and a connection that existed before the operator started is
left alone.
"""

from __future__ import annotations

import asyncio

import pytest

from aigateway_operator.operator.connections import Connections

pytestmark = pytest.mark.unit


def _socket_closed(transport: asyncio.BaseTransport) -> bool:
    return bool(transport.get_extra_info("socket").fileno() == -1)


async def _connect(port: int) -> asyncio.Transport:
    transport, _ = await asyncio.get_running_loop().create_connection(
        asyncio.Protocol, "127.0.0.1", port
    )
    return transport


async def test_connections_still_closing_or_open_are_closed_and_older_ones_kept() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_reads(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        older = await _connect(port)
        connections = Connections()
        stuck = await _connect(port)
        stuck.write(b"x" * (64 << 20))  # more than the socket buffers hold: the rest waits
        stuck.close()  # closing, but its socket stays open until the buffer drains
        left_open = await _connect(port)
        assert stuck.is_closing()
        assert not _socket_closed(stuck)
        assert {stuck, left_open} <= set(connections.still_open())  # and the server ends

        await connections.close(grace_s=0.2)

        assert _socket_closed(stuck)
        assert _socket_closed(left_open)
        assert connections.still_open() == []
        assert not older.is_closing()
        assert not _socket_closed(older)
        older.close()
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_connections_that_close_in_time_are_not_aborted() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        connections = Connections()
        transport = await _connect(port)
        transport.close()
        await connections.close(grace_s=5)
        assert _socket_closed(transport)
    finally:
        server.close()
        await server.wait_closed()
