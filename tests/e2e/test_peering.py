"""Two replicas, one active: kopf peering as the chart sets it up (peering CRDs, the
KopfPeering object, its RBAC, the ServiceAccount's token), and failover after a SIGKILL.

kopf freezes every replica when priorities are equal, and a killed replica's heartbeat stays
valid for the peering lifetime (60 s by default), so this needs the operator settings
``AIGW_PEERING_PRIORITY`` (distinct per replica; random when unset) and
``AIGW_PEERING_LIFETIME_S`` (kopf's ``settings.peering.lifetime``, the bound on failover).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import metrics
from tests.support.chart import install_chart, operator_env
from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    custom,
    make_secret,
    wait_condition,
)
from tests.support.wait import wait_for
from tools.devenv.helm import ensure_helm, remove_cluster_scoped

pytestmark = pytest.mark.e2e

LIFETIME_S = 10


@pytest.fixture
def chart_install(
    k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    install = install_chart(ensure_helm(), k8s_api, namespace, tmp_path)
    yield install
    remove_cluster_scoped(k8s_api, install["docs"])


def provider(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "keys", "key": "a"}}]},
    }


def handled(op: OperatorProcess, namespace: str, name: str) -> bool:
    return f"[{namespace}/{name}] AIProvider pass done" in op.log()


def test_one_replica_acts_and_the_other_takes_over_after_sigkill(
    operator_factory: Callable[..., OperatorProcess],
    chart_install: dict[str, Any],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    def replica(priority: int, **kw: Any) -> OperatorProcess:
        env = operator_env(
            chart_install,
            AIGW_PEERING_PRIORITY=str(priority),
            AIGW_PEERING_LIFETIME_S=str(LIFETIME_S),
        )
        return operator_factory(extra_env=env, **kw)

    active = replica(200, metrics=True)
    standby = replica(
        100, database_url=active.database_url, encryption_key=active.encryption_key, metrics=True
    )
    objects = custom(k8s_api)

    def peers() -> dict[str, Any]:
        obj = objects.get_namespaced_custom_object(
            "kopf.dev", "v1", namespace, "kopfpeerings", chart_install["peering"]
        )
        return dict(obj.get("status") or {})

    # Both replicas heartbeat into the chart's KopfPeering; the lower one pauses.
    wait_for(lambda: len(peers()) == 2, 90, "two peers in the KopfPeering")
    assert sorted(p["priority"] for p in peers().values()) == [100, 200]

    make_secret(k8s_api, namespace, "keys", {"a": "sk-peering-0123456789abcdefghijklmnop"})
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "aiproviders", provider("one")
    )
    wait_condition(k8s_api, namespace, "aiproviders", "one", "Ready", timeout=60)
    # The pass logs once its writes are done: the status may be seen a moment before.
    wait_for(lambda: handled(active, namespace, "one"), 30, "the active replica's pass log")

    # The standby did no work while the active one lived: it is up (it serves metrics and
    # heartbeats), says it is not the active replica, and has run not one pass; its log
    # names no object.
    standby_metrics = wait_for(lambda: _scrape(standby), 30, "the standby's metrics")
    assert metrics.value(standby_metrics, "aigw_active_replica") == 0
    assert metrics.value(standby_metrics, "aigw_reconciles_total") == 0
    assert f"[{namespace}/" not in standby.log(), "the paused replica acted"
    active_metrics = active.metrics()
    assert metrics.value(active_metrics, "aigw_active_replica") == 1
    assert metrics.value(active_metrics, "aigw_reconciles_total", kind="AIProvider") >= 1

    # SIGKILL the active one: no goodbye, its heartbeat just expires (after LIFETIME_S).
    active.kill()
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "aiproviders", provider("two")
    )
    # How fast failover is, is not asserted here (a bound for loaded machines only).
    wait_condition(k8s_api, namespace, "aiproviders", "two", "Ready", timeout=120)
    wait_for(lambda: handled(standby, namespace, "two"), 30, "the standby's pass log")
    after = standby.metrics()
    assert metrics.value(after, "aigw_active_replica") == 1
    assert metrics.value(after, "aigw_reconciles_total", kind="AIProvider") >= 1
    assert standby.alive()


def _scrape(op: OperatorProcess) -> str | None:
    """The metrics page, or None while the endpoint is not up yet."""
    try:
        return op.metrics()
    except OSError:
        return None
