"""The background Event poster: in order, never blocking a pass, bounded, best effort."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aigateway_operator import metrics
from aigateway_operator.handlers.events import EventPoster
from aigateway_operator.kube import ObjectRef

pytestmark = pytest.mark.unit

REF = ObjectRef("aigateway.dev/v1alpha1", "AIProvider", "ns", "p", "uid")


class SlowKube:
    def __init__(self, fail: bool = False) -> None:
        self.posted: list[str] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def post_event(self, about: ObjectRef, type_: str, reason: str, message: str) -> bool:
        await self.release.wait()
        if self.fail:
            raise RuntimeError("apiserver down")
        self.posted.append(reason)
        return True


def dropped() -> float:
    return metrics.EVENTS_DROPPED._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_posting_never_waits_and_keeps_order() -> None:
    kube = SlowKube()
    poster = EventPoster(kube)  # type: ignore[arg-type]
    poster.start()
    for reason in ("Created", "Updated", "KeysRotated"):
        poster.post(REF, "Normal", reason, "m")  # returns at once: the API is blocked
    assert poster.pending() == 3
    kube.release.set()
    await poster.stop()
    assert kube.posted == ["Created", "Updated", "KeysRotated"]


async def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    kube = SlowKube()
    poster = EventPoster(kube, size=2)  # type: ignore[arg-type]
    before = dropped()
    for _ in range(3):
        poster.post(REF, "Normal", "Created", "m")
    assert dropped() == before + 1
    assert poster.pending() == 2


async def test_a_failing_api_does_not_stop_the_poster() -> None:
    kube: Any = SlowKube(fail=True)
    poster = EventPoster(kube)
    poster.start()
    before = dropped()
    poster.post(REF, "Warning", "X", "m")
    kube.release.set()
    await asyncio.wait_for(poster._queue.join(), 2)
    assert dropped() == before + 1
    kube.fail = False
    poster.post(REF, "Normal", "Y", "m")
    await asyncio.wait_for(poster._queue.join(), 2)
    assert kube.posted == ["Y"]
    await poster.stop()
