"""The chart as Argo CD deploys it, on the node: rendered offline, applied, pruned.

Argo CD never runs ``helm install``: it renders with ``helm template --include-crds
--api-versions <what the cluster serves>`` and applies the objects itself (wave by wave, CRDs
first), then prunes what left the render (tests/support/gitops.py models both, after Argo
CD's rules). On a fresh cluster kopf.dev is not served yet when the first render happens; the
peering object must be in it all the same, or kopf's mandatory peering keeps every replica
paused while the pods report Ready. And an object bundled through ``providers:`` that is
dropped from values must survive the prune, with its row in Coder.

The test shares the session's node environment (and the image on it); the chart's CRDs are
removed before and after (tests/support/gitops.py, ``remove_chart_crds``), so it sees a fresh
cluster whatever ran before and leaves one for whatever runs next.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.support.gitops import (
    argo_api_versions,
    argo_sync,
    keep_violations,
    remove_chart_crds,
    sync_options,
)
from tests.support.node import active_pods, ready_pods
from tests.support.operator import ALLOW_ALL, condition
from tests.support.release import operator_namespace
from tests.support.wait import wait_for
from tools.devenv.chart import CHART, operator_values
from tools.devenv.env import DevEnv
from tools.devenv.helm import remove_cluster_scoped, render_chart
from tools.devenv.images import BuiltImage

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GROUP, VERSION = "aigateway.dev", "v1alpha1"
APP = "argo"  # the Application's name = the release name Argo CD renders with
#: The chart's default peering lifetime.
LIFETIME_S = 20
READINESS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 2,
    "timeoutSeconds": 2,
    "failureThreshold": 1,
}
KEY = "sk-argo-aaaa-0123456789abcdefghijklmnop"
#: An object with nothing that keeps it: the prune must delete it (the pruning works).
MARKER = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "argo-prunable", "namespace": "{{ .Release.Namespace }}"},
}


def openai(display: str) -> dict[str, Any]:
    return {
        "type": "openai",
        "displayName": display,
        "apiKeys": [{"secretKeyRef": {"name": "llm-keys", "key": "a"}}],
    }


@pytest.fixture
def fresh_node(node: DevEnv, node_api: client.ApiClient) -> Iterator[DevEnv]:
    """The session's node, without the chart's CRDs (before and after)."""
    remove_chart_crds(node_api)
    try:
        yield node
    finally:
        remove_chart_crds(node_api)


def test_argo_style_sync_activates_one_replica_and_prune_keeps_bundled_providers(
    fresh_node: DevEnv, node_api: client.ApiClient, operator_image: BuiltImage
) -> None:
    env, api = fresh_node, node_api
    assert env.postgres is not None
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    # What helm install would find (tests/support/release.py); Argo CD then applies the chart.
    prepared = operator_namespace(env, api, prefix="argo")
    ns, dsn = prepared.namespace, prepared.database_url
    core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="llm-keys", annotations=ALLOW_ALL),
            string_data={"a": KEY},
        ),
    )

    # What Argo CD's first sync renders with: the fresh cluster's API versions.
    # (Discovery drops a deleted CRD's group a moment after the CRD itself is gone.)
    api_versions = wait_for(
        lambda: (
            (v := argo_api_versions(api)) and not any(x.startswith("kopf.dev/") for x in v) and v
        ),
        30,
        "discovery without kopf.dev",
    )
    assert "apps/v1/Deployment" in api_versions  # kinds listed, as Argo CD lists them

    def render(**values: Any) -> list[dict[str, Any]]:
        return render_chart(
            CHART, APP, ns,
            operator_values(env, operator_image, ns, readinessProbe=READINESS, **values),
            api_versions=api_versions,
        )  # fmt: skip

    bundled = {
        "providers": [{"name": "bundled", "spec": openai("bundled")}],
        "gatewayKeys": [{"name": "bundled-gw", "spec": {}}],
    }
    first = render(**bundled, extraObjects=[MARKER])
    assert [d["kind"] for d in first if d["kind"].endswith("KopfPeering")] == ["KopfPeering"]
    kept_kinds = ("AIProvider", "AIGatewayCoderdKey")
    ours = [
        d
        for d in first
        if d["kind"] in kept_kinds
        or (d["kind"] == "CustomResourceDefinition" and d["spec"]["group"] == GROUP)
    ]
    assert len(ours) == 4
    assert keep_violations(ours) == []
    assert "Prune=false" not in sync_options(next(d for d in first if d["kind"] == "ConfigMap"))

    try:
        argo_sync(api, first, app=APP)
        # Both pods Ready (a paused replica is Ready too), then exactly one active replica
        # within the peering lifetime.
        wait_for(lambda: len(ready_pods(api, ns, APP)) == 2, 300, "two Ready pods")
        ready_at = time.monotonic()
        wait_for(
            lambda: len(active_pods(api, ns, APP)) == 1,
            LIFETIME_S,
            "exactly one active replica within the peering lifetime",
            interval=0.2,
        )
        print(f"\none replica active {time.monotonic() - ready_at:.1f}s after both were Ready")

        def synced(plural: str, name: str) -> bool:
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name)
            c = condition(obj, "Ready")
            return bool(c and c["status"] == "True")

        wait_for(lambda: synced("aiproviders", "bundled"), 120, "the bundled provider Ready")
        wait_for(lambda: synced("aigatewaycoderdkeys", "bundled-gw"), 120, "the key Ready")

        def rows() -> list[tuple[Any, ...]]:
            with psycopg.connect(dsn) as conn:
                return conn.execute(
                    "SELECT name, deleted FROM ai_providers ORDER BY name"
                ).fetchall()

        assert rows() == [("bundled", False)]

        # The provider, the key and the marker leave values; the next sync prunes.
        second = render()
        result = argo_sync(api, second, app=APP, previous=first)
        assert ("v1", "ConfigMap", ns, "argo-prunable") in result.pruned  # pruning happens
        assert sorted(k[1:] for k in result.prune_skipped) == [
            ("AIGatewayCoderdKey", ns, "bundled-gw"),
            ("AIProvider", ns, "bundled"),
        ]
        for plural, name in (("aiproviders", "bundled"), ("aigatewaycoderdkeys", "bundled-gw")):
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name)
            assert "deletionTimestamp" not in obj["metadata"], name
        # The operator still serves it: an edit reaches Coder, the row was never deleted.
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "aiproviders", "bundled", {"spec": {"displayName": "after prune"}}
        )

        def display() -> list[tuple[Any, ...]]:
            with psycopg.connect(dsn) as conn:
                return conn.execute(
                    "SELECT display_name, deleted FROM ai_providers WHERE name = 'bundled'"
                ).fetchall()

        wait_for(lambda: display() == [("after prune", False)], 60, "the edit in Coder")
        with psycopg.connect(dsn) as conn:
            (keys,) = conn.execute(
                "SELECT count(*) FROM ai_gateway_keys WHERE name = 'bundled-gw'"
            ).fetchone() or (0,)
        assert keys == 1
    finally:
        remove_cluster_scoped(api, first)
        core.delete_namespace(ns)
