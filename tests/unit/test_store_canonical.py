"""Pure rules of the store: validation, base_url defaults, settings JSON, names, secrets."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter

import pytest

from aigateway_operator.store import (
    BedrockSettings,
    DesiredProvider,
    DuplicateKey,
    InvalidKey,
    InvalidName,
    InvalidProvider,
    OwnerRef,
    ProviderType,
    generate_gateway_secret,
    provider_row_id,
    retiring_name,
)
from aigateway_operator.store.canonical import (
    DEFAULT_BEDROCK_MODEL,
    DEFAULT_BEDROCK_SMALL_FAST_MODEL,
    canonicalize,
    decode_settings,
    encode_settings,
    with_stored_external_id,
)
from aigateway_operator.store.gateway_keys import hash_secret
from aigateway_operator.store.versions import CoderVersion

pytestmark = pytest.mark.unit

T = ProviderType


def desired(**kw: object) -> DesiredProvider:
    base: dict[str, object] = {"name": "p", "type": T.OPENAI}
    base.update(kw)
    return DesiredProvider(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ptype", "bedrock", "url"),
    [
        (T.OPENAI, None, "https://api.openai.com/v1/"),
        (T.GOOGLE, None, "https://generativelanguage.googleapis.com/v1beta/openai/"),
        (T.OPENROUTER, None, "https://openrouter.ai/api/v1"),
        (T.VERCEL, None, "https://ai-gateway.vercel.sh/v1"),
        (T.ANTHROPIC, None, "https://api.anthropic.com/"),
        (T.COPILOT, None, "https://api.individual.githubcopilot.com"),
        (
            T.BEDROCK,
            BedrockSettings(region="eu-west-1"),
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
        ),
        (
            T.ANTHROPIC,
            BedrockSettings(region="us-east-1"),
            "https://bedrock-runtime.us-east-1.amazonaws.com",
        ),
    ],
)
def test_default_base_url(ptype: ProviderType, bedrock: BedrockSettings | None, url: str) -> None:
    assert canonicalize(desired(type=ptype, bedrock=bedrock)).base_url == url


@pytest.mark.parametrize("ptype", [T.AZURE, T.OPENAI_COMPAT])
def test_base_url_required_where_any_default_would_leak_the_key(ptype: ProviderType) -> None:
    with pytest.raises(InvalidProvider, match="baseURL is required"):
        canonicalize(desired(type=ptype))


def test_mantle_needs_explicit_base_url_and_region() -> None:
    with pytest.raises(InvalidProvider, match="region is required"):
        canonicalize(desired(type=T.BEDROCK, bedrock=BedrockSettings(protocol="mantle")))
    with pytest.raises(InvalidProvider, match="mantle protocol needs an explicit baseURL"):
        canonicalize(
            desired(type=T.BEDROCK, bedrock=BedrockSettings(region="x", protocol="mantle"))
        )


@pytest.mark.parametrize("url", ["ftp://x", "api.openai.com", "https://", " https://x"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(InvalidProvider, match="absolute http"):
        canonicalize(desired(base_url=url))


@pytest.mark.parametrize("name", ["", "A", "a--b", "-a", "a-", "a_b", "a\n"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidName):
        canonicalize(desired(name=name))


def test_key_rules_and_messages_never_contain_keys() -> None:
    with pytest.raises(InvalidKey, match="entry 2 is empty"):
        canonicalize(desired(api_keys=("sk-1", "")))
    with pytest.raises(InvalidKey, match="whitespace") as ws:
        canonicalize(desired(api_keys=(" sk-secret-value",)))
    assert "sk-secret-value" not in str(ws.value)
    with pytest.raises(DuplicateKey) as dup:
        canonicalize(desired(api_keys=("sk-secret-1", "sk-secret-2", "sk-secret-1")))
    assert dup.value.positions == (1, 3)
    assert "sk-secret" not in str(dup.value)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"type": T.BEDROCK}, "type bedrock needs bedrock settings"),
        ({"type": T.BEDROCK, "bedrock": BedrockSettings(model="m")}, "needs bedrock settings"),
        ({"type": T.OPENAI, "bedrock": BedrockSettings(region="r")}, "only allowed for types"),
        (
            {"type": T.BEDROCK, "bedrock": BedrockSettings(region="r"), "api_keys": ("k",)},
            "remove apiKeys",
        ),
        ({"type": T.COPILOT, "api_keys": ("k",)}, "copilot does not take apiKeys"),
        (
            {"type": T.BEDROCK, "bedrock": BedrockSettings(region="r", role_arn="arn:aws:s3:::b")},
            "IAM role ARN",
        ),
        (
            {"type": T.BEDROCK, "bedrock": BedrockSettings(region="r", access_key="AKIA")},
            "set together",
        ),
    ],
)
def test_type_rules(kw: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidProvider, match=match):
        canonicalize(desired(**kw))


def test_settings_json_is_coder_shaped() -> None:
    b = BedrockSettings(
        region="us-east-1",
        access_key="AKIAEXAMPLE",
        access_key_secret="s3cr3t",
        protocol="invoke-model",
    )
    canon = canonicalize(desired(type=T.BEDROCK, bedrock=b))
    text = canon.settings_json
    assert text is not None
    assert text == (
        '{"_type":"bedrock","_version":1,"access_key":"AKIAEXAMPLE",'
        '"access_key_secret":"s3cr3t","model":"global.anthropic.claude-sonnet-4-5-20250929-v1:0",'
        '"protocol":"invoke-model","region":"us-east-1",'
        '"small_fast_model":"global.anthropic.claude-haiku-4-5-20251001-v1:0"}'
    )
    assert decode_settings(text) == json.loads(text)
    assert canonicalize(desired()).settings_json is None  # no settings -> SQL NULL
    assert encode_settings({}) is None


@pytest.mark.parametrize(
    "blob",
    [None, "", "  ", "null", "[]", "{}", '{"_type":"x","_version":1}', '{"_type":"bedrock"}', "{"],
)
def test_decode_treats_anything_coderd_rejects_as_no_settings(blob: str | None) -> None:
    assert decode_settings(blob) is None


def test_external_id_is_server_owned() -> None:
    b = BedrockSettings(region="r", role_arn="arn:aws:iam::123456789012:role/R")
    d = desired(type=T.BEDROCK, bedrock=b)
    fresh = with_stored_external_id(canonicalize(d), d, None)
    assert fresh.settings is not None
    ext = fresh.settings["external_id"]
    assert re.fullmatch(r"[A-Z2-7]{26}", ext)
    kept = with_stored_external_id(canonicalize(d), d, fresh.settings)
    assert kept.settings == fresh.settings
    explicit = BedrockSettings(region="r", role_arn=b.role_arn, external_id="mine")
    d2 = desired(type=T.BEDROCK, bedrock=explicit)
    assert with_stored_external_id(canonicalize(d2), d2, fresh.settings).settings == {
        **fresh.settings,
        "external_id": "mine",
    }


def test_repr_hides_secrets() -> None:
    d = desired(api_keys=("sk-hidden-key",))
    b = BedrockSettings(access_key="AKIAHIDDEN", access_key_secret="hidden-secret")
    assert "sk-hidden-key" not in repr(d)
    assert "AKIAHIDDEN" not in repr(b)
    assert "hidden-secret" not in repr(b)
    assert "sk-hidden-key" not in repr(canonicalize(d))


def _owner(name: str, uid: str = "", instance: str = "test") -> OwnerRef:
    return OwnerRef(kind="AIProvider", namespace="ns", name=name, instance=instance, uid=uid)


def test_provider_row_id_is_deterministic_per_identity() -> None:
    """The same identity (a cluster rebuilt from Git: another uid) gets the same row id."""
    assert provider_row_id(_owner("a", "uid-1")) == provider_row_id(_owner("a", "uid-2"))
    assert provider_row_id(_owner("a")) != provider_row_id(_owner("b"))
    assert provider_row_id(_owner("a")) != provider_row_id(_owner("a", instance="other"))
    row_id = provider_row_id(_owner("a"))
    assert isinstance(row_id, uuid.UUID)  # a uuid column's value, name-based (v5)
    assert row_id.version == 5


def test_owner_audit_fields() -> None:
    o = OwnerRef(
        kind="AIProvider", namespace="ns", name="n", instance="test", uid="u", generation=3
    )
    assert o.key == ("test", "AIProvider", "ns", "n")
    assert o.audit_fields() == {
        "instance": "test",
        "uid": "u",
        "kind": "AIProvider",
        "namespace": "ns",
        "name": "n",
        "generation": 3,
        # No actor given: said plainly, never left out.
        "actor": "unknown",
        "actor_source": "unknown",
        "actor_reason": "not attributed by the operator",
    }


def test_gateway_secret_format_and_uniformity() -> None:
    secrets_ = [generate_gateway_secret() for _ in range(2000)]
    for s in secrets_:
        assert re.fullmatch(r"cgw_[0-9A-Za-z]{39}", s)
    assert len(set(secrets_)) == len(secrets_)
    counts = Counter("".join(s[4:] for s in secrets_))
    assert len(counts) == 62
    expected = 2000 * 39 / 62
    # Loose bound (~7 sigma): catches a biased alphabet, never flaky.
    assert all(abs(c - expected) < 7 * expected**0.5 for c in counts.values())
    assert len(hash_secret(secrets_[0])) == 32


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("gw", 1, "gw-retiring-1"),
        ("a" * 64, 2, "a" * 53 + "-retiring-2"),
        ("a" * 52 + "-b" + "c" * 10, 12, "a" * 52 + "-retiring-12"),
    ],
)
def test_retiring_name_fits_64_chars_and_the_check(name: str, n: int, expected: str) -> None:
    out = retiring_name(name, n)
    assert out == expected
    assert len(out) <= 64
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", out)


def test_anthropic_with_bedrock_settings_is_written_as_bedrock() -> None:
    """As coderd's backfill leaves such a row (reference §6.6): the two never fight."""
    c = canonicalize(desired(type=T.ANTHROPIC, bedrock=BedrockSettings(region="us-east-1")))
    assert c.type is T.BEDROCK
    assert c.base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert canonicalize(desired(type=T.ANTHROPIC, api_keys=("k",))).type is T.ANTHROPIC
    with pytest.raises(InvalidProvider, match="needs bedrock settings with a region"):
        canonicalize(
            desired(type=T.ANTHROPIC, base_url="https://x", bedrock=BedrockSettings(model="m"))
        )


ROLE = "arn:aws:iam::123456789012:role/R"


@pytest.mark.parametrize(
    ("migration", "bedrock", "match"),
    [
        (
            506,
            BedrockSettings(region="r", role_arn=ROLE),
            "roleARN is not supported by Coder v2.34",
        ),
        (
            532,
            BedrockSettings(region="r", protocol="mantle"),
            "protocol is not supported by Coder v2.35",
        ),
        (532, BedrockSettings(region="r", external_id="x"), "externalID is not supported"),
    ],
)
def test_fields_the_detected_coder_does_not_read_are_refused(
    migration: int, bedrock: BedrockSettings, match: str
) -> None:
    with pytest.raises(InvalidProvider, match=match):
        canonicalize(
            desired(type=T.BEDROCK, base_url="https://x", bedrock=bedrock),
            CoderVersion.of(migration),
        )


def test_an_older_coder_gets_no_field_it_ignores() -> None:
    v235 = CoderVersion.of(532)
    b = BedrockSettings(region="r", role_arn=ROLE, protocol="invoke-model")
    d = desired(type=T.BEDROCK, bedrock=b)
    c = with_stored_external_id(canonicalize(d, v235), d, None, v235)
    assert c.settings is not None
    assert set(c.settings) == {
        "_type",
        "_version",
        "region",
        "role_arn",
        "model",
        "small_fast_model",
    }
    newest = with_stored_external_id(canonicalize(d), d, None)
    assert newest.settings is not None
    assert {"protocol", "external_id"} <= set(newest.settings)


def test_invoke_model_bedrock_gets_coders_default_models_never_empty_ones() -> None:
    c = canonicalize(desired(type=T.BEDROCK, bedrock=BedrockSettings(region="r")))
    assert c.settings is not None
    assert c.settings["model"] == DEFAULT_BEDROCK_MODEL
    assert c.settings["small_fast_model"] == DEFAULT_BEDROCK_SMALL_FAST_MODEL
    own = BedrockSettings(region="r", model="m1", small_fast_model="m2")
    c = canonicalize(desired(type=T.BEDROCK, bedrock=own))
    assert c.settings is not None
    assert (c.settings["model"], c.settings["small_fast_model"]) == ("m1", "m2")
