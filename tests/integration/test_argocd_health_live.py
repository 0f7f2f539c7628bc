"""The Argo CD health check on objects as the real API server returns them (defaults applied,
managedFields, server-set generation), through their lifecycle: no status, Ready, a new spec
not yet observed, Stalled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from tests.support.argocd import argocd_health
from tests.support.crd import Objects

pytestmark = pytest.mark.integration

KINDS = {
    "AIProvider": ("aiproviders", {"type": "openai"}, {"enabled": False}),
    "AIGatewayCoderdKey": ("aigatewaycoderdkeys", {}, {"rotation": {"generation": 1}}),
}


def condition(type_: str, status: str, reason: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": f"{type_} {reason}",
        "lastTransitionTime": "2026-11-30T10:00:00Z",
        "observedGeneration": generation,
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_health_through_an_objects_lifecycle(
    kind: str, k8s_api: client.ApiClient, namespace: str
) -> None:
    plural, spec, change = KINDS[kind]
    objects = Objects(k8s_api, namespace, plural, kind, "health")
    live: Callable[[], dict[str, Any]] = objects.get

    created = objects.create(spec)
    assert created["metadata"]["generation"] == 1
    assert argocd_health(live())[0] == "Progressing"  # no status yet

    objects.patch_status(
        {
            "observedGeneration": 1,
            "conditions": [
                condition("Reconciling", "False", "Reconciled", 1),
                condition("Ready", "True", "Ready", 1),
            ],
        }
    )
    assert argocd_health(live()) == ("Healthy", "Ready=True (Ready): Ready Ready")

    objects.patch_spec(change)  # generation 2, status still from 1
    assert live()["metadata"]["generation"] == 2
    status, message = argocd_health(live())
    assert status == "Progressing"
    assert "generation 2" in message

    objects.patch_status(
        {
            "observedGeneration": 2,
            "conditions": [
                condition("Stalled", "True", "NameConflict", 2),
                condition("Reconciling", "False", "Reconciled", 2),
                condition("Ready", "False", "NameConflict", 2),
            ],
        }
    )
    assert argocd_health(live()) == (
        "Degraded",
        "Stalled=True (NameConflict): Stalled NameConflict",
    )
