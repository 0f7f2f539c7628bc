"""Rules over resolved Secret values: precise findings that never contain the value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretBytes, SecretStr

from aigateway_operator.api import AIProviderSpec, Reason
from aigateway_operator.controllers.aiprovider.secrets import ProviderSecretRefs
from aigateway_operator.credentials import SecretRef
from aigateway_operator.validation import (
    MAX_SECRET_VALUE_BYTES,
    Finding,
    check_api_keys,
    check_aws_static_credentials,
    check_secret_text,
)

pytestmark = pytest.mark.unit

GOOD = "sk-ant-api03-0123456789abcdefABCDEF"
OTHER = "sk-proj-9876543210zyxwvuZYXWVU"


def ref(name: str, key: str = "api-key", field: str = "spec.x") -> SecretRef:
    """A reference as the pass resolves it (the checks take it as it is)."""
    return SecretRef(field, name, key)


def assert_no_value(findings: list[Finding], *values: str) -> None:
    for finding in findings:
        for value in values:
            if len(value.strip()) >= 3:
                assert value.strip() not in finding.message
                assert value.strip() not in finding.field


def test_good_keys_pass_in_every_representation() -> None:
    assert (
        check_api_keys(
            [
                (ref("a"), GOOD),
                (ref("b"), OTHER.encode()),
                (ref("c"), SecretStr("sk-third-key-value")),
                (ref("d"), SecretBytes(b"sk-fourth-key-value")),
            ]
        )
        == []
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        (b"", "is empty"),
        (GOOD + "\n", "leading or trailing whitespace"),
        (" " + GOOD, "leading or trailing whitespace"),
        (b"\xff\xfe-binary", "not valid UTF-8"),
        ("sk-\x00-nul", "non-printable"),
        ("sk-multi\nline-key", "non-printable"),
        ("k" * (MAX_SECRET_VALUE_BYTES + 1), "longer than 8192 bytes"),
        (b"k" * (MAX_SECRET_VALUE_BYTES + 1), "longer than 8192 bytes"),
    ],
)
def test_bad_values_are_named_by_index_and_reference(value: str | bytes, problem: str) -> None:
    findings = check_api_keys([(ref("ok"), GOOD), (ref("bad", "token"), value)])
    assert len(findings) == 1
    (finding,) = findings
    assert finding.reason is Reason.INVALID_SECRET_VALUE
    assert finding.field == "spec.apiKeys[1].secretKeyRef"
    assert "Secret 'bad' key 'token'" in finding.message
    assert problem in finding.message
    if isinstance(value, str):
        assert_no_value(findings, value)


def test_max_length_is_inclusive() -> None:
    assert check_api_keys([(ref("a"), "k" * MAX_SECRET_VALUE_BYTES)]) == []


def test_duplicates_name_both_entries_but_not_the_value() -> None:
    findings = check_api_keys([(ref("a"), GOOD), (ref("b"), OTHER), (ref("c", "other-key"), GOOD)])
    assert findings == [
        Finding(
            Reason.DUPLICATE_API_KEY,
            "spec.apiKeys[2].secretKeyRef",
            "spec.apiKeys[2].secretKeyRef (Secret 'c' key 'other-key') holds the same API key "
            "as spec.apiKeys[0] (Secret 'a' key 'api-key'); Coder rejects duplicate keys",
        )
    ]


def test_generic_text_check() -> None:
    assert check_secret_text(ref("a", field="spec.x"), "fine") == []
    (finding,) = check_secret_text(ref("a", field="spec.x"), "\tbad")
    assert finding.field == "spec.x"


def _aws_refs() -> tuple[SecretRef, SecretRef]:
    """The references of a Bedrock spec, built as the pass builds them (its reading)."""
    bedrock = {"region": "us-east-1", "credentialsSecretRef": {"name": "aws"}}
    refs = ProviderSecretRefs.of(AIProviderSpec.from_body({"type": "bedrock", "bedrock": bedrock}))
    assert refs.access_key_id is not None
    assert refs.secret_access_key is not None
    return refs.access_key_id, refs.secret_access_key


AWS_ID, AWS_SECRET = _aws_refs()
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_aws_static_credentials_accept_real_shapes() -> None:
    assert check_aws_static_credentials((AWS_ID, AKID), (AWS_SECRET, SECRET)) == []
    assert (
        check_aws_static_credentials((AWS_ID, AKID.encode()), (AWS_SECRET, SecretStr(SECRET))) == []
    )


@pytest.mark.parametrize(
    ("akid", "secret", "fields", "problem"),
    [
        ("ASIAIOSFODNN7EXAMPLE", SECRET, ["accessKeyIDKey"], "temporary access key id"),
        ("AKIA-not-an-id", SECRET, ["accessKeyIDKey"], "is not an AWS access key id"),
        (AKID + "\n", SECRET, ["accessKeyIDKey"], "whitespace"),
        (AKID, SECRET[:-1], ["secretAccessKeyKey"], "is not an AWS secret access key"),
        (AKID, '"' + SECRET[2:] + '"', ["secretAccessKeyKey"], "is not an AWS secret access key"),
        ("", "", ["accessKeyIDKey", "secretAccessKeyKey"], "is empty"),
    ],
)
def test_aws_static_credentials_findings(
    akid: str, secret: str, fields: list[str], problem: str
) -> None:
    findings = check_aws_static_credentials((AWS_ID, akid), (AWS_SECRET, secret))
    assert [f.field for f in findings] == [
        f"spec.bedrock.credentialsSecretRef.{name}" for name in fields
    ]
    assert all(f.reason is Reason.INVALID_SECRET_VALUE for f in findings)
    assert problem in findings[0].message
    assert "Secret 'aws' key 'AWS_" in findings[0].message
    assert_no_value(findings, akid, secret)


def _wording(count: int) -> str:
    """Every fixed phrase a finding can contain for ``count`` entries (values excluded)."""
    samples: list[str | bytes] = ["", " x", "\x00", b"\xff", "k" * (MAX_SECRET_VALUE_BYTES + 1)]
    text = []
    for sample in samples:
        entries = [(ref(f"s{i}"), sample) for i in range(count)]
        text += [f.message for f in check_api_keys(entries)]
    dup = [(ref(f"s{i}"), "same-value") for i in range(count)]
    text += [f.message for f in check_api_keys(dup)]
    return "\n".join(text)


#: Byte sequences UTF-8 forbids: never-valid bytes, an overlong form, a surrogate, a
#: truncated sequence, a lone continuation byte.
NOT_UTF8 = (b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80")


@st.composite
def _invalid_utf8(draw: st.DrawFn) -> bytes:
    """Text with a byte sequence UTF-8 forbids somewhere in it."""
    bad = draw(st.sampled_from(NOT_UTF8))
    head = draw(st.text(max_size=20)).encode()
    tail = draw(st.text(max_size=20)).encode()
    return head + bad + tail


@st.composite
def _oversized(draw: st.DrawFn) -> str | bytes:
    """A value over 8 KiB (as text or bytes, one- or multi-byte characters)."""
    unit = draw(st.text(min_size=1, max_size=6))
    repeat = MAX_SECRET_VALUE_BYTES // len(unit.encode()) + draw(st.integers(1, 40))
    value = unit * repeat
    return value.encode() if draw(st.booleans()) else value


VALUES = st.one_of(
    st.text(min_size=0, max_size=40),
    st.binary(max_size=40),
    _invalid_utf8(),
    _oversized(),
)


def _tokens(value: str | bytes) -> list[str]:
    """What a leak of ``value`` would show: the text, or each printable run of the bytes."""
    text = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return [t for t in text.replace("\ufffd", " ").split() if len(t) >= 4][:50]


@given(st.lists(VALUES, min_size=1, max_size=5))
def test_no_finding_ever_contains_a_value(values: list[str | bytes]) -> None:
    entries = [(ref(f"s{i}"), v) for i, v in enumerate(values)]
    findings = check_api_keys(entries)
    wording = _wording(len(values))
    for finding in findings:
        for value in values:
            for token in _tokens(value):
                # A token that is part of the fixed wording proves nothing either way.
                if token[:200] not in wording:
                    assert token[:200] not in finding.message
    assert len({f.field for f in findings}) == len(findings)
    by_field = {f.field: f for f in findings}
    for i, value in enumerate(values):
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        finding = by_field.get(f"spec.apiKeys[{i}].secretKeyRef")
        # The two shapes this property adds are always reported, and as what they are.
        if len(raw) > MAX_SECRET_VALUE_BYTES:
            assert finding is not None
            assert finding.reason is Reason.INVALID_SECRET_VALUE
            assert f"is longer than {MAX_SECRET_VALUE_BYTES} bytes" in finding.message
        elif isinstance(value, bytes) and not _is_utf8(value):
            assert finding is not None
            assert finding.reason is Reason.INVALID_SECRET_VALUE
            assert "is not valid UTF-8 text" in finding.message


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
