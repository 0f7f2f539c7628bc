"""Types shared by every kind: Secret references, the condition shape and its vocabulary.

One vocabulary for all kinds (cert-manager's habit): every object reports the same condition
types and draws its reasons from one enum, so dashboards, alerts and ``kubectl wait`` work the
same way everywhere. Reasons are API: once released, a reason keeps its spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "CONDITION_REASON_PATTERN",
    "CONDITION_TYPE_PATTERN",
    "DNS_SUBDOMAIN_PATTERN",
    "SECRET_DATA_KEY_PATTERN",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "EventReason",
    "InvalidSpecError",
    "InvalidStatusError",
    "Reason",
    "SecretKeyRef",
    "SpecModel",
    "StatusModel",
    "describe_errors",
]

#: A Kubernetes object name (DNS-1123 subdomain); Secrets are named this way.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A key of a Secret's ``data`` map.
SECRET_DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a secret


class InvalidSpecError(ValueError):
    """A spec the models reject. The message names fields and never echoes input values."""


class InvalidStatusError(ValueError):
    """A status that does not parse (written by someone else, or by a buggy version)."""


def describe_errors(root: str, exc: ValidationError) -> str:
    """``loc: msg`` for each error, input values deliberately left out (pydantic's own text
    includes them, and exception text ends up in logs and on the object)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join([root, *(str(p) for p in err["loc"])])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


class _WireModel(BaseModel):
    """Parsing from and dumping to the API server's JSON, shared by specs and statuses."""

    _root: ClassVar[str] = ""
    _error: ClassVar[type[ValueError]] = ValueError

    @classmethod
    def from_body(cls, body: Mapping[str, Any] | None) -> Self:
        """Parse ``body["spec"]``/``body["status"]`` as kopf hands it over (possibly absent).

        Errors name ``spec.``/``status.``-prefixed camelCase paths, never input values.
        """
        try:
            return cls.model_validate(dict(body or {}))
        except ValidationError as exc:
            raise cls._error(describe_errors(cls._root, exc)) from None

    def to_body(self) -> dict[str, Any]:
        """As the API server stores it (camelCase, absent fields omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SpecModel(_WireModel):
    """Base of spec models: camelCase on the wire, immutable, unknown fields rejected.

    ``extra="forbid"`` makes a field added to the CRD but not to the model fail loudly in
    tests (and in the drift check) instead of being silently ignored by the operator.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
    _root: ClassVar[str] = "spec"
    _error: ClassVar[type[ValueError]] = InvalidSpecError


class StatusModel(_WireModel):
    """Base of status models: camelCase, immutable, unknown fields ignored.

    Status is read back from the API server, where other writers (kopf, a newer operator
    version) may have left fields this version does not know; those must not break parsing.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )
    _root: ClassVar[str] = "status"
    _error: ClassVar[type[ValueError]] = InvalidStatusError


class SecretKeyRef(SpecModel):
    """A key of a Secret in the referencing object's namespace.

    There is deliberately no namespace field: reading Secrets across namespaces would let
    anyone who can create an AIProvider exfiltrate any Secret the operator can read.
    """

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    key: str = Field(min_length=1, max_length=253, pattern=SECRET_DATA_KEY_PATTERN)

    def describe(self) -> str:
        """How messages name the reference (never the value behind it)."""
        return f"Secret {self.name!r} key {self.key!r}"


class ConditionType(StrEnum):
    """Condition types. ``Ready`` summarises the others each kind reports.

    AIProvider: SecretsResolved, CredentialsValid, Synced. AIGatewayCoderdKey: Issued,
    SecretInSync (both feed Ready) and InUse (informational: an unused key is still ready).
    """

    SECRETS_RESOLVED = "SecretsResolved"
    CREDENTIALS_VALID = "CredentialsValid"
    SYNCED = "Synced"
    ISSUED = "Issued"
    SECRET_IN_SYNC = "SecretInSync"  # noqa: S105 - a condition type
    IN_USE = "InUse"
    READY = "Ready"
    # kstatus (derived from Ready, for Flux, Argo CD, kubectl wait): see STALLED_REASONS.
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class ConditionStatus(StrEnum):
    """metav1.ConditionStatus."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """Stable CamelCase reasons for conditions, Events and findings.

    Grouped by the condition that usually carries them; ``Ready`` copies the reason of the
    condition that blocks it, so every reason can appear there too.
    """

    # Progress and summary.
    READY = "Ready"
    PENDING = "Pending"
    NOT_APPLICABLE = "NotApplicable"
    INVALID_SPEC = "InvalidSpec"
    RECONCILE_ERROR = "ReconcileError"
    DELETING = "Deleting"
    RECONCILED = "Reconciled"
    PROGRESSING = "Progressing"

    # SecretsResolved.
    RESOLVED = "Resolved"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 - a reason name
    SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105 - a reason name
    SECRET_ACCESS_DENIED = "SecretAccessDenied"  # noqa: S105 - a reason name
    INVALID_SECRET_VALUE = "InvalidSecretValue"  # noqa: S105 - a reason name
    DUPLICATE_API_KEY = "DuplicateAPIKey"
    #: A Warning Event (and a note in ``Synced``'s message, which stays True): another enabled
    #: provider has the same base-URL hostname, so Coder's AI Bridge proxy serves only one.
    DUPLICATE_HOSTNAME = "DuplicateHostname"

    # CredentialsValid (AWS identity verification).
    VERIFIED = "Verified"
    NO_BASE_IDENTITY = "NoBaseIdentity"
    ACCESS_DENIED = "AccessDenied"
    INVALID_ROLE_ARN = "InvalidRoleARN"
    STS_UNAVAILABLE = "STSUnavailable"

    # Synced (Coder's database).
    SYNCED = "Synced"
    NAME_CONFLICT = "NameConflict"
    TYPE_MISMATCH = "TypeMismatch"
    DATABASE_UNAVAILABLE = "DatabaseUnavailable"
    ENCRYPTION_KEY_MISMATCH = "EncryptionKeyMismatch"
    PLAINTEXT_REFUSED = "PlaintextRefused"
    SCHEMA_MISMATCH = "SchemaMismatch"
    INSUFFICIENT_PRIVILEGES = "InsufficientPrivileges"
    NOT_SUPPORTED_BY_CODER = "NotSupportedByCoder"
    UNSUPPORTED_BY_OPERATOR = "UnsupportedByOperator"
    ADOPTED = "Adopted"
    DRIFTED = "Drifted"
    DRIFT_REVERTED = "DriftReverted"
    ORPHANED = "Orphaned"

    # Issued (AIGatewayCoderdKey; NameConflict, InvalidSpec and DatabaseUnavailable also apply).
    ISSUED = "Issued"
    ROTATING = "Rotating"
    #: Issued stays True: gracePeriod has passed and the previous key is kept because a
    #: gateway still uses it, or the new key has not been used yet (a Warning Event too).
    ROTATION_WAITING = "RotationWaiting"
    ROTATED = "Rotated"
    KEY_RETIRED = "KeyRetired"
    KEY_REVOKED = "KeyRevoked"
    #: A Warning Event: an opted-in Deployment or StatefulSet could not be listed or stamped.
    WORKLOAD_RESTART_FAILED = "WorkloadRestartFailed"

    # SecretInSync (the Secret that delivers a gateway key).
    IN_SYNC = "InSync"
    SECRET_NOT_OWNED = "SecretNotOwned"  # noqa: S105 - a reason name
    SECRET_LOST = "SecretLost"  # noqa: S105 - a reason name
    SECRET_TAMPERED = "SecretTampered"  # noqa: S105 - a reason name
    SECRET_WRITE_FAILED = "SecretWriteFailed"  # noqa: S105 - a reason name

    # InUse (gateway heartbeats).
    HEARTBEAT_RECENT = "HeartbeatRecent"
    HEARTBEAT_STALE = "HeartbeatStale"
    NEVER_CONNECTED = "NeverConnected"

    # Deletion.
    DELETION_BLOCKED = "DeletionBlocked"


#: Ready=False reasons that need a person: the object is ``Stalled`` (kstatus) rather than
#: ``Reconciling``. Every other not-Ready state can fix itself (a Secret appearing, the
#: database or STS coming back, a rotation finishing), so tools keep waiting for it. The
#: Argo CD health check (deploy/argocd/health.lua) lists the same reasons; a test keeps
#: them equal.
STALLED_REASONS: frozenset[str] = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.NAME_CONFLICT,
        Reason.TYPE_MISMATCH,
        Reason.ENCRYPTION_KEY_MISMATCH,
        Reason.PLAINTEXT_REFUSED,
        Reason.SCHEMA_MISMATCH,
        Reason.INSUFFICIENT_PRIVILEGES,
        Reason.NOT_SUPPORTED_BY_CODER,
        Reason.UNSUPPORTED_BY_OPERATOR,
        Reason.SECRET_NOT_OWNED,
    }
)


class EventReason(StrEnum):
    """Reasons of Events that report something *done* (``Normal``).

    Warnings reuse the :class:`Reason` of the condition they explain (``NameConflict``,
    ``SecretLost``, ...), so an Event and the condition it accompanies read the same.
    """

    CREATED = "Created"
    UPDATED = "Updated"
    ADOPTED = "Adopted"
    KEYS_ROTATED = "KeysRotated"
    DRIFT_REVERTED = "DriftReverted"
    DELETED = "Deleted"
    ORPHANED = "Orphaned"
    ISSUED = "Issued"
    ROTATED = "Rotated"
    KEY_RETIRED = "KeyRetired"
    SECRET_MOVED = "SecretMoved"  # noqa: S105 - a reason name
    WORKLOAD_RESTARTED = "WorkloadRestarted"


#: metav1.Condition's validation, copied from the upstream type's markers.
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(StatusModel):
    """metav1.Condition, field for field (the CRD declares the same shape)."""

    type: str = Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)
    status: ConditionStatus
    reason: str = Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)
    message: str = Field(max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)
