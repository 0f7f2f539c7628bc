"""Secret resolution: turn ``secretKeyRef``\\ s into values held only in memory.

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

from aigateway_operator.api.common import Reason
from aigateway_operator.kube.client import SecretData


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

    reason: Reason
    field: str
    message: str


@dataclass(frozen=True)
class Resolved:
    """Plaintext values by reference, plus the revision of the Secrets they came from."""

    values: dict[SecretRef, bytes] = field(repr=False)
    revision: str
    secrets: tuple[str, ...]

    def get(self, ref: SecretRef) -> bytes:
        """The raw value; shape checks belong to ``validation.rules``."""
        return self.values[ref]


async def resolve(
    reader: SecretReader, namespace: str, refs: Sequence[SecretRef]
) -> Resolved | list[SecretProblem]:
    """Read every referenced Secret once; return all values or every problem found."""
    secrets: dict[str, SecretData | None] = {}
    for name in sorted({r.name for r in refs}):
        secrets[name] = await reader.read_secret(namespace, name)
    problems: list[SecretProblem] = []
    values: dict[SecretRef, bytes] = {}
    for ref in refs:
        secret = secrets[ref.name]
        if secret is None:
            problems.append(
                SecretProblem(
                    Reason.SECRET_NOT_FOUND,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} not found in namespace {namespace!r}",
                )
            )
            continue
        raw = secret.data.get(ref.key)
        if raw is None:
            problems.append(
                SecretProblem(
                    Reason.SECRET_KEY_MISSING,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} has no key {ref.key!r}",
                )
            )
            continue
        values[ref] = raw
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
