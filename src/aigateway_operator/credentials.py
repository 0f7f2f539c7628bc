"""Secret resolution: turn ``secretKeyRef``\\ s into values held only in memory.

Each reference names the spec field it came from, so every problem can say exactly which
entry is at fault (``spec.apiKeys[1].secretKeyRef``) and which Secret/key, never the value.
The revision is a digest of the identities (uid, resourceVersion) of the Secrets read: equal
revisions mean the operator consumed exactly the same Secret versions.

**Which Secrets may be used** (:class:`SecretAccess`). The operator can read every Secret of
the namespaces it watches; a user who may create an AIProvider must not get, through it, a
Secret they may not read themselves (Kubernetes' confused-deputy rule). So a Secret is used
only when it opts in: its annotation ``aigateway.dev/allowed-aiproviders`` is ``*`` or a
comma-separated list naming the AIProvider (``AIGW_SECRET_ACCESS=annotated``, the default).
Whoever may annotate a Secret may read it, so opting in gives nobody more than they have.
``AIGW_SECRET_ACCESS=namespace`` uses any Secret of the object's namespace (clusters without
namespace tenants). A gateway-key Secret the operator wrote is never usable as a provider
key, whatever its annotations.

A Secret that may not be used is reported exactly like a missing one (same reason, same
message): the author learns nothing about it — not that it exists, not its keys, not its
values' length or equality.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aigateway_operator.api.common import Reason
from aigateway_operator.api.identity import (
    AIGATEWAYCODERDKEY,
    ALLOWED_AIPROVIDERS_ANNOTATION,
    GATEWAY_KEY_OWNER_LABEL,
)
from aigateway_operator.config import SecretAccess
from aigateway_operator.kube.client import SecretData

__all__ = [
    "Resolved",
    "SecretAccess",
    "SecretProblem",
    "SecretReader",
    "SecretRef",
    "may_use",
    "resolve",
]


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


def _gateway_key_secret(secret: SecretData) -> bool:
    """A Secret the operator wrote for an AIGatewayCoderdKey (its label or its owner)."""
    return GATEWAY_KEY_OWNER_LABEL in secret.labels or any(
        kind == AIGATEWAYCODERDKEY.kind for kind in secret.owner_kinds
    )


def may_use(secret: SecretData, consumer: str, access: SecretAccess) -> bool:
    """Whether the AIProvider named ``consumer`` may use ``secret`` (see the module docs)."""
    if _gateway_key_secret(secret):
        return False
    if access is SecretAccess.NAMESPACE:
        return True
    allowed = secret.annotations.get(ALLOWED_AIPROVIDERS_ANNOTATION, "")
    names = {n.strip() for n in allowed.split(",") if n.strip()}
    return "*" in names or consumer in names


async def resolve(
    reader: SecretReader,
    namespace: str,
    refs: Sequence[SecretRef],
    *,
    consumer: str,
    access: SecretAccess = SecretAccess.ANNOTATED,
) -> Resolved | list[SecretProblem]:
    """Read every referenced Secret once; return all values or every problem found.

    ``consumer`` is the AIProvider's name; a Secret it may not use (:func:`may_use`) is
    treated as absent.
    """
    secrets: dict[str, SecretData | None] = {}
    for name in sorted({r.name for r in refs}):
        secret = await reader.read_secret(namespace, name)
        secrets[name] = secret if secret is not None and may_use(secret, consumer, access) else None
    problems: list[SecretProblem] = []
    values: dict[SecretRef, bytes] = {}
    for ref in refs:
        secret = secrets[ref.name]
        if secret is None:
            problems.append(
                SecretProblem(
                    Reason.SECRET_NOT_FOUND,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} was not found in namespace "
                    f"{namespace!r}, or does not allow this AIProvider to use it "
                    f"(annotation {ALLOWED_AIPROVIDERS_ANNOTATION})",
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
