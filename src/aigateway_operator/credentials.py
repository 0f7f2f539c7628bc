"""Secret resolution: turn ``secretKeyRef``\\ s into plaintext held only in memory.

Each reference names the spec field it came from, so every problem can say exactly which
entry is at fault (``spec.apiKeys[1].secretKeyRef``) and which Secret/key, never the value.
The revision is a digest of the identities (uid, resourceVersion) of the Secrets read: equal
revisions mean the operator consumed exactly the same Secret versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aigateway_operator.kube.client import SecretData

MAX_SECRET_VALUE_BYTES = 8192


class SecretReader(Protocol):
    async def read_secret(self, namespace: str, name: str) -> SecretData | None: ...


@dataclass(frozen=True)
class SecretRef:
    """A reference from a spec field to one key of a Secret in the object's namespace."""

    field: str
    name: str
    key: str

    def describe(self) -> str:
        return f"{self.field} (Secret {self.name!r}, key {self.key!r})"


@dataclass(frozen=True)
class SecretProblem:
    """Why a reference could not be resolved. Stable ``reason``; ``message`` names, never values."""

    reason: str
    field: str
    message: str


@dataclass(frozen=True)
class Resolved:
    """Plaintext values by reference, plus the revision of the Secrets they came from."""

    values: dict[SecretRef, str] = field(repr=False)
    revision: str
    secrets: tuple[str, ...]

    def get(self, ref: SecretRef) -> str:
        return self.values[ref]


REASON_SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a condition reason
REASON_SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105 - a condition reason
REASON_INVALID_SECRET_VALUE = "InvalidSecretValue"  # noqa: S105 - a condition reason


async def resolve(
    reader: SecretReader, namespace: str, refs: Sequence[SecretRef]
) -> Resolved | list[SecretProblem]:
    """Read every referenced Secret once; return all values or every problem found."""
    secrets: dict[str, SecretData | None] = {}
    for name in sorted({r.name for r in refs}):
        secrets[name] = await reader.read_secret(namespace, name)
    problems: list[SecretProblem] = []
    values: dict[SecretRef, str] = {}
    for ref in refs:
        secret = secrets[ref.name]
        if secret is None:
            problems.append(
                SecretProblem(
                    REASON_SECRET_NOT_FOUND,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} not found in namespace {namespace!r}",
                )
            )
            continue
        raw = secret.data.get(ref.key)
        if raw is None:
            problems.append(
                SecretProblem(
                    REASON_SECRET_KEY_MISSING,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} has no key {ref.key!r}",
                )
            )
            continue
        problem = _check_value(ref, raw)
        if problem is not None:
            problems.append(problem)
            continue
        values[ref] = raw.decode("utf-8")
    if problems:
        return problems
    ident = "\n".join(
        f"{name}\0{s.uid}\0{s.resource_version}" for name, s in sorted(secrets.items()) if s
    )
    return Resolved(
        values=values,
        revision=hashlib.sha256(ident.encode()).hexdigest()[:16],
        secrets=tuple(sorted(secrets)),
    )


def _check_value(ref: SecretRef, raw: bytes) -> SecretProblem | None:
    """Shape checks on a value, described without revealing it."""
    where = ref.describe()
    if len(raw) > MAX_SECRET_VALUE_BYTES:
        return SecretProblem(
            REASON_INVALID_SECRET_VALUE,
            ref.field,
            f"{where}: value is {len(raw)} bytes, more than {MAX_SECRET_VALUE_BYTES}",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return SecretProblem(
            REASON_INVALID_SECRET_VALUE, ref.field, f"{where}: value is not UTF-8 text"
        )
    if not text.strip():
        return SecretProblem(REASON_INVALID_SECRET_VALUE, ref.field, f"{where}: value is empty")
    if text != text.strip():
        return SecretProblem(
            REASON_INVALID_SECRET_VALUE,
            ref.field,
            f"{where}: value has leading or trailing whitespace (a newline from `echo`?)",
        )
    if any(not ch.isprintable() for ch in text):
        return SecretProblem(
            REASON_INVALID_SECRET_VALUE,
            ref.field,
            f"{where}: value contains control or non-printable characters",
        )
    return None
