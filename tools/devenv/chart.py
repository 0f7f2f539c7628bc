"""The operator's Helm chart on the local environment's node, installed as a user installs it.

``helm install`` (the real helm, :mod:`tools.devenv.helm`) with the image built from the
Dockerfile (:mod:`tools.devenv.images`) already on the node, the database URL and the
encryption key in Secrets the chart references, and what a pod of this environment needs
to reach the API server and STS (:meth:`DevEnv.pod_environ`) through the chart's
``extraEnv``. The demo and the e2e tests both use it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tools.devenv.env import DevEnv
from tools.devenv.helm import ensure_helm
from tools.devenv.images import BuiltImage

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "aigateway-operator"
DATABASE_SECRET = "coder-db"  # noqa: S105 - a Secret's name
ENCRYPTION_SECRET = "coder-external-token-keys"  # noqa: S105 - a Secret's name
#: The Pod Security level the chart's pods are written for (enforced on the namespace).
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def helm(
    env: DevEnv,
    *args: str,
    values: Mapping[str, Any] | None = None,
    timeout: float = 300.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run helm against ``env``'s API server; ``values`` go in as a file on stdin.

    helm's own cache, configuration and data stay in the environment's state directory.
    """
    home = env.state_dir / "helm"
    cmd = [str(ensure_helm()), *args, "--kubeconfig", str(env.kubeconfig)]
    if values is not None:
        cmd += ["--values", "-"]
    run_env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    proc = subprocess.run(
        cmd,
        input=json.dumps(dict(values)) if values is not None else None,
        capture_output=True,
        text=True,
        env=run_env,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc


def operator_values(
    env: DevEnv, image: BuiltImage, namespace: str, **overrides: Any
) -> dict[str, Any]:
    """Chart values for ``image`` serving ``namespace`` on ``env``'s node."""
    values: dict[str, Any] = {
        "image": {"repository": image.repository, "tag": image.tag, "pullPolicy": "Never"},
        "database": {"existingSecret": {"name": DATABASE_SECRET, "key": "url"}},
        "encryption": {"existingSecret": {"name": ENCRYPTION_SECRET, "key": "keys"}},
        "watchNamespaces": [namespace],
        "extraEnv": [{"name": k, "value": v} for k, v in sorted(env.pod_environ().items())],
    }
    values.update(overrides)
    return values


def create_namespace(api: Any, namespace: str, labels: Mapping[str, str] = POD_SECURITY) -> None:
    """The release's namespace, enforcing the restricted Pod Security level by default."""
    from kubernetes import client

    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=dict(labels)))
    )


def create_operator_secrets(api: Any, namespace: str, database_url: str, key: bytes) -> None:
    """The two Secrets the chart references: Coder's database URL and coderd's key list; and
    that database as coderd with this key leaves it (Coder's schema, the key registered in
    ``dbcrypt_keys``), since no coderd runs here and the operator only verifies."""
    from tools.devenv.coder_schema import prepare_coder_database  # needs psycopg

    prepare_coder_database(database_url, [key])
    from kubernetes import client

    core = client.CoreV1Api(api)
    for name, data in (
        (DATABASE_SECRET, {"url": database_url}),
        (ENCRYPTION_SECRET, {"keys": base64.b64encode(key).decode()}),
    ):
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data),
        )


def operator_pods(api: Any, namespace: str, release: str) -> list[Any]:
    """The release's pods (``V1Pod``), oldest first."""
    from kubernetes import client

    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release}")
        .items
    )
    return sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


def pod_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions or []) if pod.status else []
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def pods_table(pods: Sequence[Any]) -> list[str]:
    """``kubectl get pods -o wide`` as lines."""
    lines = [f"{'NAME':48} {'READY':6} {'STATUS':12} {'RESTARTS':9} {'IP':15} NODE"]
    for pod in pods:
        statuses = (pod.status.container_statuses or []) if pod.status else []
        ready = sum(1 for s in statuses if s.ready)
        restarts = sum(s.restart_count for s in statuses)
        phase = "Terminating" if pod.metadata.deletion_timestamp else pod.status.phase
        lines.append(
            f"{pod.metadata.name:48} {ready}/{len(pod.spec.containers):<4} {phase:12} "
            f"{restarts:<9} {pod.status.pod_ip or '-':15} {pod.spec.node_name or '-'}"
        )
    return lines
