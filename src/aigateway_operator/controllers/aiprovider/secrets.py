"""An AIProvider's Secret references, named, and their values resolved and checked.

Every reference of a spec has a name here (``api_keys[i]``, ``access_key_id``,
``secret_access_key``), so no code addresses them by position. Resolution reads each Secret
once (``credentials.resolve``); the value checks (``validation.rules``) run on what was read,
each with the reference it was read through (no API model is rebuilt for them); only then
are the values decoded into what the store takes. The references are built once per reading
of the spec (``reading.read_provider``) and handed in. The database is not touched
until this step succeeds. Values live in memory only and are excluded from ``repr``.

Every reference is also checked against where the spec sends the values
(:func:`spec_destination`: its ``baseURL``, or the type's own default endpoint), so a Secret
bound to other hosts reads as not found (``credentials.may_use``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aigateway_operator.api.aiprovider import AIProviderSpec
from aigateway_operator.config import SecretAccess
from aigateway_operator.credentials import (
    Destination,
    Resolved,
    SecretReader,
    SecretRef,
    destination_of,
    resolve,
)
from aigateway_operator.store import BedrockSettings, ProviderType, default_base_url
from aigateway_operator.validation.identity import StaticCredentials
from aigateway_operator.validation.rules import (
    Finding,
    check_api_keys,
    check_aws_static_credentials,
)

__all__ = [
    "ProviderSecretRefs",
    "ProviderSecrets",
    "resolve_provider_secrets",
    "spec_destination",
]

_CREDS = "spec.bedrock.credentialsSecretRef"


@dataclass(frozen=True)
class ProviderSecretRefs:
    """Every Secret reference of one AIProvider spec, by what it is for."""

    api_keys: tuple[SecretRef, ...]
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None

    @classmethod
    def of(cls, spec: AIProviderSpec) -> ProviderSecretRefs:
        api_keys = tuple(
            SecretRef(
                f"spec.apiKeys[{i}].secretKeyRef", k.secret_key_ref.name, k.secret_key_ref.key
            )
            for i, k in enumerate(spec.api_keys)
        )
        creds = spec.bedrock.credentials_secret_ref if spec.bedrock else None
        if creds is None:
            return cls(api_keys)
        return cls(
            api_keys,
            access_key_id=SecretRef(
                f"{_CREDS}.accessKeyIDKey", creds.name, creds.access_key_id_key
            ),
            secret_access_key=SecretRef(
                f"{_CREDS}.secretAccessKeyKey", creds.name, creds.secret_access_key_key
            ),
        )

    def all(self) -> list[SecretRef]:
        refs = list(self.api_keys)
        if self.access_key_id is not None and self.secret_access_key is not None:
            refs += [self.access_key_id, self.secret_access_key]
        return refs

    def secret_names(self) -> set[str]:
        return {r.name for r in self.all()}


@dataclass(frozen=True)
class ProviderSecrets:
    """The checked values behind a spec's references (in memory only)."""

    refs: ProviderSecretRefs
    api_keys: tuple[str, ...] = field(repr=False)
    """In spec order (the failover order)."""
    static: StaticCredentials | None
    revision: str
    """Digest of the Secret versions read: equal revisions mean the same inputs."""


def _check(refs: ProviderSecretRefs, resolved: Resolved) -> list[Finding]:
    findings = check_api_keys([(r, resolved.get(r)) for r in refs.api_keys])
    if refs.access_key_id is not None and refs.secret_access_key is not None:
        findings += check_aws_static_credentials(
            (refs.access_key_id, resolved.get(refs.access_key_id)),
            (refs.secret_access_key, resolved.get(refs.secret_access_key)),
        )
    return findings


def spec_destination(spec: AIProviderSpec) -> Destination:
    """Where Coder sends this spec's API keys or AWS keys: ``spec.baseURL``, or the type's
    own default endpoint (for Bedrock, the region's ``bedrock-runtime`` endpoint)."""
    bedrock = None
    if spec.bedrock is not None:
        bedrock = BedrockSettings(
            region=spec.bedrock.region or "", protocol=spec.bedrock.protocol.value
        )
    default = default_base_url(ProviderType(spec.type.value), bedrock)
    return destination_of(spec.base_url, default)


async def resolve_provider_secrets(
    reader: SecretReader,
    namespace: str,
    spec: AIProviderSpec,
    refs: ProviderSecretRefs,
    *,
    consumer: str,
    access: SecretAccess,
) -> ProviderSecrets | list[Finding]:
    """Read and check every value ``refs`` (``spec``'s references, as its reading built them)
    name; all of them, or every problem found.

    ``consumer`` is the AIProvider's name: only Secrets that allow it, and allow the spec's
    destination (:func:`spec_destination`), are read (``credentials.may_use``); the others
    are reported as not found.
    """
    resolved = await resolve(
        reader,
        namespace,
        refs.all(),
        consumer=consumer,
        access=access,
        destination=spec_destination(spec),
    )
    if isinstance(resolved, list):
        return [Finding(p.reason, p.field, p.message) for p in resolved]
    findings = _check(refs, resolved)
    if findings:
        return findings
    static = None
    if refs.access_key_id is not None and refs.secret_access_key is not None:
        static = StaticCredentials(
            resolved.get(refs.access_key_id).decode(),
            resolved.get(refs.secret_access_key).decode(),
        )
    return ProviderSecrets(
        refs=refs,
        api_keys=tuple(resolved.get(r).decode() for r in refs.api_keys),
        static=static,
        revision=resolved.revision,
    )
