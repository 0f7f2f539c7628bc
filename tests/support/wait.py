"""Wait on a condition with a deadline: the only synchronisation tests may use.

A polled check answers "yet?" and nothing else: it returns a falsy value for "not yet" and
anything it raises propagates at once. An ``AssertionError`` inside a check is not "not
yet": an invariant that is violated and then recovers would otherwise pass unnoticed. Keep
invariants outside polled checks, or let them fail the wait on their first violation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it returns a truthy value, which is returned; fail at the deadline.

    Whatever ``check`` raises (an ``AssertionError`` included) ends the wait with that error.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # poll interval, bounded by the deadline above


async def async_wait_for(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline, same shape as wait_for
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """The asyncio twin of :func:`wait_for`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)  # poll interval, bounded by the deadline above
