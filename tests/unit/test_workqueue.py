"""The work queue's contract: dedup, one pass per key at a time, delayed adds, backoff."""

from __future__ import annotations

import asyncio

import pytest

from aigateway_operator.reconcile.workqueue import WorkQueue

pytestmark = pytest.mark.unit


async def test_a_key_added_twice_is_queued_once() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 0


async def test_a_key_added_while_in_flight_runs_again_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # a trigger during the pass
    assert len(q) == 0, "never handed to a second worker while in flight"
    assert q.busy() == {"a"}
    q.done("a")
    assert q.busy() == frozenset()
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_done_without_new_trigger_does_not_requeue() -> None:
    q = WorkQueue()
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0


async def test_waiting_workers_are_woken_by_add() -> None:
    q = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(2)]
    q.add("a")
    q.add("b")
    got = await asyncio.wait_for(asyncio.gather(*getters), 1)
    assert sorted(got) == ["a", "b"]


async def test_add_after_fires_later_and_the_earliest_schedule_wins() -> None:
    q = WorkQueue()
    q.add_after("a", 30)
    q.add_after("a", 0.01)  # sooner: replaces
    q.add_after("a", 60)  # later: ignored
    assert q.scheduled("a")
    assert await asyncio.wait_for(q.get(), 2) == "a"
    assert not q.scheduled("a")


async def test_add_now_cancels_a_pending_schedule() -> None:
    q = WorkQueue()
    q.add_after("a", 30)
    q.add("a")
    assert not q.scheduled("a")
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_forget_drops_the_schedule_and_the_backoff() -> None:
    q = WorkQueue()
    q.add_after("a", 30)
    assert q.backoff("a", 1) == 1
    assert q.backoff("a", 1) == 2
    q.forget("a")
    assert not q.scheduled("a")
    assert q.backoff("a", 1) == 1


async def test_backoff_doubles_caps_and_resets_on_success() -> None:
    q = WorkQueue()
    delays = [q.backoff("a", 10, cap=100) for _ in range(6)]
    assert delays == [10, 20, 40, 80, 100, 100]
    q.succeeded("a")
    assert q.backoff("a", 10, cap=100) == 10
