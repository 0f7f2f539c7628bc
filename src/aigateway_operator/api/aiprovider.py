"""Typed mirror of the ``AIProvider`` CRD (``crds/aigateway.dev_aiproviders.yaml``).

The CRD YAML is the source of truth; these models exist so the rest of the operator works with
typed, already-validated values instead of dicts. ``tests/unit/test_api_aiprovider_crd.py`` fails
when a field, enum, default or required list differs between the two.

The cross-field CEL rules of the CRD are mirrored in :meth:`AIProviderSpec._cross_field_rules`
with the very same messages. The API server is the real gate; the mirror makes the reconcile
code safe against objects stored before a rule existed (or applied without the CRD's rules),
and lets unit tests build specs without an API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from aigateway_operator.api.common import (
    DNS_SUBDOMAIN_PATTERN,
    SECRET_DATA_KEY_PATTERN,
    Condition,
    InvalidSpecError,
    InvalidStatusError,
    SecretKeyRef,
    SpecModel,
    StatusModel,
)

__all__ = [
    "DEFAULT_BEDROCK_MODEL",
    "DEFAULT_BEDROCK_SMALL_FAST_MODEL",
    "MAX_API_KEYS",
    "PROVIDER_NAME_PATTERN",
    "ROLE_ARN_PATTERN",
    "RULE_MESSAGES",
    "AIProviderSpec",
    "AIProviderStatus",
    "APIKeySource",
    "APIKeyStatus",
    "AWSCredentialsSecretRef",
    "BedrockIdentityStatus",
    "BedrockProtocol",
    "BedrockSpec",
    "CoderOwnedField",
    "CoderOwnedStatus",
    "DeletionPolicy",
    "DriftPolicy",
    "InvalidSpecError",
    "InvalidStatusError",
    "ProviderType",
]

#: Coder's ``AIProviderNameRegex`` (reference §4.2); also the DB CHECK on ai_providers.name.
PROVIDER_NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
PROVIDER_NAME_MAX_LENGTH = 63
#: IAM role ARNs in the partitions Coder's users run in (reference §4.2 accepts any the AWS
#: SDK parses; we narrow to the three real partitions so typos fail at admission).
ROLE_ARN_PATTERN = (
    r"^arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role/"
    r"([A-Za-z0-9_+=,.@-]+/)*[A-Za-z0-9_+=,.@-]{1,64}$"
)
REGION_PATTERN = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9_+=,.@:/-]+$"
MAX_API_KEYS = 5

#: Coder's deployment defaults for Bedrock models (reference §3). Defaulted in the schema
#: rather than required: invoke-model needs both at runtime (reference §8.2), Coder's own env
#: seeding and UI fill in exactly these, and a default stored on the object shows users what
#: is used instead of leaving it implicit.
DEFAULT_BEDROCK_MODEL = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
DEFAULT_BEDROCK_SMALL_FAST_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"

#: Messages of the CRD's non-transition CEL rules, keyed by a short rule name. The drift test
#: checks that each appears verbatim in the CRD.
RULE_MESSAGES: Mapping[str, str] = {
    "metadata_name": (
        "metadata.name must be a valid Coder provider name (lowercase letters, digits and "
        "single dashes, at most 63 characters) when spec.providerName is not set"
    ),
    "bedrock_type": "spec.bedrock is allowed only when spec.type is anthropic or bedrock",
    "bedrock_required": "spec.bedrock is required when spec.type is bedrock",
    "api_keys_type": "spec.apiKeys is forbidden when spec.type is bedrock or copilot",
    "api_keys_bedrock": "spec.apiKeys is forbidden when spec.bedrock is set",
    "mantle_base_url": "spec.baseURL is required when spec.bedrock.protocol is mantle",
    "invoke_model_region": (
        "spec.bedrock.region is required for the invoke-model protocol unless spec.baseURL is set"
    ),
    "base_url": "spec.baseURL must be an absolute http:// or https:// URL with a host",
    "api_keys_unique": "spec.apiKeys must not reference the same Secret key twice",
    "bedrock_configured": (
        "spec.bedrock must set at least one of region, roleARN or credentialsSecretRef"
    ),
    "mantle_region": "spec.bedrock.region is required when spec.bedrock.protocol is mantle",
    "external_id_role": "spec.bedrock.externalID requires spec.bedrock.roleARN",
}


class ProviderType(StrEnum):
    """Coder's ``ai_provider_type`` values (reference §1.2, §4.2)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    AZURE = "azure"
    BEDROCK = "bedrock"
    GOOGLE = "google"
    OPENAI_COMPAT = "openai-compat"
    OPENROUTER = "openrouter"
    VERCEL = "vercel"
    COPILOT = "copilot"


class BedrockProtocol(StrEnum):
    """Bedrock API flavour (reference §3 ``protocol``; Coder stores ``""`` for invoke-model)."""

    INVOKE_MODEL = "invoke-model"
    MANTLE = "mantle"


class DeletionPolicy(StrEnum):
    """What deleting the object does to the provider in Coder."""

    DELETE = "Delete"
    ORPHAN = "Orphan"


class DriftPolicy(StrEnum):
    """What to do when the provider in Coder no longer matches the spec."""

    REVERT = "Revert"
    REPORT = "Report"


class CoderOwnedField(StrEnum):
    """A spec field whose value in Coder belongs to Coder's admins (``spec.coderOwnedFields``).

    A closed set: what an admin may reasonably change during an incident or for looks. API
    keys, Bedrock credentials and settings, the base URL, the type and the name always follow
    the spec.
    """

    ENABLED = "enabled"
    DISPLAY_NAME = "displayName"
    ICON = "icon"


class APIKeySource(SpecModel):
    """One entry of ``spec.apiKeys``: where to read an API key from."""

    secret_key_ref: SecretKeyRef


class AWSCredentialsSecretRef(SpecModel):
    """A Secret holding static AWS access keys (``spec.bedrock.credentialsSecretRef``)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    access_key_id_key: str = Field(
        default="AWS_ACCESS_KEY_ID",
        alias="accessKeyIDKey",
        min_length=1,
        max_length=253,
        pattern=SECRET_DATA_KEY_PATTERN,
    )
    secret_access_key_key: str = Field(
        default="AWS_SECRET_ACCESS_KEY",
        min_length=1,
        max_length=253,
        pattern=SECRET_DATA_KEY_PATTERN,
    )

    def access_key_id_ref(self) -> SecretKeyRef:
        return SecretKeyRef(name=self.name, key=self.access_key_id_key)

    def secret_access_key_ref(self) -> SecretKeyRef:
        return SecretKeyRef(name=self.name, key=self.secret_access_key_key)


class BedrockSpec(SpecModel):
    """``spec.bedrock``: Coder's Bedrock settings (reference §3) plus where credentials live."""

    region: str | None = Field(default=None, max_length=32, pattern=REGION_PATTERN)
    model: str = Field(default=DEFAULT_BEDROCK_MODEL, min_length=1, max_length=2048)
    small_fast_model: str = Field(
        default=DEFAULT_BEDROCK_SMALL_FAST_MODEL, min_length=1, max_length=2048
    )
    protocol: BedrockProtocol = BedrockProtocol.INVOKE_MODEL
    role_arn: str | None = Field(
        default=None, alias="roleARN", max_length=2048, pattern=ROLE_ARN_PATTERN
    )
    external_id: str | None = Field(
        default=None,
        alias="externalID",
        min_length=2,
        max_length=1224,
        pattern=EXTERNAL_ID_PATTERN,
    )
    credentials_secret_ref: AWSCredentialsSecretRef | None = None

    @property
    def is_configured(self) -> bool:
        """Coder's ``IsConfigured`` (reference §3): models do not count, they always default."""
        return bool(self.region or self.role_arn or self.credentials_secret_ref)

    @model_validator(mode="after")
    def _bedrock_rules(self) -> Self:
        if not self.is_configured:
            raise ValueError(RULE_MESSAGES["bedrock_configured"])
        if self.protocol is BedrockProtocol.MANTLE and not self.region:
            raise ValueError(RULE_MESSAGES["mantle_region"])
        if self.external_id is not None and self.role_arn is None:
            raise ValueError(RULE_MESSAGES["external_id_role"])
        return self


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class AIProviderSpec(SpecModel):
    """``spec`` of an AIProvider."""

    provider_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=PROVIDER_NAME_MAX_LENGTH,
        pattern=PROVIDER_NAME_PATTERN,
    )
    type: ProviderType
    display_name: str | None = Field(default=None, max_length=256)
    icon: str | None = Field(default=None, max_length=2048)
    enabled: bool = True
    base_url: str | None = Field(default=None, alias="baseURL", max_length=2048)
    api_keys: tuple[APIKeySource, ...] = Field(default=(), max_length=MAX_API_KEYS)
    bedrock: BedrockSpec | None = None
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    adopt_existing: bool = False
    drift_policy: DriftPolicy = DriftPolicy.REVERT
    coder_owned_fields: tuple[CoderOwnedField, ...] = Field(default=(), max_length=3)
    """Fields set in Coder only when the provider is created there (or revived after a
    delete in Coder), then left to Coder's admins: never written again, never reported or
    reverted as drift, under either drift policy. An adopted provider keeps its values. A set
    (``x-kubernetes-list-type: set``): the API server refuses duplicates, as does the model."""

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value and not _is_http_url(value):
            raise ValueError(RULE_MESSAGES["base_url"])
        return value

    @field_validator("coder_owned_fields")
    @classmethod
    def _coder_owned_fields_are_a_set(
        cls, value: tuple[CoderOwnedField, ...]
    ) -> tuple[CoderOwnedField, ...]:
        if len(set(value)) != len(value):
            raise ValueError("must not name a field twice")
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        """The spec-level CEL rules of the CRD, in the same order with the same messages."""
        bedrock_types = (ProviderType.ANTHROPIC, ProviderType.BEDROCK)
        if self.bedrock is not None and self.type not in bedrock_types:
            raise ValueError(RULE_MESSAGES["bedrock_type"])
        if self.type is ProviderType.BEDROCK and self.bedrock is None:
            raise ValueError(RULE_MESSAGES["bedrock_required"])
        if self.api_keys and self.type in (ProviderType.BEDROCK, ProviderType.COPILOT):
            raise ValueError(f"spec.apiKeys is forbidden when spec.type is {self.type}")
        if self.api_keys and self.bedrock is not None:
            raise ValueError(RULE_MESSAGES["api_keys_bedrock"])
        if self.bedrock is not None:
            if self.bedrock.protocol is BedrockProtocol.MANTLE and not self.base_url:
                raise ValueError(RULE_MESSAGES["mantle_base_url"])
            if (
                self.bedrock.protocol is BedrockProtocol.INVOKE_MODEL
                and not self.bedrock.region
                and not self.base_url
            ):
                raise ValueError(RULE_MESSAGES["invoke_model_region"])
        refs = [(k.secret_key_ref.name, k.secret_key_ref.key) for k in self.api_keys]
        if len(set(refs)) != len(refs):
            raise ValueError(RULE_MESSAGES["api_keys_unique"])
        return self

    def effective_provider_name(self, metadata_name: str) -> str:
        """``spec.providerName``, defaulting to ``metadata.name`` as the API promises.

        The CRD's root rule guarantees that ``metadata.name`` is a valid provider name when
        ``providerName`` is absent; checked again here for objects admitted before that rule.
        """
        if self.provider_name is not None:
            return self.provider_name
        if len(metadata_name) > PROVIDER_NAME_MAX_LENGTH or not re.fullmatch(
            PROVIDER_NAME_PATTERN, metadata_name
        ):
            raise InvalidSpecError(RULE_MESSAGES["metadata_name"])
        return metadata_name


# -- status ----------------------------------------------------------------------------------


class APIKeyStatus(StatusModel):
    """One key as stored in Coder: identity and masked form, never the value."""

    id: str | None = Field(default=None, max_length=64)
    masked: str | None = Field(default=None, max_length=64)
    secret_key_ref: SecretKeyRef | None = None
    fingerprint: str | None = Field(default=None, max_length=128)
    created_at: datetime | None = None


class BedrockIdentityStatus(StatusModel):
    """What the last STS verification saw (``status.bedrock``)."""

    caller_arn: str | None = Field(default=None, alias="callerARN", max_length=2048)
    assumed_role_arn: str | None = Field(default=None, alias="assumedRoleARN", max_length=2048)
    account_id: str | None = Field(default=None, alias="accountID", max_length=12)
    expiration: datetime | None = None
    last_verified_at: datetime | None = None


#: Longest value ``status.coderOwned`` shows (Coder does not limit these columns).
CODER_OWNED_DISPLAY_NAME_MAX = 256
CODER_OWNED_ICON_MAX = 2048


class CoderOwnedStatus(StatusModel):
    """``status.coderOwned``: which fields Coder's admins own and what Coder holds for each
    now (none of them is a secret). ``icon`` is absent where Coder has no icon column."""

    fields: tuple[CoderOwnedField, ...] = Field(default=(), max_length=3)
    enabled: bool | None = None
    display_name: str | None = Field(default=None, max_length=CODER_OWNED_DISPLAY_NAME_MAX)
    icon: str | None = Field(default=None, max_length=CODER_OWNED_ICON_MAX)


class AIProviderStatus(StatusModel):
    """``status`` of an AIProvider. Every field is declared in the CRD: undeclared fields
    would be pruned silently by the API server."""

    observed_generation: int | None = Field(default=None, ge=0)
    provider_id: str | None = Field(default=None, alias="providerID", max_length=64)
    provider_name: str | None = Field(default=None, max_length=253)
    key_count: int | None = Field(default=None, ge=0)
    conditions: tuple[Condition, ...] = Field(default=(), max_length=16)
    api_keys: tuple[APIKeyStatus, ...] = Field(default=(), max_length=MAX_API_KEYS)
    bedrock: BedrockIdentityStatus | None = None
    coder_owned: CoderOwnedStatus | None = None
    encryption_key_digest: str | None = Field(default=None, max_length=64)
    coder_version: str | None = Field(default=None, max_length=64)
    observed_secrets_revision: str | None = Field(default=None, max_length=128)
    last_synced_at: datetime | None = None

    def condition(self, type_: str) -> Condition | None:
        """The condition of ``type_``, if reported."""
        return next((c for c in self.conditions if c.type == type_), None)
