"""Wait on a condition with a deadline: the only synchronisation tests may use."""

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
    """Poll ``check`` until it returns a truthy value, which is returned; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from last
        time.sleep(interval)  # poll interval, bounded by the deadline above


async def async_wait_for(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline, same shape as wait_for
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """The asyncio twin of :func:`wait_for`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = await check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from last
        await asyncio.sleep(interval)  # poll interval, bounded by the deadline above
