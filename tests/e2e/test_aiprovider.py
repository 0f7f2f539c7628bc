"""AIProvider end to end: the operator process, the real API server, Postgres and STS."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kubernetes import client
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    custom,
    get_obj,
    make_secret,
    wait_condition,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

PLURAL = "aiproviders"
CANARY_A = "sk-canary-AAAA-0123456789abcdefghijklmnop"
CANARY_B = "sk-canary-BBBB-0123456789abcdefghijklmnop"


def apply_provider(api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIProvider",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def decrypt(key: bytes, value: str, key_id: str | None) -> str:
    if not key_id:
        return value
    raw = base64.b64decode(value)
    return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()


def provider_rows(op: OperatorProcess, name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(op.database_url) as conn:
        return conn.execute(
            "SELECT id, type::text, enabled, deleted, base_url, display_name FROM ai_providers "
            "WHERE name = %s ORDER BY created_at",
            (name,),
        ).fetchall()


def provider_keys(op: OperatorProcess, provider_id: Any) -> list[str]:
    with psycopg.connect(op.database_url) as conn:
        rows = conn.execute(
            "SELECT api_key, api_key_key_id FROM ai_provider_keys WHERE provider_id = %s "
            "ORDER BY created_at, id",
            (provider_id,),
        ).fetchall()
    return [decrypt(op.encryption_key, v, k) for v, k in rows]


def openai_spec(*keys: str, secret: str = "llm-keys") -> dict[str, Any]:
    return {
        "type": "openai",
        "displayName": "OpenAI",
        "apiKeys": [{"secretKeyRef": {"name": secret, "key": k}} for k in keys],
    }


def test_provider_synced_from_secret_and_secret_edit_propagates(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A, "b": CANARY_B})
    apply_provider(k8s_api, namespace, "openai-main", openai_spec("a", "b"))
    obj = wait_condition(k8s_api, namespace, PLURAL, "openai-main", "Ready")

    rows = provider_rows(op, "openai-main")
    assert len(rows) == 1
    pid, ptype, enabled, deleted, base_url, display = rows[0]
    assert (ptype, enabled, deleted, display) == ("openai", True, False, "OpenAI")
    assert base_url == "https://api.openai.com/v1/"
    assert provider_keys(op, pid) == [CANARY_A, CANARY_B]
    with psycopg.connect(op.database_url) as conn:
        raw = conn.execute("SELECT api_key FROM ai_provider_keys").fetchall()
    assert all(CANARY_A not in r[0] and CANARY_B not in r[0] for r in raw)  # encrypted at rest

    status = obj["status"]
    assert status["providerID"] == str(pid)
    assert status["keyCount"] == 2
    assert [k["masked"] for k in status["apiKeys"]] == ["sk-c...mnop", "sk-c...mnop"]
    assert status["apiKeys"][0]["fingerprint"] != status["apiKeys"][1]["fingerprint"]
    assert status["apiKeys"][0]["secretKeyRef"] == {"name": "llm-keys", "key": "a"}
    assert status["encryptionKeyDigest"]

    # A Secret edit reaches the database and a LISTEN connection within 5 s.
    with psycopg.connect(op.database_url, autocommit=True) as listener:
        listener.execute("LISTEN ai_providers_changed")
        start = time.monotonic()
        client.CoreV1Api(k8s_api).patch_namespaced_secret(
            "llm-keys", namespace, {"stringData": {"b": CANARY_B + "-rotated"}}
        )
        got = next(listener.notifies(timeout=10), None)
        elapsed = time.monotonic() - start
    assert got is not None
    assert got.channel == "ai_providers_changed"
    assert elapsed < 5, f"Secret change took {elapsed:.1f}s to reach the database"
    assert provider_keys(op, pid) == [CANARY_A, CANARY_B + "-rotated"]

    # Nothing secret in the log, the status or the Events.
    events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace)
    everything = op.log() + json.dumps(get_obj(k8s_api, namespace, PLURAL, "openai-main"))
    everything += " ".join(e.message or "" for e in events.items)
    for canary in (CANARY_A, CANARY_B):
        assert canary not in everything
        assert canary[5:20] not in everything


def test_missing_secret_touches_nothing_then_converges(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    apply_provider(k8s_api, namespace, "late", openai_spec("a", secret="late-keys"))
    obj = wait_condition(
        k8s_api, namespace, PLURAL, "late", "SecretsResolved", "False", "SecretNotFound"
    )
    message = condition(obj, "SecretsResolved")["message"]  # type: ignore[index]
    assert "spec.apiKeys[0].secretKeyRef" in message
    assert "late-keys" in message
    assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]
    assert provider_rows(op, "late") == []
    make_secret(k8s_api, namespace, "late-keys", {"a": CANARY_A})
    wait_condition(k8s_api, namespace, PLURAL, "late", "Ready", timeout=30)
    assert len(provider_rows(op, "late")) == 1


def test_delete_soft_deletes_and_removes_keys(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    apply_provider(k8s_api, namespace, "gone", openai_spec("a"))
    obj = wait_condition(k8s_api, namespace, PLURAL, "gone", "Ready")
    assert "aigateway.dev/finalizer" in obj["metadata"]["finalizers"]
    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "gone")

    def deleted() -> bool:
        rows = provider_rows(op, "gone")
        return len(rows) == 1 and rows[0][3] is True and rows[0][2] is False

    wait_for(deleted, 30, "row soft-deleted")
    assert provider_keys(op, provider_rows(op, "gone")[0][0]) == []


def test_drift_is_reverted(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    make_secret(k8s_api, namespace, "llm-keys", {"a": CANARY_A})
    apply_provider(k8s_api, namespace, "drifty", openai_spec("a"))
    wait_condition(k8s_api, namespace, PLURAL, "drifty", "Ready")
    # What coderd's PATCH does: update the row, bump updated_at, notify.
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ai_providers SET display_name = 'hacked', updated_at = now() "
            "WHERE name = 'drifty'"
        )
        conn.execute("SELECT pg_notify('ai_providers_changed', '')")
    wait_for(lambda: provider_rows(op, "drifty")[0][5] == "OpenAI", 15, "drift reverted")

    def reverted_event() -> bool:
        events = client.CoreV1Api(k8s_api).list_namespaced_event(namespace)
        return any(e.reason == "DriftReverted" for e in events.items)

    wait_for(reverted_event, 15, "DriftReverted event")
