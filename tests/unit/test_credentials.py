"""Secret resolution: every problem names the field and Secret/key, never the value."""

from __future__ import annotations

import pytest

from aigateway_operator.credentials import Resolved, SecretRef, resolve
from aigateway_operator.kube.client import SecretData

pytestmark = pytest.mark.unit

CANARY = "sk-canary-0123456789abcdefXYZ"


class FakeReader:
    def __init__(self, secrets: dict[str, dict[str, bytes]], rv: str = "1") -> None:
        self.secrets = secrets
        self.rv = rv
        self.reads: list[str] = []

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        self.reads.append(name)
        if name not in self.secrets:
            return None
        return SecretData(namespace, name, f"uid-{name}", self.rv, self.secrets[name])


def ref(i: int, name: str = "keys", key: str = "a") -> SecretRef:
    return SecretRef(f"spec.apiKeys[{i}].secretKeyRef", name, key)


async def test_resolves_all_values_and_reads_each_secret_once() -> None:
    reader = FakeReader({"keys": {"a": CANARY.encode(), "b": b"sk-two"}})
    out = await resolve(reader, "ns", [ref(0), ref(1, key="b")])
    assert isinstance(out, Resolved)
    assert out.get(ref(0)) == CANARY.encode()
    assert out.get(ref(1, key="b")) == b"sk-two"
    assert reader.reads == ["keys"]
    assert CANARY not in repr(out)


async def test_revision_follows_secret_versions() -> None:
    a = await resolve(FakeReader({"keys": {"a": b"x-key"}}, rv="1"), "ns", [ref(0)])
    b = await resolve(FakeReader({"keys": {"a": b"x-key"}}, rv="1"), "ns", [ref(0)])
    c = await resolve(FakeReader({"keys": {"a": b"x-key"}}, rv="2"), "ns", [ref(0)])
    assert isinstance(a, Resolved)
    assert isinstance(b, Resolved)
    assert isinstance(c, Resolved)
    assert a.revision == b.revision != c.revision


@pytest.mark.parametrize(
    ("secrets", "reason", "needle"),
    [
        ({"other": {"a": CANARY.encode()}}, "SecretNotFound", "Secret 'keys' not found in "),
        ({"keys": {"other": CANARY.encode()}}, "SecretKeyMissing", "has no key 'a'"),
    ],
)
async def test_problems_name_field_and_secret_never_value(
    secrets: dict[str, dict[str, bytes]], reason: str, needle: str
) -> None:
    # The second reference resolves: its value is read, and must not show either.
    secrets = {**secrets, "good": {"b": b"sk-good-" + CANARY.encode()}}
    out = await resolve(FakeReader(secrets), "ns", [ref(2), ref(3, name="good", key="b")])
    assert isinstance(out, list)
    assert [p.reason for p in out] == [reason]
    assert needle in out[0].message
    assert out[0].field == "spec.apiKeys[2].secretKeyRef"
    assert "spec.apiKeys[2].secretKeyRef" in out[0].message
    # Not a value of any Secret it read, not in the problem, its message or its repr.
    for text in (out[0].message, repr(out), str(out)):
        assert CANARY not in text
        assert CANARY[3:15] not in text


async def test_reports_every_problem_at_once() -> None:
    out = await resolve(
        FakeReader({"keys": {"a": b"ok-value"}}),
        "ns",
        [ref(0), ref(1, key="zz"), ref(2, name="gone")],
    )
    assert isinstance(out, list)
    assert [p.field for p in out] == [
        "spec.apiKeys[1].secretKeyRef",
        "spec.apiKeys[2].secretKeyRef",
    ]
