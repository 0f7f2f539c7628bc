"""Secret resolution: every problem names the field and Secret/key, never the value."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aigateway_operator.config import SecretAccess
from aigateway_operator.credentials import (
    DEFAULT_ENDPOINT,
    Destination,
    Resolved,
    SecretRef,
    allows_destination,
    destination_of,
    may_use,
    resolve,
)
from aigateway_operator.kube.client import SecretData

pytestmark = pytest.mark.unit

CANARY = "sk-canary-0123456789abcdefXYZ"


class FakeReader:
    def __init__(
        self,
        secrets: dict[str, dict[str, bytes]],
        rv: str = "1",
        allowed: str | None = "p",
        labels: dict[str, str] | None = None,
    ) -> None:
        self.secrets = secrets
        self.rv = rv
        self.reads: list[str] = []
        self.annotations = {} if allowed is None else {"aigateway.dev/allowed-aiproviders": allowed}
        self.labels = labels or {}

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        self.reads.append(name)
        if name not in self.secrets:
            return None
        return SecretData(
            namespace,
            name,
            f"uid-{name}",
            self.rv,
            self.secrets[name],
            labels=self.labels,
            annotations=self.annotations,
        )


def ref(i: int, name: str = "keys", key: str = "a") -> SecretRef:
    return SecretRef(f"spec.apiKeys[{i}].secretKeyRef", name, key)


async def test_resolves_all_values_and_reads_each_secret_once() -> None:
    reader = FakeReader({"keys": {"a": CANARY.encode(), "b": b"sk-two"}})
    out = await resolve(reader, "ns", [ref(0), ref(1, key="b")], consumer="p")
    assert isinstance(out, Resolved)
    assert out.get(ref(0)) == CANARY.encode()
    assert out.get(ref(1, key="b")) == b"sk-two"
    assert reader.reads == ["keys"]
    assert CANARY not in repr(out)


async def test_revision_follows_secret_versions() -> None:
    a = await resolve(FakeReader({"keys": {"a": b"x-key"}}, rv="1"), "ns", [ref(0)], consumer="p")
    b = await resolve(FakeReader({"keys": {"a": b"x-key"}}, rv="1"), "ns", [ref(0)], consumer="p")
    c = await resolve(FakeReader({"keys": {"a": b"x-key"}}, rv="2"), "ns", [ref(0)], consumer="p")
    assert isinstance(a, Resolved)
    assert isinstance(b, Resolved)
    assert isinstance(c, Resolved)
    assert a.revision == b.revision != c.revision


@pytest.mark.parametrize(
    ("secrets", "reason", "needle"),
    [
        (
            {"other": {"a": CANARY.encode()}},
            "SecretNotFound",
            "Secret 'keys' was not found in namespace 'ns'",
        ),
        ({"keys": {"other": CANARY.encode()}}, "SecretKeyMissing", "has no key 'a'"),
    ],
)
async def test_problems_name_field_and_secret_never_value(
    secrets: dict[str, dict[str, bytes]], reason: str, needle: str
) -> None:
    # The second reference resolves: its value is read, and must not show either.
    secrets = {**secrets, "good": {"b": b"sk-good-" + CANARY.encode()}}
    out = await resolve(
        FakeReader(secrets), "ns", [ref(2), ref(3, name="good", key="b")], consumer="p"
    )
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
        consumer="p",
    )
    assert isinstance(out, list)
    assert [p.field for p in out] == [
        "spec.apiKeys[1].secretKeyRef",
        "spec.apiKeys[2].secretKeyRef",
    ]


NOT_ALLOWED = [
    pytest.param({"allowed": None}, id="no-opt-in"),
    pytest.param({"allowed": "other, another"}, id="names-another-provider"),
    pytest.param({"allowed": "*", "labels": {"aigateway.dev/gateway-key": "gw"}}, id="gw-key"),
]


@pytest.mark.parametrize("kwargs", NOT_ALLOWED)
async def test_a_secret_that_does_not_allow_the_provider_looks_missing(kwargs: dict) -> None:
    """Exactly the answer for a missing Secret: no hint of its keys, values or existence."""
    present = FakeReader({"keys": {"a": CANARY.encode(), "b": CANARY.encode()}}, **kwargs)
    refs = [ref(0), ref(1, key="b"), ref(2, key="absent")]
    out = await resolve(present, "ns", refs, consumer="p")
    missing = await resolve(FakeReader({}), "ns", refs, consumer="p")
    assert isinstance(out, list)
    assert isinstance(missing, list)
    assert [(p.reason, p.field, p.message) for p in out] == [
        (p.reason, p.field, p.message) for p in missing
    ]
    assert {p.reason for p in out} == {"SecretNotFound"}
    assert all("allowed-aiproviders" in p.message for p in out)


@pytest.mark.parametrize(
    ("allowed", "consumer", "ok"),
    [
        ("*", "p", True),
        ("p", "p", True),
        (" q , p ", "p", True),
        ("q", "p", False),
        ("", "p", False),
    ],
)
def test_the_opt_in_names_the_provider_or_all(allowed: str, consumer: str, ok: bool) -> None:
    secret = SecretData(
        "ns", "s", "u", "1", {}, annotations={"aigateway.dev/allowed-aiproviders": allowed}
    )
    assert may_use(secret, consumer, SecretAccess.ANNOTATED) is ok


def test_namespace_access_uses_any_secret_but_never_a_gateway_key() -> None:
    plain = SecretData("ns", "s", "u", "1", {})
    assert may_use(plain, "p", SecretAccess.NAMESPACE)
    labelled = SecretData("ns", "s", "u", "1", {}, labels={"aigateway.dev/gateway-key": "gw"})
    owned = SecretData("ns", "s", "u", "1", {}, owner_kinds=("AIGatewayCoderdKey",))
    assert not may_use(labelled, "p", SecretAccess.NAMESPACE)
    assert not may_use(owned, "p", SecretAccess.NAMESPACE)


# --- the destination: a Secret's values go only where its owner allowed (#23) ----------------

OPENAI = "https://api.openai.com/v1/"


def _bound(hosts: str | None, consumer: str = "*") -> SecretData:
    annotations = {"aigateway.dev/allowed-aiproviders": consumer}
    if hosts is not None:
        annotations["aigateway.dev/allowed-hosts"] = hosts
    return SecretData("ns", "s", "u", "1", {}, annotations=annotations)


@pytest.mark.parametrize(
    ("base_url", "default", "expected"),
    [
        (None, OPENAI, DEFAULT_ENDPOINT),
        ("", None, DEFAULT_ENDPOINT),
        # the default's host on https, whatever the path: still the type's own endpoint
        ("https://api.openai.com/v2/", OPENAI, DEFAULT_ENDPOINT),
        ("https://API.OpenAI.com:443/v1/", OPENAI, DEFAULT_ENDPOINT),
        # plain http, another port, another host: not the default
        ("http://api.openai.com/v1/", OPENAI, Destination("api.openai.com", 80)),
        ("https://api.openai.com:8443/", OPENAI, Destination("api.openai.com", 8443)),
        ("https://attacker.example/v1", OPENAI, Destination("attacker.example", 443)),
        ("https://llm.internal:8443/v1", None, Destination("llm.internal", 8443)),
        # user info or characters two URL parsers may read differently: no host at all
        ("https://api.openai.com@attacker.example/", OPENAI, Destination("", None)),
        ("https://attacker.example\\@api.openai.com/", OPENAI, Destination("", None)),
        ("https://api%2eopenai.com/", OPENAI, Destination("", None)),
        (
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
            DEFAULT_ENDPOINT,
        ),
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
            Destination("bedrock-runtime.us-east-1.amazonaws.com", 443),
        ),
    ],
)
def test_where_a_spec_sends_its_values(
    base_url: str | None, default: str | None, expected: Destination
) -> None:
    assert destination_of(base_url, default) == expected


@pytest.mark.parametrize(
    ("hosts", "destination", "ok"),
    [
        # no annotation: the type's own default endpoint only
        (None, DEFAULT_ENDPOINT, True),
        (None, Destination("attacker.example", 443), False),
        (None, Destination("api.openai.com", 80), False),
        ("", Destination("attacker.example", 443), False),
        # a host alone: its default ports; host:port: that port
        ("llm.internal", Destination("llm.internal", 443), True),
        ("llm.internal", Destination("llm.internal", 80), True),
        ("llm.internal", Destination("llm.internal", 8443), False),
        ("api.openai.com, llm.internal:8443", Destination("llm.internal", 8443), True),
        ("LLM.Internal:8443", Destination("llm.internal", 8443), True),
        ("llm.internal:8443", Destination("llm.internal", 443), False),
        ("llm.internal", Destination("evil-llm.internal", 443), False),
        ("llm.internal", Destination("llm.internal.attacker.example", 443), False),
        ("[::1]:8443", Destination("::1", 8443), True),
        # entries that do not parse allow nothing
        ("https://llm.internal/", Destination("llm.internal", 443), False),
        ("user@llm.internal", Destination("llm.internal", 443), False),
        # the owner's explicit "anywhere"
        ("*", Destination("attacker.example", 443), True),
        ("*", Destination("", None), True),
        ("llm.internal", Destination("", None), False),
    ],
)
def test_the_opt_in_binds_the_destination(
    hosts: str | None, destination: Destination, ok: bool
) -> None:
    assert allows_destination(_bound(hosts), destination) is ok
    assert may_use(_bound(hosts), "p", SecretAccess.ANNOTATED, destination) is ok


def test_the_destination_does_not_widen_the_consumer() -> None:
    """Any host allowed, but for another AIProvider: still not usable."""
    assert not may_use(
        _bound("*", consumer="q"), "p", SecretAccess.ANNOTATED, Destination("llm.internal", 443)
    )


async def test_a_secret_bound_elsewhere_looks_missing() -> None:
    """A Secret allowing the consumer but not the destination: the missing Secret's answer,
    word for word (the hosts it allows are not revealed either)."""
    refs = [ref(0)]
    elsewhere = Destination("attacker.example", 443)

    class Bound(FakeReader):
        async def read_secret(self, namespace: str, name: str) -> SecretData | None:
            found = await super().read_secret(namespace, name)
            if found is None:
                return None
            return replace(
                found,
                annotations={
                    "aigateway.dev/allowed-aiproviders": "p",
                    "aigateway.dev/allowed-hosts": "llm.internal",
                },
            )

    present = Bound({"keys": {"a": CANARY.encode()}})
    out = await resolve(present, "ns", refs, consumer="p", destination=elsewhere)
    missing = await resolve(FakeReader({}), "ns", refs, consumer="p", destination=elsewhere)
    assert isinstance(out, list)
    assert isinstance(missing, list)
    assert [(p.reason, p.message) for p in out] == [(p.reason, p.message) for p in missing]
    assert "llm.internal" not in out[0].message
    allowed = Destination("llm.internal", 443)
    ok = await resolve(present, "ns", refs, consumer="p", destination=allowed)
    assert isinstance(ok, Resolved)
