"""The in-memory AIProvider index: names only, updated and removed with the objects."""

from __future__ import annotations

import pytest

from aigateway_operator.controllers.aiprovider.index import ProviderIndex
from tests.support.fakes import provider_reading

pytestmark = pytest.mark.unit


def spec(*secrets: str, provider_name: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "type": "openai",
        "apiKeys": [{"secretKeyRef": {"name": s, "key": "k"}} for s in secrets],
    }
    if provider_name:
        out["providerName"] = provider_name
    return out


def test_secret_references_follow_updates_and_deletes() -> None:
    idx = ProviderIndex()
    idx.update(provider_reading("u1", "ns", "a", spec("s1", "s2"), "t1"))
    idx.update(provider_reading("u2", "ns", "b", spec("s1"), "t2"))
    assert idx.referencing("ns", "s1") == ["u1", "u2"]
    assert idx.referencing("ns", "s2") == ["u1"]
    assert idx.referencing("other", "s1") == []
    # The spec moved to another Secret.
    idx.update(provider_reading("u1", "ns", "a", spec("s3"), "t1"))
    assert idx.referencing("ns", "s1") == ["u2"]
    assert idx.referencing("ns", "s2") == []
    idx.remove("u2")
    assert idx.referencing("ns", "s1") == []
    idx.remove("u2")  # idempotent


def test_name_claims_and_bedrock_credentials() -> None:
    idx = ProviderIndex()
    idx.update(provider_reading("u1", "ns1", "x", spec(provider_name="shared"), "t1"))
    bedrock = {"type": "bedrock", "bedrock": {"region": "us-east-1", "credentialsSecretRef": {
        "name": "aws"}}}  # fmt: skip
    idx.update(provider_reading("u2", "ns2", "shared", bedrock, "t2"), deleting=True)
    claims = sorted(idx.claims("shared"), key=lambda c: c.uid)
    assert [(c.uid, c.namespace, c.deleting) for c in claims] == [
        ("u1", "ns1", False),
        ("u2", "ns2", True),
    ]
    assert idx.referencing("ns2", "aws") == ["u2"]
    idx.update(provider_reading("u1", "ns1", "x", spec(provider_name="renamed"), "t1"))
    assert [c.uid for c in idx.claims("shared")] == ["u2"]
    assert [c.uid for c in idx.claims("renamed")] == ["u1"]


def test_an_object_that_cannot_be_acted_on_is_known_but_claims_no_name() -> None:
    idx = ProviderIndex()
    # No spec.providerName, and metadata.name is no Coder provider name: InvalidSpec.
    idx.update(provider_reading("u1", "ns", "team.openai", spec("s1"), "t1"))
    assert idx.has("ns", "team.openai")  # still known: the collector leaves its rows alone
    assert idx.provider_name("u1") is None
    assert idx.claims("team.openai") == []
    idx.update(provider_reading("u2", "ns", "broken", {"type": "nope"}, "t2"))
    assert idx.has("ns", "broken")
    assert idx.claims("broken") == []


def test_a_key_shared_then_left_again_leaves_no_entry_behind() -> None:
    """One object under a key, then three, then none: the answers follow, and nothing of a
    removed object stays (one uid is kept bare, several in a set)."""
    idx = ProviderIndex()
    for uid in ("u1", "u2", "u3"):
        idx.update(provider_reading(uid, "ns", uid, spec("s1", provider_name="same"), "t"))
    assert idx.referencing("ns", "s1") == ["u1", "u2", "u3"]
    assert sorted(c.uid for c in idx.claims("same")) == ["u1", "u2", "u3"]
    idx.remove("u2")
    idx.remove("u3")
    assert idx.referencing("ns", "s1") == ["u1"]
    assert [c.uid for c in idx.claims("same")] == ["u1"]
    idx.update(provider_reading("u1", "ns", "u1", spec("s1", provider_name="same"), "t"))
    assert idx.referencing("ns", "s1") == ["u1"]  # re-indexing the same object: still one
    idx.remove("u1")
    assert idx.referencing("ns", "s1") == []
    assert idx.claims("same") == []
    assert (idx._by_uid, idx._by_secret, idx._by_name) == ({}, {}, {})
