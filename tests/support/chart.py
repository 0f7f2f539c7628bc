"""The chart applied to the real API server for an operator process run as its ServiceAccount:
the rendered manifests, that ServiceAccount's kubeconfig, and the environment the chart gives
the pod (tests/e2e/test_chart_operator.py, tests/e2e/test_peering.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from tools.devenv.helm import apply_manifests, render_chart, service_account_kubeconfig

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"


def install_chart(
    helm: Path, api: client.ApiClient, namespace: str, tmp_path: Path
) -> dict[str, Any]:
    """The chart in ``namespace``, serving ``namespace``: what an operator pod would get."""
    docs = render_chart(
        CHART,
        namespace,
        namespace,
        {
            "database": {"existingSecret": {"name": "coder-db"}},
            "watchNamespaces": [namespace],
        },
        helm=helm,
    )
    apply_manifests(api, docs)
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    return {
        "docs": docs,
        "kubeconfig": service_account_kubeconfig(api, namespace, sa, tmp_path / "sa.kubeconfig"),
        "namespaces": env["AIGW_NAMESPACES"],
        "peering": env["AIGW_PEERING"],
        "service_account": sa,
    }


def operator_env(install: dict[str, Any], **extra: str) -> dict[str, str]:
    """The environment the chart gives the pod, minus what operator_factory provides itself
    (the database and keys come inline there rather than from mounted files)."""
    return {
        "KUBECONFIG": str(install["kubeconfig"]),
        "AIGW_NAMESPACES": install["namespaces"],
        "AIGW_PEERING": install["peering"],
        **extra,
    }
