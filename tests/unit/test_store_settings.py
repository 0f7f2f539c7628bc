"""Settings decoded as coderd's Go ``encoding/json`` decoder does, shape by shape."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigateway_operator.store import BedrockSettings
from aigateway_operator.store.canonical import settings_dict
from aigateway_operator.store.settings import (
    SettingsStatus,
    decode,
    encode,
    go_field_match,
)
from aigateway_operator.store.versions import CoderVersion

pytestmark = pytest.mark.unit

OK = '{"_type":"bedrock","_version":1,"region":"us-east-1"}'


@pytest.mark.parametrize(("blob"), [None, "", "null"])
def test_no_settings(blob: str | None) -> None:
    assert decode(blob).status is SettingsStatus.EMPTY


def test_a_valid_blob() -> None:
    d = decode(OK)
    assert d.status is SettingsStatus.BEDROCK
    assert d.view == {"_type": "bedrock", "_version": 1, "region": "us-east-1"}


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        # _version must be the JSON integer 1 (Python would take True == 1.0 == 1).
        ('{"_type":"bedrock","_version":true}', "_version is a JSON bool"),
        ('{"_type":"bedrock","_version":1.0}', "_version is a JSON number"),
        ('{"_type":"bedrock","_version":1e0}', "_version is a JSON number"),
        ('{"_type":"bedrock","_version":"1"}', "_version is a JSON string"),
        ('{"_type":"bedrock","_version":[1]}', "_version is a JSON array"),
        ('{"_type":"bedrock"}', "_version is missing"),
        ('{"_type":"bedrock","_version":null}', "_version is missing"),
        ('{"_type":"bedrock","_version":2}', "_version is not 1"),
        # _type must be a non-empty string.
        ('{"_version":1}', "missing _type"),
        ('{"_type":"","_version":1}', "missing _type"),
        ('{"_type":null,"_version":1}', "missing _type"),
        ('{"_type":5,"_version":1}', "_type is a JSON number"),
        ('{"_type":{"a":1},"_version":1}', "_type is a JSON object"),
        # Field types are exact: the Bedrock fields are strings.
        ('{"_type":"bedrock","_version":1,"region":7}', "field region is a JSON number"),
        ('{"_type":"bedrock","_version":1,"access_key":true}', "field access_key is a JSON bool"),
        ('{"_type":"bedrock","_version":1,"model":["m"]}', "field model is a JSON array"),
        ('{"_type":"bedrock","_version":1,"protocol":{}}', "field protocol is a JSON object"),
        # Go matches keys case-insensitively, so these are the same fields, with wrong types.
        ('{"_type":"bedrock","_version":1,"Region":7}', "field region is a JSON number"),
        ('{"_type":"bedrock","_VERSION":true}', "_version is a JSON bool"),
        ('{"_type":"bedrock","_version":1,"acce\u017fs_key":1}', "field access_key"),
        # Not an object, or not standard JSON.
        ("[]", "coderd needs an object"),
        ('"bedrock"', "coderd needs an object"),
        ("{", "not valid JSON"),
        ("  ", "not valid JSON"),
        ('{"_type":"bedrock","_version":1,"region":NaN}', "not valid JSON"),
    ],
)
def test_what_coderd_cannot_decode(blob: str, reason: str) -> None:
    d = decode(blob)
    assert d.status is SettingsStatus.UNDECODABLE
    assert reason in d.reason
    assert d.view is None


def test_reasons_never_carry_values() -> None:
    d = decode('{"_type":"bedrock","_version":1,"access_key":"AKIASECRETVALUE","region":9}')
    assert d.status is SettingsStatus.UNDECODABLE
    assert "AKIASECRETVALUE" not in d.reason


@pytest.mark.parametrize(
    "blob",
    [
        '{"_type":"claude_platform_aws","_version":1}',
        '{"_type":"upstream-headers","_version":1,"headers":{}}',
        '{"_type":"wif","_version":2}',
    ],
)
def test_an_unknown_type_is_not_ours_to_judge(blob: str) -> None:
    d = decode(blob)
    assert d.status is SettingsStatus.UNKNOWN_TYPE
    assert d.type_name in blob
    assert "not one this operator knows" in d.reason


def test_an_unknown_type_with_a_broken_version_is_undecodable() -> None:
    # The discriminators are decoded first: a type mismatch fails whatever _type says.
    assert decode('{"_type":"wif","_version":true}').status is SettingsStatus.UNDECODABLE


def test_go_rules_that_make_a_blob_decodable() -> None:
    # Case-insensitive keys (last one wins), null for the zero value, unknown keys ignored.
    d = decode(
        '{"_TYPE":"bedrock","_Version":1,"region":"a","REGION":"b","model":null,'
        '"access_\u212aey":"k","unknown":[1,{"x":2}],"small_fast_model":""}'
    )
    assert d.status is SettingsStatus.BEDROCK
    assert d.view == {"_type": "bedrock", "_version": 1, "region": "b", "access_key": "k"}


def test_fields_an_older_coder_does_not_know_are_ignored_like_go_does() -> None:
    v235 = CoderVersion.of(532).bedrock_fields
    blob = '{"_type":"bedrock","_version":1,"region":"r","protocol":5,"external_id":"x"}'
    assert decode(blob).status is SettingsStatus.UNDECODABLE  # v2.36 reads protocol
    d = decode(blob, v235)
    assert d.status is SettingsStatus.BEDROCK
    assert d.view == {"_type": "bedrock", "_version": 1, "region": "r"}


@pytest.mark.parametrize(
    ("key", "field", "match"),
    [
        ("region", "region", True),
        ("REGION", "region", True),
        ("Regio", "region", False),
        ("acce\u017fs_key", "access_key", True),  # long s folds to s
        ("access_\u212aey", "access_key", True),  # Kelvin sign folds to k
        ("\u0130d", "id", False),  # dotted capital I does not fold to i
        ("régión", "region", False),
    ],
)
def test_go_key_folding(key: str, field: str, match: bool) -> None:
    assert go_field_match(key, field) is match


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@given(
    region=text,
    model=text,
    small=text,
    access=text,
    secret=text,
    role=text,
    external=text,
    protocol=st.sampled_from(["", "invoke-model", "mantle"]),
)
def test_what_we_write_decodes_back_to_itself(
    region: str,
    model: str,
    small: str,
    access: str,
    secret: str,
    role: str,
    external: str,
    protocol: str,
) -> None:
    b = BedrockSettings(
        region=region,
        model=model,
        small_fast_model=small,
        access_key=access,
        access_key_secret=secret,
        role_arn=role,
        protocol=protocol,  # type: ignore[arg-type]
    )
    written = settings_dict(b, external)
    d = decode(encode(written))
    assert d.status is SettingsStatus.BEDROCK
    assert d.view == written
    # Invoke-model always carries both models (coderd's runtime drops it otherwise).
    assert written["model"]
    assert written["small_fast_model"]
