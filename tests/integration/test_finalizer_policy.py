"""The chart's MutatingAdmissionPolicy, enforced by the real API server: the operator's
finalizer is on every AIProvider / AIGatewayCoderdKey created in a watched namespace from
the first byte, never on objects elsewhere, and the policy is skipped where the API is not
served."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.wait import wait_for
from tools.devenv.helm import (
    apply_manifests,
    ensure_helm,
    remove_cluster_scoped,
    render_chart,
)

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"
FINALIZER = "aigateway.dev/finalizer"
GROUP, VERSION = "aigateway.dev", "v1alpha1"
POLICY_KINDS = ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")


def policy_docs(release: str, watch: list[str], **kw: Any) -> list[dict[str, Any]]:
    values = {"database": {"existingSecret": {"name": "db"}}, "watchNamespaces": watch}
    docs = render_chart(CHART, release, "ops", values, include_crds=False, **kw)
    return [d for d in docs if d["kind"] in POLICY_KINDS]


@pytest.fixture
def policy(k8s_api: client.ApiClient, namespace: str) -> Iterator[list[dict[str, Any]]]:
    docs = policy_docs(f"fp-{uuid.uuid4().hex[:6]}", [namespace], helm=ensure_helm())
    apply_manifests(k8s_api, docs)
    yield docs
    remove_cluster_scoped(k8s_api, docs)


#: Both kinds the policy covers: plural and a minimal spec.
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "AIProvider": (
        "aiproviders",
        {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "k", "key": "a"}}]},
    ),
    "AIGatewayCoderdKey": ("aigatewaycoderdkeys", {}),
}


def create(custom: client.CustomObjectsApi, ns: str, name: str, kind: str) -> list[str]:
    plural, spec = KINDS[kind]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "finalizers": ["example.com/other"]},
        "spec": spec,
    }
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)
    return list(obj["metadata"].get("finalizers") or [])


def release(custom: client.CustomObjectsApi, ns: str, name: str, kind: str) -> None:
    """Drop every finalizer so the namespace can go (no operator runs in this test)."""
    try:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, KINDS[kind][0], name, {"metadata": {"finalizers": None}}
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_created_objects_carry_the_finalizer_only_in_watched_namespaces(
    k8s_api: client.ApiClient, namespace: str, policy: list[dict[str, Any]]
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    core = client.CoreV1Api(k8s_api)
    other = f"{namespace}-x"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        # A new policy takes a moment to reach the admission chain: wait on its effect.
        names = iter(f"p{i}" for i in range(1000))

        def mutated() -> bool:
            name = next(names)
            try:
                finalizers = create(custom, namespace, name, "AIProvider")
            except ApiException as exc:
                if exc.status == 503:  # the policy's admission does not know the kind yet
                    return False
                raise
            release(custom, namespace, name, "AIProvider")
            return FINALIZER in finalizers

        wait_for(mutated, 30, "the policy to add the finalizer")
        for kind in KINDS:
            finalizers = create(custom, namespace, "watched", kind)
            assert finalizers == ["example.com/other", FINALIZER], f"{kind}: added, others kept"
            assert create(custom, other, "elsewhere", kind) == ["example.com/other"], kind
    finally:
        for kind in KINDS:
            release(custom, namespace, "watched", kind)
            release(custom, other, "elsewhere", kind)
        core.delete_namespace(other)


def test_cluster_wide_binding_has_no_namespace_selector() -> None:
    docs = policy_docs("aigw", [], helm=ensure_helm())
    binding = next(d for d in docs if d["kind"] == "MutatingAdmissionPolicyBinding")
    assert "matchResources" not in binding["spec"]
    policy = next(d for d in docs if d["kind"] == "MutatingAdmissionPolicy")
    assert policy["spec"]["failurePolicy"] == "Ignore"
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]


def test_skipped_where_the_api_is_not_served_or_turned_off() -> None:
    assert policy_docs("aigw", ["a"], helm=ensure_helm(), api_versions=()) == []
    values = {
        "database": {"existingSecret": {"name": "db"}},
        "finalizerPolicy": {"enabled": False},
    }
    docs = render_chart(CHART, "aigw", "ops", values, include_crds=False, helm=ensure_helm())
    assert not [d for d in docs if d["kind"] in POLICY_KINDS]
