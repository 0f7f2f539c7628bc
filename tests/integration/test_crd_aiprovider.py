"""The AIProvider CRD on a real kube-apiserver: what it rejects, accepts, defaults and keeps.

The API server is the final judge of a CRD (structural schema, CEL compilation and cost,
defaulting, pruning), so the contract is tested here rather than against a mock. Every
rejection must be a 422 whose message names the offending field: that text is all a user
sees from ``kubectl apply``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from aigateway_operator.api import (
    AIProviderSpec,
    AIProviderStatus,
    APIKeyStatus,
    BedrockIdentityStatus,
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    SecretKeyRef,
)
from aigateway_operator.api.aiprovider import (
    EXTERNAL_ID_PATTERN,
    PROVIDER_NAME_PATTERN,
    REGION_PATTERN,
    ROLE_ARN_PATTERN,
)
from aigateway_operator.api.common import DNS_SUBDOMAIN_PATTERN, SECRET_DATA_KEY_PATTERN
from aigateway_operator.api.identity import AIPROVIDER
from tests.support.crd import Objects, rejected
from tests.support.crd import body as crd_body

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/BedrockRole"
CROSS_ACCOUNT_ROLE = "arn:aws:iam::210987654321:role/service-role/team-a/BedrockInvoke"


def keys(*names: str, key: str = "api-key") -> list[dict[str, Any]]:
    return [{"secretKeyRef": {"name": n, "key": key}} for n in names]


def body(name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    return crd_body(AIPROVIDER.kind, name, spec)


def raw_get(api: client.ApiClient, path: str, accept: str = "application/json") -> Any:
    """GET ``path`` and return the decoded JSON, exactly as the server sent it."""
    method, url, headers, _, _ = api.param_serialize(
        "GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, headers)
    response.read()
    assert response.status == 200, response.data
    return json.loads(response.data)


@pytest.fixture
def objects(k8s_api: client.ApiClient, namespace: str) -> Objects:
    return Objects(k8s_api, namespace, AIPROVIDER.plural, AIPROVIDER.kind, "p")


# (id, metadata.name, spec, substrings the message must contain)
INVALID: list[tuple[str, str, dict[str, Any] | None, list[str]]] = [
    ("no-spec", "p", None, ["spec: Required value"]),
    ("no-type", "p", {"enabled": True}, ["spec.type: Required value"]),
    ("bad-type", "p", {"type": "mistral"}, ['spec.type: Unsupported value: "mistral"']),
    (
        "name-pattern",
        "p",
        {"type": "openai", "providerName": "Bad_Name"},
        [f"spec.providerName in body should match '{PROVIDER_NAME_PATTERN}'"],
    ),
    (
        "name-double-dash",
        "p",
        {"type": "openai", "providerName": "a--b"},
        [f"spec.providerName in body should match '{PROVIDER_NAME_PATTERN}'"],
    ),
    (
        "name-too-long",
        "p",
        {"type": "openai", "providerName": "a" * 64},
        ["spec.providerName: Too long: may not be more than 63 bytes"],
    ),
    (
        "metadata-name-not-a-provider-name",
        "has.dots",
        {"type": "openai"},
        ["metadata.name must be a valid Coder provider name"],
    ),
    (
        "url-scheme",
        "p",
        {"type": "openai", "baseURL": "ftp://example.com"},
        ["spec.baseURL", "spec.baseURL must be an absolute http:// or https:// URL"],
    ),
    (
        "url-garbage",
        "p",
        {"type": "openai", "baseURL": "not a url"},
        ["spec.baseURL must be an absolute"],
    ),
    ("url-no-host", "p", {"type": "openai", "baseURL": "https://"}, ["spec.baseURL must be"]),
    ("url-relative", "p", {"type": "openai", "baseURL": "/v1/chat"}, ["spec.baseURL must be"]),
    (
        "url-too-long",
        "p",
        {"type": "openai", "baseURL": "https://example.com/" + "a" * 2048},
        ["spec.baseURL: Too long: may not be more than 2048 bytes"],
    ),
    (
        "too-many-keys",
        "p",
        {"type": "openai", "apiKeys": keys("a", "b", "c", "d", "e", "f")},
        ["spec.apiKeys: Too many: 6: must have at most 5 items"],
    ),
    (
        "duplicate-key-ref",
        "p",
        {"type": "openai", "apiKeys": keys("a", "a")},
        ["spec.apiKeys must not reference the same Secret key twice"],
    ),
    (
        "key-secret-name",
        "p",
        {"type": "openai", "apiKeys": keys("Not_DNS")},
        [f"spec.apiKeys[0].secretKeyRef.name in body should match '{DNS_SUBDOMAIN_PATTERN}'"],
    ),
    (
        "key-data-key",
        "p",
        {"type": "openai", "apiKeys": keys("a", key="has space")},
        [f"spec.apiKeys[0].secretKeyRef.key in body should match '{SECRET_DATA_KEY_PATTERN}'"],
    ),
    (
        "key-missing-key",
        "p",
        {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "a"}}]},
        ["spec.apiKeys[0].secretKeyRef.key: Required value"],
    ),
    (
        "key-missing-ref",
        "p",
        {"type": "openai", "apiKeys": [{}]},
        ["spec.apiKeys[0].secretKeyRef: Required value"],
    ),
    (
        "keys-on-copilot",
        "p",
        {"type": "copilot", "apiKeys": keys("a")},
        ["spec.apiKeys is forbidden when spec.type is copilot"],
    ),
    (
        "keys-on-bedrock-type",
        "p",
        {"type": "bedrock", "apiKeys": keys("a"), "bedrock": {"region": "us-east-1"}},
        ["spec.apiKeys is forbidden when spec.type is bedrock"],
    ),
    (
        "keys-with-bedrock-settings",
        "p",
        {"type": "anthropic", "apiKeys": keys("a"), "bedrock": {"region": "us-east-1"}},
        ["spec.apiKeys is forbidden when spec.bedrock is set"],
    ),
    (
        "bedrock-on-openai",
        "p",
        {"type": "openai", "bedrock": {"region": "us-east-1"}},
        ["spec.bedrock is allowed only when spec.type is anthropic or bedrock"],
    ),
    (
        "bedrock-type-without-bedrock",
        "p",
        {"type": "bedrock"},
        ["spec.bedrock is required when spec.type is bedrock"],
    ),
    (
        "bedrock-not-configured",
        "p",
        {"type": "bedrock", "bedrock": {}},
        ["spec.bedrock must set at least one of region, roleARN or credentialsSecretRef"],
    ),
    (
        "bedrock-only-models",
        "p",
        {"type": "bedrock", "bedrock": {"model": "m", "smallFastModel": "s"}},
        ["spec.bedrock must set at least one of region, roleARN or credentialsSecretRef"],
    ),
    (
        "mantle-without-region",
        "p",
        {
            "type": "bedrock",
            "baseURL": "https://bedrock-mantle.us-east-1.api.aws/anthropic",
            "bedrock": {"roleARN": ROLE, "protocol": "mantle"},
        },
        ["spec.bedrock.region is required when spec.bedrock.protocol is mantle"],
    ),
    (
        "mantle-without-base-url",
        "p",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "protocol": "mantle"}},
        ["spec.baseURL is required when spec.bedrock.protocol is mantle"],
    ),
    (
        "invoke-model-without-region-or-url",
        "p",
        {"type": "bedrock", "bedrock": {"roleARN": ROLE}},
        ["spec.bedrock.region is required for the invoke-model protocol"],
    ),
    (
        "bad-protocol",
        "p",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "protocol": "converse"}},
        ['spec.bedrock.protocol: Unsupported value: "converse"'],
    ),
    (
        "region-uppercase",
        "p",
        {"type": "bedrock", "bedrock": {"region": "US-EAST-1"}},
        [f"spec.bedrock.region in body should match '{REGION_PATTERN}'"],
    ),
    (
        "region-no-dashes",
        "p",
        {"type": "bedrock", "bedrock": {"region": "useast1"}},
        [f"spec.bedrock.region in body should match '{REGION_PATTERN}'"],
    ),
    (
        "arn-user-not-role",
        "p",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "roleARN": "arn:aws:iam::123456789012:user/x"},
        },
        [f"spec.bedrock.roleARN in body should match '{ROLE_ARN_PATTERN}'"],
    ),
    (
        "arn-unknown-partition",
        "p",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "roleARN": "arn:aws-iso:iam::123456789012:role/x"},
        },
        [f"spec.bedrock.roleARN in body should match '{ROLE_ARN_PATTERN}'"],
    ),
    (
        "arn-short-account",
        "p",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "roleARN": "arn:aws:iam::12345:role/x"},
        },
        [f"spec.bedrock.roleARN in body should match '{ROLE_ARN_PATTERN}'"],
    ),
    (
        "arn-wrong-service",
        "p",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "roleARN": "arn:aws:sts::123456789012:role/x"},
        },
        [f"spec.bedrock.roleARN in body should match '{ROLE_ARN_PATTERN}'"],
    ),
    (
        "arn-no-role-name",
        "p",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "roleARN": "arn:aws:iam::123456789012:role/"},
        },
        [f"spec.bedrock.roleARN in body should match '{ROLE_ARN_PATTERN}'"],
    ),
    (
        "external-id-too-short",
        "p",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "roleARN": ROLE, "externalID": "a"}},
        ["spec.bedrock.externalID in body should be at least 2 chars long"],
    ),
    (
        "external-id-bad-chars",
        "p",
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "roleARN": ROLE, "externalID": "has space"},
        },
        [f"spec.bedrock.externalID in body should match '{EXTERNAL_ID_PATTERN}'"],
    ),
    (
        "external-id-without-role",
        "p",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "externalID": "tenant-1"}},
        ["spec.bedrock.externalID requires spec.bedrock.roleARN"],
    ),
    (
        "credentials-without-name",
        "p",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "credentialsSecretRef": {}}},
        ["spec.bedrock.credentialsSecretRef.name: Required value"],
    ),
    (
        "credentials-bad-key",
        "p",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-east-1",
                "credentialsSecretRef": {"name": "aws", "accessKeyIDKey": "bad key"},
            },
        },
        [
            "spec.bedrock.credentialsSecretRef.accessKeyIDKey in body should match "
            f"'{SECRET_DATA_KEY_PATTERN}'"
        ],
    ),
    (
        "empty-model",
        "p",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "model": ""}},
        ["spec.bedrock.model in body should be at least 1 chars long"],
    ),
    (
        "bad-deletion-policy",
        "p",
        {"type": "openai", "deletionPolicy": "Retain"},
        ['spec.deletionPolicy: Unsupported value: "Retain"'],
    ),
    (
        "bad-drift-policy",
        "p",
        {"type": "openai", "driftPolicy": "Ignore"},
        ['spec.driftPolicy: Unsupported value: "Ignore"'],
    ),
    (
        "enabled-not-bool",
        "p",
        {"type": "openai", "enabled": "yes"},
        ["spec.enabled in body must be of type boolean"],
    ),
    (
        "display-name-too-long",
        "p",
        {"type": "openai", "displayName": "x" * 257},
        ["spec.displayName: Too long: may not be more than 256 bytes"],
    ),
]


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [pytest.param(n, s, e, id=i) for i, n, s, e in INVALID],
)
def test_invalid_shapes_are_rejected(
    objects: Objects, name: str, spec: dict[str, Any] | None, expected: list[str]
) -> None:
    message = rejected(lambda: objects.create(spec, name=name))
    for text in expected:
        assert text in message, message


VALID: list[tuple[str, str, dict[str, Any]]] = [
    (
        "openai",
        "openai",
        {
            "type": "openai",
            "apiKeys": keys("openai-primary", "openai-fallback"),
            "displayName": "OpenAI",
            "icon": "/icon/openai.svg",
        },
    ),
    ("anthropic", "anthropic", {"type": "anthropic", "apiKeys": keys("anthropic")}),
    (
        "azure",
        "azure",
        {
            "type": "azure",
            "baseURL": "https://my-resource.openai.azure.com/openai/v1",
            "apiKeys": keys("azure"),
        },
    ),
    (
        "google",
        "google",
        {
            "type": "google",
            "baseURL": "https://generativelanguage.googleapis.com/v1beta/openai/",
            "apiKeys": keys("gemini"),
        },
    ),
    (
        "openai-compat",
        "vllm",
        {"type": "openai-compat", "baseURL": "http://vllm.ml.svc:8000/v1", "apiKeys": keys("v")},
    ),
    ("openrouter", "openrouter", {"type": "openrouter", "apiKeys": keys("openrouter")}),
    ("vercel", "vercel", {"type": "vercel", "apiKeys": keys("vercel"), "enabled": False}),
    ("copilot", "copilot", {"type": "copilot"}),
    ("empty-base-url", "default-url", {"type": "openai", "baseURL": "", "apiKeys": keys("o")}),
    (
        "provider-name-differs-from-metadata",
        "gpt.prod.team-a",
        {"type": "openai", "providerName": "gpt-prod", "apiKeys": keys("o")},
    ),
    (
        "bedrock-irsa",
        "bedrock-irsa",
        {"type": "bedrock", "bedrock": {"region": "us-east-1", "roleARN": ROLE}},
    ),
    (
        "bedrock-cross-account-role",
        "bedrock-xacct",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "eu-central-1",
                "roleARN": CROSS_ACCOUNT_ROLE,
                "externalID": "aigw:tenant/7f3a@example.com",
            },
        },
    ),
    (
        "bedrock-static-keys",
        "bedrock-static",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-west-2",
                "model": "us.anthropic.claude-opus-4-1-20250805-v1:0",
                "smallFastModel": "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                "credentialsSecretRef": {"name": "aws-creds"},
            },
        },
    ),
    (
        "bedrock-mantle",
        "bedrock-mantle",
        {
            "type": "bedrock",
            "baseURL": "https://bedrock-mantle.us-east-1.api.aws/anthropic",
            "bedrock": {"region": "us-east-1", "protocol": "mantle"},
        },
    ),
    (
        "bedrock-endpoint-without-region",
        "bedrock-vpce",
        {
            "type": "bedrock",
            "baseURL": "https://vpce-0abc.bedrock-runtime.us-east-1.vpce.amazonaws.com",
            "bedrock": {"roleARN": ROLE},
        },
    ),
    (
        "anthropic-through-bedrock",
        "claude-bedrock",
        {"type": "anthropic", "bedrock": {"region": "ap-southeast-2"}},
    ),
    (
        "govcloud",
        "bedrock-gov",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-gov-west-1",
                "roleARN": "arn:aws-us-gov:iam::123456789012:role/Bedrock",
            },
        },
    ),
    (
        "china",
        "bedrock-cn",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "cn-north-1",
                "roleARN": "arn:aws-cn:iam::123456789012:role/Bedrock",
            },
        },
    ),
]


def expected_stored_spec(sent: dict[str, Any]) -> dict[str, Any]:
    """What the server should store: the model's defaults must be the server's defaults."""
    expected = AIProviderSpec.from_body(sent).to_body()
    for empty_list in ("apiKeys", "coderOwnedFields"):  # no server default for either
        if not expected.get(empty_list):
            expected.pop(empty_list, None)
    if sent.get("baseURL") == "":
        expected["baseURL"] = ""
    return expected


@pytest.mark.parametrize(("name", "spec"), [pytest.param(n, s, id=i) for i, n, s in VALID])
def test_valid_examples_are_accepted_with_the_models_defaults(
    objects: Objects, name: str, spec: dict[str, Any]
) -> None:
    created = objects.create(spec, name=name)
    assert created["spec"] == expected_stored_spec(spec)
    AIProviderSpec.from_body(created["spec"])  # and the operator can read it back


def test_server_defaults(objects: Objects) -> None:
    created = objects.create({"type": "bedrock", "bedrock": {"region": "us-east-1"}})
    assert created["spec"] == {
        "type": "bedrock",
        "enabled": True,
        "deletionPolicy": "Delete",
        "adoptExisting": False,
        "driftPolicy": "Revert",
        "bedrock": {
            "region": "us-east-1",
            "protocol": "invoke-model",
            "model": "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "smallFastModel": "global.anthropic.claude-haiku-4-5-20251001-v1:0",
        },
    }
    static = objects.create(
        {
            "type": "bedrock",
            "bedrock": {"region": "us-east-1", "credentialsSecretRef": {"name": "a"}},
        },
        name="static",
    )
    assert static["spec"]["bedrock"]["credentialsSecretRef"] == {
        "name": "a",
        "accessKeyIDKey": "AWS_ACCESS_KEY_ID",
        "secretAccessKeyKey": "AWS_SECRET_ACCESS_KEY",
    }


def test_secret_refs_have_no_namespace_field(objects: Objects) -> None:
    spec = {
        "type": "openai",
        "apiKeys": [{"secretKeyRef": {"name": "a", "key": "k", "namespace": "x"}}],
    }
    with pytest.raises(ApiException) as info:
        objects.create(spec, field_validation="Strict")
    assert info.value.status == 400
    message = json.loads(info.value.body)["message"]
    assert 'unknown field "spec.apiKeys[0].secretKeyRef.namespace"' in message
    # Without strict validation the field is pruned, never stored.
    created = objects.create(spec)
    assert created["spec"]["apiKeys"] == keys("a", key="k")


@pytest.mark.parametrize(
    ("initial", "change", "expected"),
    [
        pytest.param(
            {"type": "openai"}, {"type": "anthropic"}, "spec.type is immutable", id="type"
        ),
        pytest.param(
            {"type": "openai", "providerName": "one"},
            {"providerName": "two"},
            "spec.providerName is immutable",
            id="provider-name-changed",
        ),
        pytest.param(
            {"type": "openai"},
            {"providerName": "other"},
            "spec.providerName cannot be added or removed after creation",
            id="provider-name-added",
        ),
        pytest.param(
            {"type": "openai", "providerName": "one"},
            {"providerName": None},
            "spec.providerName cannot be added or removed after creation",
            id="provider-name-removed",
        ),
    ],
)
def test_identity_fields_are_immutable(
    objects: Objects, initial: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    objects.create(initial)
    message = rejected(lambda: objects.patch_spec(change))
    assert expected in message, message


def test_mutable_fields_can_change(objects: Objects) -> None:
    objects.create({"type": "openai", "providerName": "gpt", "apiKeys": keys("a")})
    patched = objects.patch_spec(
        {
            "enabled": False,
            "displayName": "GPT",
            "baseURL": "https://proxy.example.com/v1",
            "apiKeys": keys("b", "a"),
            "driftPolicy": "Report",
            "deletionPolicy": "Orphan",
        }
    )
    assert patched["spec"]["apiKeys"] == keys("b", "a")
    assert patched["metadata"]["generation"] == 2


def full_status() -> AIProviderStatus:
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    conditions = [
        Condition(
            type=t,
            status=ConditionStatus.TRUE,
            reason=r,
            message=f"{t} ok",
            last_transition_time=when,
            observed_generation=1,
        )
        for t, r in (
            (ConditionType.SECRETS_RESOLVED, Reason.RESOLVED),
            (ConditionType.CREDENTIALS_VALID, Reason.VERIFIED),
            (ConditionType.SYNCED, Reason.SYNCED),
            (ConditionType.READY, Reason.READY),
        )
    ]
    return AIProviderStatus(
        observed_generation=1,
        provider_id="0b6a4a55-7d0e-4d3a-9d86-0d2c5f3b5e11",
        provider_name="gpt",
        key_count=1,
        conditions=tuple(conditions),
        api_keys=(
            APIKeyStatus(
                id="5f0c7c1e-2a43-4b8e-8d7d-0f6f0b2d1a11",
                masked="sk-a...cdef",
                secret_key_ref=SecretKeyRef(name="openai", key="api-key"),
                fingerprint="hmac-sha256:3a7bd3e2360a3d29eea436fcfb7e44c7",
                created_at=when,
            ),
        ),
        bedrock=BedrockIdentityStatus(
            caller_arn="arn:aws:sts::123456789012:assumed-role/irsa/op",
            assumed_role_arn="arn:aws:sts::210987654321:assumed-role/Bedrock/aigw-operator-verify",
            account_id="123456789012",
            expiration=when,
            last_verified_at=when,
        ),
        encryption_key_digest="1a2b3c4",
        observed_secrets_revision="sha256:9f86d081884c7d659a2feaa0c55ad015",
        last_synced_at=when,
    )


def test_full_status_is_kept_not_pruned(objects: Objects) -> None:
    objects.create({"type": "openai", "apiKeys": keys("openai")})
    sent = full_status().to_body()
    objects.patch_status(sent)
    stored = objects.get()
    assert stored["status"] == sent
    assert AIProviderStatus.from_body(stored["status"]) == full_status()


def test_status_is_a_subresource(objects: Objects) -> None:
    spec = {"type": "openai"}
    created = objects.api.create_namespaced_custom_object(
        AIPROVIDER.group,
        AIPROVIDER.version,
        objects.namespace,
        AIPROVIDER.plural,
        {**body("p", spec), "status": {"keyCount": 3}},
    )
    assert "status" not in created
    bad = {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "X", "message": ""}]}
    message = rejected(lambda: objects.patch_status(bad))
    assert "status.conditions[0].status" in message
    assert "status.conditions[0].lastTransitionTime: Required value" in message


def test_printer_columns(k8s_api: client.ApiClient, objects: Objects) -> None:
    base_url = "https://llm.example.com/v1"
    objects.create(
        {"type": "openai", "providerName": "gpt", "apiKeys": keys("openai"), "baseURL": base_url}
    )
    objects.patch_status(full_status().to_body())
    table = raw_get(
        k8s_api,
        f"/apis/{AIPROVIDER.api_version}/namespaces/{objects.namespace}/{AIPROVIDER.plural}",
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == [
        "Name", "Provider", "Type", "Enabled", "Keys", "Ready", "Reason",
        "Base URL", "Synced", "Last Sync", "Age",
    ]  # fmt: skip
    # `kubectl get` hides priority > 0; `-o wide` shows them.
    wide = [c["name"] for c in table["columnDefinitions"] if c.get("priority", 0) > 0]
    assert wide == ["Base URL", "Synced", "Last Sync"]
    (row,) = table["rows"]
    assert row["cells"][:7] == ["p", "gpt", "openai", True, 1, "True", "Ready"]
    assert row["cells"][7:9] == [base_url, "True"]
    assert re.fullmatch(r"\d+[a-z]\w*", row["cells"][9])  # lastSyncedAt as an age ("210d")


def _properties(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, child in (node.get("properties") or {}).items():
        found.append((f"{path}.{name}", child))
        found += _properties(child, f"{path}.{name}")
    if node.get("items"):
        found += _properties(node["items"], f"{path}[]")
    return found


def test_every_field_is_explained(k8s_api: client.ApiClient) -> None:
    """What ``kubectl explain aiproviders.spec...`` prints comes from these descriptions."""
    crd = raw_get(
        k8s_api,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        f"{AIPROVIDER.plural}.{AIPROVIDER.group}",
    )
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["description"]
    undocumented = [
        p
        for p, node in _properties(schema, "")
        if not node.get("description") and p != ".metadata"  # the server forbids one there
    ]
    assert undocumented == []
