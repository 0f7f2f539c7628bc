"""The controller loop with a fake API (the real one is exercised by tests/e2e): what is
written, in which order, and which events cost a pass."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from aigateway_operator.handlers.common import FINALIZER, slim
from aigateway_operator.handlers.controller import Body, Controller, Hooks
from aigateway_operator.kube import ObjectRef
from aigateway_operator.reconcile.provider import Event
from tests.support.wait import async_wait_for

pytestmark = pytest.mark.unit


async def wait_until(check: Any, what: str) -> None:
    async def probe() -> bool:
        return bool(check())

    await async_wait_for(probe, 5, what, interval=0.01)


@dataclass
class Result:
    status_patch: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    retry_message: str = ""
    done: bool = True


class FakeKube:
    """Holds one object; every write bumps its resourceVersion, as the API server does."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.calls: list[str] = []
        self.events: list[tuple[str, str]] = []

    def _bump(self) -> Body:
        meta = self.body["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.body)

    async def set_finalizer(
        self,
        plural: str,
        ns: str,
        name: str,
        rv: str,
        finalizers: list[str],
        fin: str,
        present: bool,
    ) -> Body | None:
        self.calls.append(f"finalizer:{'add' if present else 'remove'}")
        assert rv == self.body["metadata"]["resourceVersion"], "guarded by resourceVersion"
        wanted = [f for f in finalizers if f != fin] + ([fin] if present else [])
        self.body["metadata"]["finalizers"] = wanted
        return self._bump()

    async def patch_status(self, plural: str, ns: str, name: str, status: dict[str, Any]) -> Body:
        self.calls.append("status")
        self.body.setdefault("status", {}).update(status)
        return self._bump()

    def post(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        """The EventPoster's side: queued, never awaited by the pass."""
        self.events.append((type_, reason))


def obj(**meta: Any) -> Body:
    return {
        "apiVersion": "aigateway.dev/v1alpha1",
        "kind": "AIProvider",
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u1",
            "resourceVersion": "10",
            "generation": 1,
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kopf.aigateway.dev/last-handled-configuration": "{}"},
            **meta,
        },
        "spec": {"type": "openai"},
    }


@dataclass
class Rig:
    kube: FakeKube
    ctl: Controller[Result]
    passes: list[str]

    async def settle(self) -> None:
        await wait_until(
            lambda: len(self.ctl.queue) == 0 and not self.ctl.busy(), "a drained queue"
        )

    def echo(self) -> None:
        """The watch delivers the object as the API server holds it now."""
        self.ctl.observe("MODIFIED", slim(copy.deepcopy(self.kube.body)))


@pytest.fixture
async def rig() -> Any:
    kube = FakeKube(obj())
    passes: list[str] = []
    outcomes: dict[str, Result] = {}

    async def reconcile(body: Body) -> Result:
        passes.append("reconcile")
        assert FINALIZER in body["metadata"]["finalizers"], "finalizer before any DB write"
        if body.get("status", {}).get("ready"):
            return Result()
        return outcomes.get("reconcile", Result({"ready": True}, [Event("Normal", "Created", "")]))

    async def finalize(body: Body) -> Result:
        passes.append("finalize")
        return outcomes.get("finalize", Result(done=True))

    # The defaults: our API version, finalizer and trigger marker (those of both kinds).
    hooks = Hooks(kind="AIProvider", plural="aiproviders", reconcile=reconcile, finalize=finalize)
    ctl: Controller[Result] = Controller(hooks, kube, events=kube)  # type: ignore[arg-type]
    ctl.outcomes = outcomes  # type: ignore[attr-defined]
    ctl.start(2)
    yield Rig(kube, ctl, passes)
    await ctl.stop()


async def test_a_new_object_costs_two_writes_and_its_echoes_no_pass(rig: Rig) -> None:
    rig.ctl.observe(None, slim(copy.deepcopy(rig.kube.body)))
    await rig.settle()
    assert rig.kube.calls == ["finalizer:add", "status"]
    assert rig.kube.events == [("Normal", "Created")]
    assert rig.passes == ["reconcile"]
    rig.echo()  # our own status write comes back through the watch
    await rig.settle()
    assert rig.passes == ["reconcile"], "an echo of our own write is not a trigger"


async def test_a_spec_edit_or_an_annotation_triggers_a_pass(rig: Rig) -> None:
    rig.ctl.observe(None, slim(copy.deepcopy(rig.kube.body)))
    await rig.settle()
    rig.kube.body["metadata"]["generation"] = 2
    rig.kube._bump()
    rig.echo()
    await rig.settle()
    rig.kube.body["metadata"]["annotations"] = {"aigateway.dev/reconcile": "now"}
    rig.kube._bump()
    rig.echo()
    await rig.settle()
    assert rig.passes == ["reconcile"] * 3
    assert rig.kube.calls == ["finalizer:add", "status"], "passes in sync write nothing"


async def test_an_older_body_never_replaces_a_newer_one(rig: Rig) -> None:
    rig.ctl.observe(None, slim(copy.deepcopy(rig.kube.body)))
    await rig.settle()
    stale = slim(obj(resourceVersion="9"))
    rig.ctl.observe("MODIFIED", stale)
    held = rig.ctl.body("u1")
    assert held is not None
    assert held["metadata"]["resourceVersion"] == "12"


async def test_slim_keeps_what_a_pass_reads_and_drops_managed_fields() -> None:
    body = slim(obj(annotations={"aigateway.dev/force-delete": "true", "other/x": "1"}))
    assert "managedFields" not in body["metadata"]
    assert body["metadata"]["annotations"] == {"aigateway.dev/force-delete": "true"}
    assert body["spec"] == {"type": "openai"}


async def test_deletion_finalizes_then_releases_the_finalizer(rig: Rig) -> None:
    rig.ctl.observe(None, slim(copy.deepcopy(rig.kube.body)))
    await rig.settle()
    rig.kube.body["metadata"]["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    rig.kube._bump()
    rig.echo()
    await rig.settle()
    assert rig.passes == ["reconcile", "finalize"]
    assert rig.kube.calls[-1] == "finalizer:remove"
    assert rig.kube.body["metadata"]["finalizers"] == []
    assert rig.ctl.body("u1") is None, "forgotten once released"


async def test_a_blocked_deletion_keeps_the_finalizer_and_retries(rig: Rig) -> None:
    rig.ctl.observe(None, slim(copy.deepcopy(rig.kube.body)))
    await rig.settle()
    rig.ctl.outcomes["finalize"] = Result(  # type: ignore[attr-defined]
        {"waiting": True}, done=False, retry_after=30, retry_message="database down"
    )
    rig.kube.body["metadata"]["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    rig.kube._bump()
    rig.echo()
    await rig.settle()
    assert rig.kube.body["metadata"]["finalizers"] == [FINALIZER]
    assert rig.kube.calls[-1] == "status"
    assert rig.ctl.queue.scheduled("u1")


async def test_a_failing_pass_is_retried_with_backoff(rig: Rig) -> None:
    rig.ctl.outcomes["reconcile"] = Result(  # type: ignore[attr-defined]
        {"ready": False}, retry_after=0.05, retry_message="database down"
    )
    rig.ctl.observe(None, slim(copy.deepcopy(rig.kube.body)))
    await wait_until(lambda: rig.passes.count("reconcile") >= 3, "three retries")


async def test_an_unknown_object_is_not_poked() -> None:
    kube = FakeKube(obj())
    hooks: Hooks[Result] = Hooks(
        kind="AIProvider",
        plural="aiproviders",
        api_version="v",
        finalizer=FINALIZER,
        reconcile=lambda b: asyncio.sleep(0, Result()),
        finalize=lambda b: asyncio.sleep(0, Result()),
    )
    ctl = Controller(hooks, kube)  # type: ignore[arg-type]
    assert ctl.poke(["nope"]) == 0
    assert len(ctl.queue) == 0
