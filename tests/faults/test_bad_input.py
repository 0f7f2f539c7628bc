"""Malformed and hostile input, with the operator running: every case is refused at apply
time with a message naming the field, or reported on the object with a stable reason, and
Coder's database is untouched by all of them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.e2e.conftest import OperatorProcess, condition, wait_condition
from tests.e2e.test_aiprovider import PLURAL, apply_provider
from tests.integration.test_crd_aiprovider import INVALID, body
from tests.support.crd import rejected
from tests.support.operator import ALLOW_ALL

pytestmark = pytest.mark.faults

GOOD = "sk-good-0123456789abcdefghij"

# Reported on the object: (id, Secret data (bytes), spec, condition, reason, field named).
Reported = tuple[str, dict[str, bytes], dict[str, Any], str, str, str]


def _keys(*keys: str, secret: str = "bad") -> list[dict[str, Any]]:
    return [{"secretKeyRef": {"name": secret, "key": k}} for k in keys]


def _aws(secret: str = "bad") -> dict[str, Any]:
    return {"region": "us-east-1", "credentialsSecretRef": {"name": secret}}


REPORTED: list[Reported] = [
    ("missing-secret", {}, {"type": "openai", "apiKeys": _keys("a", secret="nope")},
     "SecretsResolved", "SecretNotFound", "spec.apiKeys[0].secretKeyRef"),
    ("missing-key", {"other": b"x-value-1"}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "SecretKeyMissing", "spec.apiKeys[0].secretKeyRef"),
    ("empty-value", {"a": b""}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("whitespace-only", {"a": b"   "}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("trailing-newline", {"a": GOOD.encode() + b"\n"}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("leading-space", {"a": b" " + GOOD.encode()}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("tab-inside", {"a": b"sk-a\tb-0123456789"}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("binary", {"a": b"\xff\xfe\x00\x01binary"}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("nul-byte", {"a": b"sk-abc\x00def-0123"}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("zero-width-unicode", {"a": "sk-\u200b-0123456789".encode()},
     {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("huge-value", {"a": b"x" * 100_000}, {"type": "openai", "apiKeys": _keys("a")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[0].secretKeyRef"),
    ("duplicate-values", {"a": GOOD.encode(), "b": GOOD.encode()},
     {"type": "openai", "apiKeys": _keys("a", "b")},
     "SecretsResolved", "DuplicateAPIKey", "spec.apiKeys[1].secretKeyRef"),
    ("second-key-bad", {"a": GOOD.encode(), "b": b"bad value\n"},
     {"type": "anthropic", "apiKeys": _keys("a", "b")},
     "SecretsResolved", "InvalidSecretValue", "spec.apiKeys[1].secretKeyRef"),
    ("secret-in-other-namespace", {}, {"type": "openai", "apiKeys": _keys("a", secret="elsewhere")},
     "SecretsResolved", "SecretNotFound", "spec.apiKeys[0].secretKeyRef"),
    ("aws-temporary-key-id",
     {"AWS_ACCESS_KEY_ID": b"ASIAIOSFODNN7EXAMPLE",
      "AWS_SECRET_ACCESS_KEY": b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
     {"type": "bedrock", "bedrock": _aws()},
     "SecretsResolved", "InvalidSecretValue", "spec.bedrock.credentialsSecretRef"),
    ("aws-short-secret",
     {"AWS_ACCESS_KEY_ID": b"AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": b"short"},
     {"type": "bedrock", "bedrock": _aws()},
     "SecretsResolved", "InvalidSecretValue", "spec.bedrock.credentialsSecretRef"),
    ("aws-missing-secret-key", {"AWS_ACCESS_KEY_ID": b"AKIAIOSFODNN7EXAMPLE"},
     {"type": "bedrock", "bedrock": _aws()},
     "SecretsResolved", "SecretKeyMissing", "spec.bedrock.credentialsSecretRef"),
]  # fmt: skip


def _table_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]  # noqa: S608
            for t in ("ai_providers", "ai_provider_keys", "audit_logs")
        }


def test_bad_input_table(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory()
    api = client.CustomObjectsApi(k8s_api)
    core = client.CoreV1Api(k8s_api)
    # The "other namespace" case: the Secret exists, but not where the object is.
    other = f"{namespace}-x"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    core.create_namespaced_secret(
        other,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="elsewhere", annotations=ALLOW_ALL),
            string_data={"a": GOOD},
        ),
    )
    checked = 0
    try:
        # 1. Refused at apply time by the API server (the CRD's schema and CEL rules).
        for case_id, name, spec, needles in INVALID:
            message = rejected(
                lambda name=name, spec=spec: api.create_namespaced_custom_object(
                    "aigateway.dev", "v1alpha1", namespace, PLURAL, body(name, spec)
                )
            )
            for needle in needles:
                assert needle in message, (case_id, message)
            checked += 1

        # 2. Accepted by the schema, reported on the object with a stable reason.
        for i, (_, data, spec, *_checks) in enumerate(REPORTED):
            secret = f"bad-{i}"
            if data:
                core.create_namespaced_secret(
                    namespace,
                    client.V1Secret(
                        metadata=client.V1ObjectMeta(name=secret, annotations=ALLOW_ALL),
                        data={k: base64.b64encode(v).decode() for k, v in data.items()},
                    ),
                )
            spec = _rename_secret(spec, secret)
            apply_provider(k8s_api, namespace, f"case-{i}", spec)
        for i, (case_id, data, _spec, ctype, reason, field) in enumerate(REPORTED):
            obj = wait_condition(k8s_api, namespace, PLURAL, f"case-{i}", ctype, "False", reason)
            c = condition(obj, ctype)
            assert c is not None
            assert field in c["message"], (case_id, c["message"])
            assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]
            for value in data.values():
                if len(value) > 4:
                    assert value.decode(errors="ignore").strip() not in str(obj["status"])
            checked += 1
    finally:
        core.delete_namespace(other)

    assert checked >= 40
    # Nothing reached Coder's database (the schema exists: the operator created it at start).
    assert _table_counts(op.database_url) == {
        "ai_providers": 0,
        "ai_provider_keys": 0,
        "audit_logs": 0,
    }
    log = op.log()
    for _, data, *_rest in REPORTED:
        for value in data.values():
            text = value.decode(errors="ignore").strip()
            if len(text) >= 8 and text != "AKIAIOSFODNN7EXAMPLE":
                assert text not in log


def _rename_secret(spec: dict[str, Any], secret: str) -> dict[str, Any]:
    """Point the case's ``bad`` references at its own Secret (other names stay as given)."""
    out = dict(spec)
    if "apiKeys" in out:
        out["apiKeys"] = [
            {"secretKeyRef": {**k["secretKeyRef"],
                              "name": secret if k["secretKeyRef"]["name"] == "bad"
                              else k["secretKeyRef"]["name"]}}
            for k in out["apiKeys"]
        ]  # fmt: skip
    if "bedrock" in out:
        b = dict(out["bedrock"])
        if b.get("credentialsSecretRef", {}).get("name") == "bad":
            b["credentialsSecretRef"] = {**b["credentialsSecretRef"], "name": secret}
        out["bedrock"] = b
    return out
