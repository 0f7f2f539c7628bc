"""Checks the CRD cannot express: the *contents* of the Secrets a spec points at.

Admission sees only references; what is behind them is known once the Secrets are read. The
rules here catch values that Coder would accept but that fail later and far from the cause
(reference §4.2, §8.2): a trailing newline from ``echo`` makes every upstream call 401, and a
duplicate key makes Coder's key pool refuse to build the provider at all.

Pure functions over already-resolved values, each given with the reference it was read
through (:class:`KeyRef`: the spec field, the Secret and its key, as the pass resolved it; no
API model is rebuilt for a check). Findings name the field and the Secret reference, never
the value: findings become condition messages, Events and log lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretBytes, SecretStr

from aigateway_operator.api.common import Reason

__all__ = [
    "MAX_SECRET_VALUE_BYTES",
    "Finding",
    "KeyRef",
    "SecretValue",
    "check_api_keys",
    "check_aws_static_credentials",
    "check_secret_text",
]

#: Longest accepted secret value. Real provider keys are well under 1 KiB; anything near this
#: size is a certificate or a whole file pasted into the wrong key.
MAX_SECRET_VALUE_BYTES = 8 * 1024

#: AWS documents access key ids as 16-128 word characters; long-term ones start with AKIA,
#: temporary ones with ASIA (and need a session token we do not take).
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9_]{16,128}")
#: Every AWS partition issues 40-character base64-alphabet secret access keys.
_SECRET_ACCESS_KEY = re.compile(r"[A-Za-z0-9/+=]{40}")

SecretValue = str | bytes | SecretStr | SecretBytes


class KeyRef(Protocol):
    """A reference to one key of a Secret, as the pass resolved it (``credentials.SecretRef``
    is one): the spec field it came from, the Secret's name and the key."""

    @property
    def field(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str: ...


def _describe(ref: KeyRef) -> str:
    """How messages name the reference (never the value behind it)."""
    return f"Secret {ref.name!r} key {ref.key!r}"


@dataclass(frozen=True)
class Finding:
    """One problem: a stable reason, the offending field path, a secret-free message."""

    reason: Reason
    field: str
    message: str


def _reveal(value: SecretValue) -> str | bytes:
    if isinstance(value, SecretStr | SecretBytes):
        return value.get_secret_value()
    return value


def _text_problem(value: SecretValue) -> tuple[str | None, str]:
    """``(problem, text)``: a description of what is wrong, or ``None`` and the text."""
    raw = _reveal(value)
    if isinstance(raw, bytes):
        if len(raw) > MAX_SECRET_VALUE_BYTES:
            return f"is longer than {MAX_SECRET_VALUE_BYTES} bytes", ""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "is not valid UTF-8 text", ""
    else:
        text = raw
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SECRET_VALUE_BYTES:
            return f"is longer than {MAX_SECRET_VALUE_BYTES} bytes", ""
    if text == "":
        return "is empty", text
    if text.strip() != text:
        return (
            "has leading or trailing whitespace (often a newline from echo; "
            "use printf or kubectl create secret --from-literal)",
            text,
        )
    if not text.isprintable():
        return "contains control or non-printable characters", text
    return None, text


def check_secret_text(ref: KeyRef, value: SecretValue) -> list[Finding]:
    """Generic shape of any secret we hand to Coder: UTF-8, non-empty, trimmed, printable,
    at most :data:`MAX_SECRET_VALUE_BYTES`. Coder itself checks only the first two."""
    problem, _ = _text_problem(value)
    if problem is None:
        return []
    field = ref.field
    return [Finding(Reason.INVALID_SECRET_VALUE, field, f"{field} ({_describe(ref)}) {problem}")]


def check_api_keys(entries: Sequence[tuple[KeyRef, SecretValue]]) -> list[Finding]:
    """Check resolved ``spec.apiKeys`` values, given in spec order with their references.

    Each value must pass :func:`check_secret_text`; values must also be pairwise distinct,
    because Coder's key pool rejects duplicates and the provider then fails to load
    (reference §8.2). Two references to the same Secret key are stopped at admission; this
    catches the same value stored under two different keys.
    """
    findings: list[Finding] = []
    first_seen: dict[str, int] = {}
    for index, (ref, value) in enumerate(entries):
        field = f"spec.apiKeys[{index}].secretKeyRef"
        problem, text = _text_problem(value)
        if problem is not None:
            findings.append(
                Finding(Reason.INVALID_SECRET_VALUE, field, f"{field} ({_describe(ref)}) {problem}")
            )
            continue
        if text in first_seen:
            earlier = first_seen[text]
            findings.append(
                Finding(
                    Reason.DUPLICATE_API_KEY,
                    field,
                    f"{field} ({_describe(ref)}) holds the same API key as "
                    f"spec.apiKeys[{earlier}] ({_describe(entries[earlier][0])}); "
                    "Coder rejects duplicate keys",
                )
            )
            continue
        first_seen[text] = index
    return findings


def check_aws_static_credentials(
    access_key_id: tuple[KeyRef, SecretValue],
    secret_access_key: tuple[KeyRef, SecretValue],
) -> list[Finding]:
    """Check the values behind ``spec.bedrock.credentialsSecretRef``, each with its reference.

    Shape checks turn a pasted-wrong value into a precise message at once instead of an opaque
    ``SignatureDoesNotMatch`` from STS. A temporary (``ASIA``) key id is refused: it needs a
    session token, which neither this API nor Coder's settings carry, and it would expire.
    """
    findings: list[Finding] = []

    id_ref, id_value = access_key_id
    problem, key_id = _text_problem(id_value)
    if problem is None and not _ACCESS_KEY_ID.fullmatch(key_id):
        problem = "is not an AWS access key id (16-128 letters and digits)"
    if problem is None and key_id.startswith("ASIA"):
        problem = (
            "is a temporary access key id (ASIA...), which needs a session token; "
            "use a long-term key or the ambient identity (IRSA)"
        )
    if problem is not None:
        findings.append(
            Finding(
                Reason.INVALID_SECRET_VALUE,
                id_ref.field,
                f"{id_ref.field} ({_describe(id_ref)}) {problem}",
            )
        )

    secret_ref, secret_value = secret_access_key
    problem, secret = _text_problem(secret_value)
    if problem is None and not _SECRET_ACCESS_KEY.fullmatch(secret):
        problem = "is not an AWS secret access key (40 characters of A-Z, a-z, 0-9, /, + and =)"
    if problem is not None:
        findings.append(
            Finding(
                Reason.INVALID_SECRET_VALUE,
                secret_ref.field,
                f"{secret_ref.field} ({_describe(secret_ref)}) {problem}",
            )
        )
    return findings
