"""The operator runs with exactly the chart's RBAC: the chart is applied to the real API server
and the operator process authenticates with its ServiceAccount's token (as a pod would), not
the admin kubeconfig. Any verb the chart forgot shows up as a 403 and a stuck object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.chart import install_chart, operator_env
from tests.support.leaks import SecretHistory, surfaces
from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    custom,
    get_obj,
    make_secret,
    wait_condition,
)
from tests.support.wait import wait_for
from tools.devenv.helm import (
    ensure_helm,
    remove_cluster_scoped,
)

pytestmark = pytest.mark.e2e

PLURAL = "aiproviders"
CANARY = "sk-canary-CHART-0123456789abcdefghijklmnop"


@pytest.fixture(scope="session")
def helm() -> Path:
    return ensure_helm()


@pytest.fixture
def chart_install(
    helm: Path, k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    install = install_chart(helm, k8s_api, namespace, tmp_path)
    yield install
    remove_cluster_scoped(k8s_api, install["docs"])


def provider(name: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "openai",
            "apiKeys": [{"secretKeyRef": {"name": secret, "key": "a"}}],
        },
    }


@pytest.fixture
def secret_history(k8s_api: client.ApiClient, namespace: str) -> Iterator[SecretHistory]:
    """Every value the namespace's Secrets hold over the test (the gateway keys issued)."""
    with SecretHistory(k8s_api, namespace) as history:
        yield history


def test_provider_lifecycle_with_the_charts_service_account(
    operator_factory: Callable[..., OperatorProcess],
    chart_install: dict[str, Any],
    k8s_api: client.ApiClient,
    namespace: str,
    secret_history: SecretHistory,
) -> None:
    assert chart_install["namespaces"] == namespace
    op = operator_factory(extra_env=operator_env(chart_install), metrics=True)

    # Secret -> Ready: watch our kind and Secrets, read the Secret, patch status, finalizer.
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY})
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, provider("via-chart", "llm-keys")
    )
    obj = wait_condition(k8s_api, namespace, PLURAL, "via-chart", "Ready", timeout=60)
    assert "aigateway.dev/finalizer" in obj["metadata"]["finalizers"]

    # A Secret edit reaches the database: the Secret watch pokes the object (patch).
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "llm-keys", namespace, {"stringData": {"a": CANARY + "-rotated"}}
    )

    def rotated() -> bool:
        fps = [
            k["fingerprint"]
            for k in get_obj(k8s_api, namespace, PLURAL, "via-chart")["status"]["apiKeys"]
        ]
        return fps != [k["fingerprint"] for k in obj["status"]["apiKeys"]]

    wait_for(rotated, 30, "status to show the rotated key")

    # Delete: the finalizer comes off with patch alone (the chart grants no update).
    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "via-chart")

    def gone() -> bool:
        try:
            get_obj(k8s_api, namespace, PLURAL, "via-chart")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 30, "AIProvider finalized and deleted")
    with psycopg.connect(op.database_url) as conn:
        row = conn.execute("SELECT deleted FROM ai_providers WHERE name = 'via-chart'").fetchone()
    assert row == (True,)

    # The gateway-key flow with the same RBAC: issue (create the owned Secret), rotate
    # (replace it), delete (the garbage collector removes the Secret with its owner).
    keys_plural = "aigatewaycoderdkeys"
    custom(k8s_api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        keys_plural,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIGatewayCoderdKey",
            "metadata": {"name": "chart-gw"},
            "spec": {"rotation": {"gracePeriod": "5s"}},
        },
    )
    key_obj = wait_condition(k8s_api, namespace, keys_plural, "chart-gw", "Ready", timeout=60)
    first_prefix = key_obj["status"]["keyPrefix"]
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, keys_plural, "chart-gw",
        {"spec": {"rotation": {"generation": 1}}},
    )  # fmt: skip

    def key_rotated() -> bool:
        status = get_obj(k8s_api, namespace, keys_plural, "chart-gw").get("status") or {}
        return bool(status.get("keyPrefix")) and status["keyPrefix"] != first_prefix

    wait_for(key_rotated, 60, "the gateway key to rotate")
    custom(k8s_api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, keys_plural, "chart-gw"
    )

    def key_gone() -> bool:
        try:
            get_obj(k8s_api, namespace, keys_plural, "chart-gw")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(key_gone, 60, "AIGatewayCoderdKey finalized and deleted")
    with psycopg.connect(op.database_url) as conn:
        key_rows = conn.execute("SELECT count(*) FROM ai_gateway_keys").fetchone()
    assert key_rows == (0,)

    # Events were posted with the SA's token (the operator's own, secret-free Events).
    events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace).items
    assert any(e.involved_object.name == "via-chart" for e in events)
    # The peering object the chart created carries this operator's heartbeat.
    peering = custom(k8s_api).get_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", chart_install["peering"]
    )
    assert peering.get("status"), "the operator never heartbeat into the chart's KopfPeering"

    log = op.log()
    assert op.alive(), log[-3000:]
    for denied in ("status=403", "Forbidden", "forbidden"):
        assert denied not in log, f"an API call was denied:\n{log[-3000:]}"
    # No value the operator read or issued is anywhere it writes or the API serves: the
    # provider key before and after its rotation, and both gateway keys (from the Secret's
    # history: the second replaced the first, and the Secret is gone with its owner).
    issued = {v for v in secret_history.snapshot() if v.startswith("cgw_")}
    assert len(issued) == 2, len(issued)
    seen = surfaces(
        k8s_api, namespace, op.database_url, [PLURAL, keys_plural], log=log, metrics=op.metrics()
    )
    for value in (CANARY, CANARY + "-rotated", *issued):
        assert seen.holding(value) == [], f"a secret ({value[:7]}...) leaked"
