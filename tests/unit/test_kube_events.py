"""The Event recorder: in order, never blocking a pass, bounded, best effort, and the same
Event on the same object bumps a count instead of creating another Event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from aigateway_operator import metrics
from aigateway_operator.kube import EventRecorder, KubeError, ObjectRef

pytestmark = pytest.mark.unit

REF = ObjectRef("aigateway.dev/v1alpha1", "AIProvider", "ns", "p", "uid")
OTHER = ObjectRef("aigateway.dev/v1alpha1", "AIProvider", "ns", "q", "uid-2")


class FakeEvents:
    """The Events API as the recorder uses it: create, and patch by name (404 once expired)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = fail

    async def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.release.wait()
        if self.fail:
            raise KubeError("posting an Event in ns failed: HTTP 503", 503)
        name = f"{body['metadata']['generateName']}{len(self.events)}"
        self.events[name] = {**body, "metadata": {**body["metadata"], "name": name}}
        self.created.append(body["reason"])
        return self.events[name]

    async def patch_event(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        await self.release.wait()
        if name not in self.events:
            return None
        self.events[name].update(patch)
        return self.events[name]


def dropped() -> float:
    return metrics.EVENTS_DROPPED._value.get()  # type: ignore[attr-defined,no-any-return]


def recorder(api: FakeEvents, size: int = 100) -> EventRecorder:
    fixed = datetime(2026, 1, 1, tzinfo=UTC)
    return EventRecorder(api, size=size, clock=lambda: fixed)  # type: ignore[arg-type]


async def test_posting_never_waits_and_keeps_order() -> None:
    api = FakeEvents()
    api.release.clear()
    rec = recorder(api)
    rec.start()
    for reason in ("Created", "Updated", "KeysRotated"):
        rec.post(REF, "Normal", reason, "m")  # returns at once: the API is blocked
    assert rec.pending() == 3
    api.release.set()
    await rec.stop()
    assert api.created == ["Created", "Updated", "KeysRotated"]


async def test_the_same_event_on_the_same_object_bumps_its_count() -> None:
    api = FakeEvents()
    rec = recorder(api)
    rec.start()
    for _ in range(3):
        rec.post(REF, "Warning", "SecretNotFound", "spec.apiKeys[0]: Secret 'k' not found")
    rec.post(OTHER, "Warning", "SecretNotFound", "spec.apiKeys[0]: Secret 'k' not found")
    rec.post(REF, "Warning", "SecretNotFound", "another message")
    await rec.stop()
    counts = sorted(
        (e["involvedObject"]["name"], e["message"], e["count"]) for e in api.events.values()
    )
    assert counts == [
        ("p", "another message", 1),
        ("p", "spec.apiKeys[0]: Secret 'k' not found", 3),
        ("q", "spec.apiKeys[0]: Secret 'k' not found", 1),
    ]


async def test_an_expired_event_is_posted_again() -> None:
    api = FakeEvents()
    rec = recorder(api)
    rec.start()
    rec.post(REF, "Normal", "Created", "m")
    await asyncio.wait_for(rec._queue.join(), 2)
    api.events.clear()  # the API server's event TTL passed
    rec.post(REF, "Normal", "Created", "m")
    await rec.stop()
    assert [e["count"] for e in api.events.values()] == [1]
    assert api.created == ["Created", "Created"]


async def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    rec = recorder(FakeEvents(), size=2)
    before = dropped()
    for _ in range(3):
        rec.post(REF, "Normal", "Created", "m")
    assert dropped() == before + 1
    assert rec.pending() == 2


async def test_a_failing_api_does_not_stop_the_recorder() -> None:
    api = FakeEvents(fail=True)
    rec = recorder(api)
    rec.start()
    before = dropped()
    rec.post(REF, "Warning", "X", "m")
    await asyncio.wait_for(rec._queue.join(), 2)
    assert dropped() == before + 1
    api.fail = False
    rec.post(REF, "Normal", "Y", "m")
    await rec.stop()
    assert api.created == ["Y"]
