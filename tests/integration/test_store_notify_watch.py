"""``Store.watch_changes`` on a real Postgres: one report per burst of
``ai_providers_changed``, for every burst (not just the first), and none for silence."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from aigateway_operator.store import Store

pytestmark = pytest.mark.integration


async def test_every_burst_is_reported_once(store: Store, store_dsn: str) -> None:
    reports: list[str] = []
    seen = asyncio.Event()

    async def watch() -> None:
        async for what in store.watch_changes(debounce_s=0.2):
            reports.append(what)
            seen.set()

    task = asyncio.create_task(watch())
    try:
        async with await psycopg.AsyncConnection.connect(store_dsn, autocommit=True) as conn:
            # The LISTEN is in place once a notify sent now is reported (retried: the watch
            # connects in the background).
            async def listening() -> None:
                while not seen.is_set():
                    await conn.execute("SELECT pg_notify('ai_providers_changed', '')")
                    try:
                        await asyncio.wait_for(seen.wait(), 1)
                    except TimeoutError:
                        continue

            await asyncio.wait_for(listening(), 15)
            await asyncio.wait_for(_quiet(reports), 5)
            base = len(reports)
            for burst in range(3):
                seen.clear()
                for _ in range(5):  # a burst: five notifies in quick succession
                    await conn.execute("SELECT pg_notify('ai_providers_changed', 'x')")
                await asyncio.wait_for(seen.wait(), 10)
                await asyncio.wait_for(_quiet(reports), 5)
                assert len(reports) == base + burst + 1, f"burst {burst} reported once"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(reports) == {"notify"}


async def _quiet(reports: list[Any], quiet_s: float = 0.6) -> None:
    """Wait until no new report came for ``quiet_s`` (three debounce windows)."""
    n = -1
    while n != len(reports):
        n = len(reports)
        await asyncio.sleep(quiet_s)  # the quiet window being measured, not synchronisation
