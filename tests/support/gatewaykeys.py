"""AIGatewayCoderdKeys as the operator tests drive them: create and patch one, the key its
Secret delivers, waiting for that key to change, and the key rows in Coder's database."""

from __future__ import annotations

import base64
from typing import Any

import psycopg
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.operator import GROUP, VERSION, OperatorProcess, custom
from tests.support.wait import wait_for

PLURAL = "aigatewaycoderdkeys"


def apply_key(
    api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIGatewayCoderdKey",
            "metadata": {"name": name},
            "spec": spec or {},
        },
    )
    return obj


def patch_key(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    custom(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)


def rows(op: OperatorProcess) -> list[tuple[Any, ...]]:
    """(id, name, secret_prefix, hashed_secret, last_heartbeat_at) of every key row."""
    with psycopg.connect(op.database_url) as conn:
        return [
            (r[0], r[1], r[2], bytes(r[3]), r[4])
            for r in conn.execute(
                "SELECT id, name, secret_prefix, hashed_secret, last_heartbeat_at "
                "FROM ai_gateway_keys ORDER BY created_at"
            ).fetchall()
        ]


def secret_value(api: client.ApiClient, namespace: str, name: str) -> str | None:
    try:
        sec = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return base64.b64decode((sec.data or {})["key"]).decode()


def wait_secret_changes(
    api: client.ApiClient, namespace: str, name: str, old: str | None, timeout: float = 20
) -> str:
    def changed() -> str | None:
        value = secret_value(api, namespace, name)
        return value if value and value != old else None

    return wait_for(changed, timeout, f"Secret {name} to hold a new key")
