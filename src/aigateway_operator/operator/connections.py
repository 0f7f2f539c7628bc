"""The operator's network connections are closed when :func:`main` returns, not later.

kopf closes its aiohttp session to the API server on stop, but a connection released
mid-stream (every watch, cancelled on stop) is closed gracefully: TLS sends its
``close_notify`` and the socket is closed only once the API server answers. Nobody awaits
that answer. A process that exits does not care; but when :func:`main` runs inside another
process (the in-process tests, an embedding application), the event loop can be closed
first, and those sockets are then left open until the garbage collector finds them
(``ResourceWarning: unclosed transport``, at a random later moment).

:class:`Connections` notes the event loop's open socket transports when the operator
starts and, on the way out, waits (bounded) for every one opened since to finish closing,
then aborts what is left. It reads the loop's transport table (``_transports``, kept by
every selector event loop since Python 3.4); on a loop without one it does nothing.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["CLOSE_TIMEOUT_S", "Connections"]

log = logging.getLogger("aigateway_operator")

#: How long the TLS goodbyes get before the rest are aborted.
CLOSE_TIMEOUT_S = 5.0
#: How often the closing is checked (a condition polled until a deadline).
POLL_S = 0.02


def _open_transports(loop: asyncio.AbstractEventLoop) -> list[asyncio.BaseTransport]:
    """The loop's socket transports whose socket is still open (closing or not: a transport
    that is closing may still wait for its peer or its write buffer)."""
    table = getattr(loop, "_transports", None)
    if table is None:
        return []
    return [t for t in list(table.values()) if _socket_open(t)]


def _socket_open(transport: asyncio.BaseTransport) -> bool:
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.fileno() != -1


class Connections:
    """Socket transports the operator opened on the running loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._before = {id(t) for t in _open_transports(self.loop)}

    def still_open(self) -> list[asyncio.BaseTransport]:
        """The transports opened since this object was made whose socket is still open."""
        return [t for t in _open_transports(self.loop) if id(t) not in self._before]

    async def close(self, grace_s: float = CLOSE_TIMEOUT_S) -> None:
        """Wait for the operator's connections to finish closing; abort the rest."""
        # No event says "this socket is closed": the loop's table is polled until a deadline.
        deadline = self.loop.time() + grace_s
        left = self.still_open()
        while left and self.loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            left = self.still_open()
        for transport in left:
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        if left:
            log.debug("aborted %d connection(s) still closing after %.0f s", len(left), grace_s)
        # An abort closes the socket on the loop's next pass: let it run before returning.
        await asyncio.sleep(0)
