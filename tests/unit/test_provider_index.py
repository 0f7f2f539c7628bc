"""The in-memory AIProvider index: names only, updated and removed with the objects."""

from __future__ import annotations

import pytest

from aigateway_operator.controllers.aiprovider.index import ProviderIndex

pytestmark = pytest.mark.unit


def spec(*secrets: str, provider_name: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "type": "openai",
        "apiKeys": [{"secretKeyRef": {"name": s, "key": "k"}} for s in secrets],
    }
    if provider_name:
        out["providerName"] = provider_name
    return out


def meta(created: str, deleting: bool = False) -> dict[str, object]:
    m: dict[str, object] = {"creationTimestamp": created}
    if deleting:
        m["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return m


def test_secret_references_follow_updates_and_deletes() -> None:
    idx = ProviderIndex()
    idx.update("u1", "ns", "a", spec("s1", "s2"), meta("t1"))
    idx.update("u2", "ns", "b", spec("s1"), meta("t2"))
    assert idx.referencing("ns", "s1") == ["u1", "u2"]
    assert idx.references("ns", "s2")
    assert not idx.references("other", "s1")
    idx.update("u1", "ns", "a", spec("s3"), meta("t1"))  # the spec moved to another Secret
    assert idx.referencing("ns", "s1") == ["u2"]
    assert not idx.references("ns", "s2")
    idx.remove("u2")
    assert not idx.references("ns", "s1")
    idx.remove("u2")  # idempotent


def test_name_claims_and_bedrock_credentials() -> None:
    idx = ProviderIndex()
    idx.update("u1", "ns1", "x", spec(provider_name="shared"), meta("t1"))
    idx.update("u2", "ns2", "shared", {"type": "bedrock", "bedrock": {
        "credentialsSecretRef": {"name": "aws"}}}, meta("t2", deleting=True))  # fmt: skip
    claims = sorted(idx.claims("shared"), key=lambda c: c.uid)
    assert [(c.uid, c.namespace, c.deleting) for c in claims] == [
        ("u1", "ns1", False),
        ("u2", "ns2", True),
    ]
    assert idx.referencing("ns2", "aws") == ["u2"]
    idx.update("u1", "ns1", "x", spec(provider_name="renamed"), meta("t1"))
    assert [c.uid for c in idx.claims("shared")] == ["u2"]
    assert [c.uid for c in idx.claims("renamed")] == ["u1"]
