"""One AIProvider pass reads its object once (``controllers/aiprovider/inputs.py``): from
kopf's daemon through the runner, the kind's controller and the pass to the status patch,
the identity is built once, the spec and the status are parsed once, and the snapshot the
pass works on carries none of ``metadata.managedFields``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from aigateway_operator.api.aiprovider import AIProviderSpec, AIProviderStatus
from aigateway_operator.api.identity import AIPROVIDER, FINALIZER
from aigateway_operator.config import Settings
from aigateway_operator.controllers.aiprovider.controller import AIProviderController
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import OwnerRecord
from tests.support.fakes import Clock, FakeProviderStore, FakeSecrets

pytestmark = pytest.mark.unit

KEY = "sk-test-AAAAAAAAAAAAAAAAAAAA-0001"


@dataclass
class Kube(FakeSecrets):
    """The Secret API fake plus the status patch a pass ends with."""

    patched: list[dict[str, Any]] = field(default_factory=list)

    async def patch_status(
        self, plural: str, ns: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.patched.append(status)
        return {"metadata": {"resourceVersion": "11"}, "status": status}


class Store(FakeProviderStore):
    async def owner_records(self, instance: str) -> list[OwnerRecord]:
        return []  # the collector's sweep, which a pass may start, finds nothing


def counted(
    monkeypatch: pytest.MonkeyPatch, cls: type[Any], name: str, seen: Callable[[Any], bool]
) -> list[object]:
    """Count the calls of classmethod ``cls.name`` made for ``cls`` itself (``seen``)."""
    calls: list[object] = []
    original = getattr(cls, name).__func__

    def wrapper(owner: type[Any], *args: Any, **kwargs: Any) -> Any:
        if seen(owner):
            calls.append(args[:1])
        return original(owner, *args, **kwargs)

    monkeypatch.setattr(cls, name, classmethod(wrapper))
    return calls


def body() -> dict[str, Any]:
    return {
        "apiVersion": AIPROVIDER.api_version,
        "kind": AIPROVIDER.kind,
        "metadata": {
            "name": "openai",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 2,
            "resourceVersion": "10",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": [FINALIZER],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "type": "openai",
            "apiKeys": [{"secretKeyRef": {"name": "llm", "key": "a"}}],
        },
        # A status an earlier pass wrote: the pass starts from it.
        "status": {"observedGeneration": 1, "keyCount": 1, "conditions": []},
    }


def controller_on_fakes() -> tuple[AIProviderController, Kube]:
    clock = Clock()
    kube = Kube()
    kube.put("ns", "llm", {"a": KEY})
    settings = Settings(database_url="postgresql://u:p@localhost/coder")  # type: ignore[call-arg]
    wiring = Wiring(
        settings=settings,
        store=Store(clock),  # type: ignore[arg-type]
        kube=kube,  # type: ignore[arg-type]
        events=None,
        fingerprint_key=b"fingerprint-key",
        clock=clock,
    )
    return AIProviderController(wiring, asyncio.Semaphore(2)), kube


async def test_a_pass_builds_the_identity_once_and_parses_spec_and_status_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, kube = controller_on_fakes()
    idents = counted(monkeypatch, ObjectIdentity, "from_body", lambda c: c is ObjectIdentity)
    statuses = counted(
        monkeypatch, AIProviderStatus, "model_validate", lambda c: c is AIProviderStatus
    )
    specs = counted(monkeypatch, AIProviderSpec, "model_validate", lambda c: c is AIProviderSpec)
    seen: list[dict[str, Any]] = []
    reconcile = controller.reconcile

    async def spy(snapshot: dict[str, Any], ident: ObjectIdentity, record: Any) -> Any:
        seen.append(snapshot)
        return await reconcile(snapshot, ident, record)

    monkeypatch.setattr(controller, "reconcile", spy)
    asked = 0

    def stopped() -> bool:  # one pass, then kopf stops the daemon
        nonlocal asked
        asked += 1
        return asked > 1

    await asyncio.wait_for(controller.runner.serve(body(), stopped), 10)
    await controller.stop()

    # The pass ran to its end: it wrote the row and patched the status.
    (patch,) = kube.patched
    assert patch["observedGeneration"] == 2
    assert patch["providerName"] == "openai"
    assert len(idents) == 1, idents
    assert len(specs) == 1, specs
    assert len(statuses) == 1, statuses
    (snapshot,) = seen
    assert "managedFields" not in snapshot["metadata"]
    assert snapshot["metadata"]["uid"] == "u-1"


async def test_a_deletion_builds_the_identity_once(monkeypatch: pytest.MonkeyPatch) -> None:
    controller, _ = controller_on_fakes()
    idents = counted(monkeypatch, ObjectIdentity, "from_body", lambda c: c is ObjectIdentity)
    deleting = body()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    outcome = await controller.runner.release(deleting)  # kopf's on.delete
    await controller.stop()
    assert outcome.done
    assert len(idents) == 1, idents
