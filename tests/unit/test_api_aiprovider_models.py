"""The spec and status models: parsing, defaults, the mirrored CEL rules, safe errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from aigateway_operator.api import (
    DEFAULT_BEDROCK_MODEL,
    DEFAULT_BEDROCK_SMALL_FAST_MODEL,
    AIProviderSpec,
    AIProviderStatus,
    BedrockProtocol,
    CoderOwnedField,
    CoderOwnedStatus,
    Condition,
    ConditionStatus,
    DeletionPolicy,
    DriftPolicy,
    InvalidSpecError,
    InvalidStatusError,
    ProviderType,
    Reason,
)
from aigateway_operator.api.aiprovider import RULE_MESSAGES

pytestmark = pytest.mark.unit

ROLE = "arn:aws:iam::123456789012:role/BedrockRole"


def keys(*names: str) -> list[dict[str, Any]]:
    return [{"secretKeyRef": {"name": n, "key": "api-key"}} for n in names]


def test_minimal_spec_gets_crd_defaults() -> None:
    spec = AIProviderSpec.from_body({"type": "openai"})
    assert spec.type is ProviderType.OPENAI
    assert spec.enabled is True
    assert spec.deletion_policy is DeletionPolicy.DELETE
    assert spec.drift_policy is DriftPolicy.REVERT
    assert spec.adopt_existing is False
    assert spec.api_keys == ()
    assert spec.provider_name is None
    assert spec.to_body() == {
        "type": "openai",
        "enabled": True,
        "apiKeys": [],
        "deletionPolicy": "Delete",
        "adoptExisting": False,
        "driftPolicy": "Revert",
        "coderOwnedFields": [],
    }


def test_camel_case_aliases_and_round_trip() -> None:
    body = {
        "providerName": "claude",
        "type": "anthropic",
        "displayName": "Claude via Bedrock",
        "baseURL": "https://bedrock-runtime.eu-west-1.amazonaws.com",
        "bedrock": {
            "region": "eu-west-1",
            "roleARN": ROLE,
            "externalID": "tenant-42",
            "credentialsSecretRef": {"name": "aws-creds"},
        },
    }
    spec = AIProviderSpec.from_body(body)
    assert spec.bedrock is not None
    assert spec.bedrock.role_arn == ROLE
    assert spec.bedrock.external_id == "tenant-42"
    assert spec.bedrock.model == DEFAULT_BEDROCK_MODEL
    assert spec.bedrock.small_fast_model == DEFAULT_BEDROCK_SMALL_FAST_MODEL
    assert spec.bedrock.protocol is BedrockProtocol.INVOKE_MODEL
    ref = spec.bedrock.credentials_secret_ref
    assert ref is not None
    assert (ref.access_key_id_key, ref.secret_access_key_key) == (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
    again = AIProviderSpec.from_body(spec.to_body())
    assert again == spec
    assert spec.to_body()["bedrock"]["credentialsSecretRef"]["accessKeyIDKey"] == (
        "AWS_ACCESS_KEY_ID"
    )


def test_models_are_frozen() -> None:
    spec = AIProviderSpec.from_body({"type": "openai"})
    with pytest.raises(ValidationError):
        spec.enabled = False  # type: ignore[misc]


def test_unknown_spec_field_is_rejected() -> None:
    with pytest.raises(InvalidSpecError, match=r"spec\.apiKey: Extra inputs"):
        AIProviderSpec.from_body({"type": "openai", "apiKey": "sk-should-not-echo"})


def test_error_messages_never_echo_input() -> None:
    secretish = "sk-ant-THIS-MUST-NOT-APPEAR-0123456789"
    with pytest.raises(InvalidSpecError) as info:
        AIProviderSpec.from_body({"type": "openai", "providerName": secretish, "icon": 3})
    text = str(info.value)
    assert secretish not in text
    assert "spec.providerName" in text
    assert "spec.icon" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"type": "openai", "bedrock": {"region": "us-east-1"}}, RULE_MESSAGES["bedrock_type"]),
        ({"type": "bedrock"}, RULE_MESSAGES["bedrock_required"]),
        (
            {"type": "copilot", "apiKeys": keys("a")},
            "spec.apiKeys is forbidden when spec.type is copilot",
        ),
        (
            {"type": "bedrock", "apiKeys": keys("a"), "bedrock": {"region": "us-east-1"}},
            "spec.apiKeys is forbidden when spec.type is bedrock",
        ),
        (
            {"type": "anthropic", "apiKeys": keys("a"), "bedrock": {"region": "us-east-1"}},
            RULE_MESSAGES["api_keys_bedrock"],
        ),
        ({"type": "bedrock", "bedrock": {}}, RULE_MESSAGES["bedrock_configured"]),
        (
            {"type": "bedrock", "bedrock": {"roleARN": ROLE, "protocol": "mantle"}},
            RULE_MESSAGES["mantle_region"],
        ),
        (
            {"type": "bedrock", "bedrock": {"region": "us-east-1", "protocol": "mantle"}},
            RULE_MESSAGES["mantle_base_url"],
        ),
        ({"type": "bedrock", "bedrock": {"roleARN": ROLE}}, RULE_MESSAGES["invoke_model_region"]),
        (
            {"type": "bedrock", "bedrock": {"region": "us-east-1", "externalID": "abc"}},
            RULE_MESSAGES["external_id_role"],
        ),
        ({"type": "openai", "baseURL": "ftp://example.com"}, RULE_MESSAGES["base_url"]),
        ({"type": "openai", "baseURL": "https://"}, RULE_MESSAGES["base_url"]),
        ({"type": "openai", "apiKeys": keys("a", "a")}, RULE_MESSAGES["api_keys_unique"]),
        ({"type": "openai", "apiKeys": keys("a", "b", "c", "d", "e", "f")}, "spec.apiKeys"),
        ({"type": "nope"}, "spec.type"),
        ({"type": "bedrock", "bedrock": {"roleARN": "arn:aws:iam::12:role/x"}}, "roleARN"),
    ],
)
def test_mirrored_rules(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        AIProviderSpec.from_body(body)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "openai", "baseURL": ""},
        {"type": "openai-compat", "baseURL": "http://vllm.internal:8000/v1"},
        {"type": "copilot"},
        {"type": "anthropic", "apiKeys": keys("a", "b")},
        {"type": "bedrock", "bedrock": {"roleARN": ROLE}, "baseURL": "https://vpce.example.com"},
        {
            "type": "bedrock",
            "baseURL": "https://bedrock-mantle.us-east-1.api.aws/anthropic",
            "bedrock": {"region": "us-east-1", "protocol": "mantle"},
        },
        {"type": "bedrock", "bedrock": {"region": "us-gov-west-1"}},
    ],
)
def test_valid_specs(body: dict[str, Any]) -> None:
    spec = AIProviderSpec.from_body(body)
    dumped = spec.to_body()
    # Every field given is parsed into the field it names, with the value given ...
    _assert_kept(body, dumped)
    # ... what was not given takes the CRD's defaults ...
    assert dumped["enabled"] is body.get("enabled", True)
    assert dumped["deletionPolicy"] == body.get("deletionPolicy", "Delete")
    assert dumped["driftPolicy"] == body.get("driftPolicy", "Revert")
    assert dumped["adoptExisting"] is body.get("adoptExisting", False)
    assert len(spec.api_keys) == len(body.get("apiKeys", []))
    assert (spec.bedrock is None) == ("bedrock" not in body)
    # ... and what the operator writes back parses to the same spec.
    assert AIProviderSpec.from_body(dumped) == spec


def _assert_kept(given: Any, got: Any, path: str = "spec") -> None:
    if isinstance(given, dict):
        assert isinstance(got, dict), path
        for key, value in given.items():
            assert key in got, f"{path}.{key} was dropped"
            _assert_kept(value, got[key], f"{path}.{key}")
    elif isinstance(given, list):
        assert isinstance(got, list), path
        assert len(got) == len(given), path
        for i, (a, b) in enumerate(zip(given, got, strict=True)):
            _assert_kept(a, b, f"{path}[{i}]")
    else:
        assert got == given, f"{path}: {got!r} != {given!r}"


def test_effective_provider_name() -> None:
    spec = AIProviderSpec.from_body({"type": "openai"})
    assert spec.effective_provider_name("openai-prod") == "openai-prod"
    with pytest.raises(InvalidSpecError, match=r"metadata\.name"):
        spec.effective_provider_name("has.dots")
    with pytest.raises(InvalidSpecError, match=r"metadata\.name"):
        spec.effective_provider_name("a" * 64)
    named = AIProviderSpec.from_body({"type": "openai", "providerName": "gpt"})
    assert named.effective_provider_name("has.dots") == "gpt"


def test_status_parses_partial_and_ignores_unknown_fields() -> None:
    status = AIProviderStatus.from_body({"keyCount": 2, "kopf": {"progress": {}}})
    assert status.key_count == 2
    assert AIProviderStatus.from_body(None) == AIProviderStatus()
    with pytest.raises(InvalidStatusError, match=r"status\.keyCount"):
        AIProviderStatus.from_body({"keyCount": -1})


def test_status_body_uses_crd_names_and_rfc3339() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    status = AIProviderStatus.model_validate(
        {
            "observedGeneration": 3,
            "providerID": "6f1c",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Ready",
                    "message": "",
                    "lastTransitionTime": when,
                }
            ],
            "bedrock": {"callerARN": "arn:aws:iam::123456789012:user/x", "accountID": "1"},
        }
    )
    body = status.to_body()
    assert body["conditions"][0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert body["bedrock"] == {"callerARN": "arn:aws:iam::123456789012:user/x", "accountID": "1"}
    assert body["providerID"] == "6f1c"
    cond = status.condition("Ready")
    assert cond == Condition(
        type="Ready",
        status=ConditionStatus.TRUE,
        reason=Reason.READY,
        message="",
        last_transition_time=when,
    )
    assert status.condition("Synced") is None


def test_reasons_are_camel_case_and_unique() -> None:
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    for value in values:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", value), value


def test_coder_owned_fields_are_a_closed_set() -> None:
    spec = AIProviderSpec.from_body({"type": "openai", "coderOwnedFields": ["icon", "enabled"]})
    assert spec.coder_owned_fields == (CoderOwnedField.ICON, CoderOwnedField.ENABLED)
    assert spec.to_body()["coderOwnedFields"] == ["icon", "enabled"]
    for body, where in [
        (["baseURL"], "spec.coderOwnedFields.0"),  # never keys, settings or the base URL
        (["apiKeys"], "spec.coderOwnedFields.0"),
        (["bedrock"], "spec.coderOwnedFields.0"),
        (["enabled", "enabled"], "spec.coderOwnedFields: must not name a field twice"),
        (["enabled", "displayName", "icon", "enabled"], "spec.coderOwnedFields"),
    ]:
        with pytest.raises(InvalidSpecError, match=re.escape(where)):
            AIProviderSpec.from_body({"type": "openai", "coderOwnedFields": body})


def test_coder_owned_status_round_trips() -> None:
    status = AIProviderStatus.from_body(
        {"coderOwned": {"fields": ["enabled", "displayName"], "enabled": False, "displayName": ""}}
    )
    assert status.coder_owned == CoderOwnedStatus(
        fields=(CoderOwnedField.ENABLED, CoderOwnedField.DISPLAY_NAME),
        enabled=False,
        display_name="",
    )
    assert status.to_body()["coderOwned"] == {
        "fields": ["enabled", "displayName"],
        "enabled": False,
        "displayName": "",
    }
