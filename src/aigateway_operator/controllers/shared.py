"""Shapes both kinds share, defined once: the object a pass is about, the Events it posts,
what it returns, the rule that turns a store failure into a condition, and the rule that turns
a pass's outcome into metrics.

No kopf here (the operator layer turns an outcome into kopf's terms); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aigateway_operator import metrics
from aigateway_operator.api.common import Condition, Reason
from aigateway_operator.api.identity import Kind
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.kube.client import ObjectRef
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import (
    EncryptionKeyMismatch,
    HostnamePeers,
    InsufficientPrivileges,
    NotSupportedByCoder,
    OwnerRef,
    PlaintextRefused,
    RowVersion,
    SchemaMismatch,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    UnknownKeyReference,
)

__all__ = [
    "MESSAGE_LIMIT",
    "RETRY_DATABASE",
    "RETRY_KEYS",
    "RETRY_SCHEMA",
    "Event",
    "ObjectIdentity",
    "PassOutcome",
    "PassScratch",
    "StoreFailure",
    "database_error_kind",
    "forget_object",
    "record_pass",
    "store_failure",
]

#: Condition and Event messages are cut here (the API allows 32 KiB; nobody reads that much).
MESSAGE_LIMIT = 1000

#: Retry delays (seconds) for transient failures, by cause; the runner backs off from these.
RETRY_DATABASE = 10.0
RETRY_KEYS = 60.0
RETRY_SCHEMA = 300.0


def log_ref(kind: Kind, namespace: str, name: str, uid: str = "") -> dict[str, Any]:
    """``extra=`` for a log line about one object: kopf's formatters then prefix it with
    ``[namespace/name]`` (text) or add the object as a field (``AIGW_LOG_FORMAT=json``),
    exactly as for kopf's own per-object lines."""
    ref = {"apiVersion": kind.api_version, "kind": kind.kind, "namespace": namespace}
    return {"k8s_ref": {**ref, "name": name, "uid": uid}}


@dataclass(frozen=True)
class ObjectIdentity:
    """The object a pass is about, as plain values."""

    kind: Kind
    namespace: str
    name: str
    uid: str
    generation: int
    created: str = ""
    """``metadata.creationTimestamp``."""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, kind: Kind, body: Mapping[str, Any]) -> ObjectIdentity:
        meta = body.get("metadata") or {}
        return cls(
            kind=kind,
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            created=str(meta.get("creationTimestamp", "")),
            annotations=dict(meta.get("annotations") or {}),
        )

    @property
    def label(self) -> str:
        """``namespace/name``, how logs and messages name the object."""
        return f"{self.namespace}/{self.name}"

    @property
    def log(self) -> dict[str, Any]:
        """``extra=`` for a log line about this object (see :func:`log_ref`)."""
        return log_ref(self.kind, self.namespace, self.name, self.uid)

    def owner(self, instance: str) -> OwnerRef:
        """The store's view of the object that owns its rows: this operator install
        (``AIGW_INSTANCE_ID``) and the object's kind, namespace and name; the uid and the
        generation only label the records."""
        return OwnerRef(
            kind=self.kind.kind,
            namespace=self.namespace,
            name=self.name,
            instance=instance,
            uid=self.uid,
            generation=self.generation,
        )

    def owner_reference(self) -> dict[str, str]:
        """An ``ownerReferences`` entry pointing at this object (for Secrets we write)."""
        return {
            "apiVersion": self.kind.api_version,
            "kind": self.kind.kind,
            "name": self.name,
            "uid": self.uid,
        }

    def ref(self) -> ObjectRef:
        """What an Event about this object points at."""
        return ObjectRef(
            api_version=self.kind.api_version,
            kind=self.kind.kind,
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
        )


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post; ``message`` is secret-free by construction."""

    type: str  # Normal | Warning
    reason: str
    message: str

    @classmethod
    def normal(cls, reason: str, message: str) -> Event:
        return cls("Normal", reason, message[:MESSAGE_LIMIT])

    @classmethod
    def warning(cls, reason: str, message: str) -> Event:
        return cls("Warning", reason, message[:MESSAGE_LIMIT])


@dataclass
class PassOutcome:
    """What a pass (or a deletion) hands back: the operator layer patches status, posts the
    Events, records metrics and decides when to run again."""

    status_patch: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    """A transient failure: run again after about this long (the runner backs off)."""
    retry_message: str = ""
    next_due: datetime | None = None
    """When the object next needs a pass although nothing changed (an STS verdict to refresh,
    a rotation, a grace period ending); None: only on events and the periodic resync."""
    done: bool = True
    """For a deletion: whether the finalizer may be released."""
    conditions: tuple[Condition, ...] = ()
    """The object's conditions after this pass (for metrics)."""
    synced_at: datetime | None = None
    """When Coder's rows were last known to match the spec (``aigw_last_sync_timestamp``)."""
    # What happened, for metrics (names and reasons only).
    db_action: metrics.WriteAction | None = None
    """``created``, ``updated``, ``adopted``, ``revived``, ``unchanged`` ...; None when the
    pass stopped before the database."""
    notified: bool = False
    sts_reason: str | None = None
    sts_ok: bool = True
    drift_reverted: bool = False
    database_error: metrics.DatabaseErrorKind | None = None
    """The kind of database failure (:func:`database_error_kind`), if the pass hit one."""
    row_id: str | None = None
    row_version: RowVersion | None = None
    hostname_checked: bool = False
    """AIProvider: the pass looked for other providers on its base-URL hostname (it may not
    have: an error before the write); ``hostname_peers`` is what it found."""
    hostname_peers: HostnamePeers | None = None
    """The Coder row this pass left and its version (drift tracking)."""


@dataclass
class PassScratch:
    """Mutable scratch state of one pass, the same for both kinds."""

    current_conditions: tuple[Condition, ...] = ()
    conditions: list[ConditionState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    retry_message: str = ""
    database_error: metrics.DatabaseErrorKind | None = None

    def retry(self, delay: float, message: str) -> None:
        """Ask for another pass after ``delay`` (the shortest request wins)."""
        if self.retry_after is None or delay < self.retry_after:
            self.retry_after = delay
            self.retry_message = message

    def set(self, state: ConditionState) -> None:
        self.conditions.append(state)

    def warn(self, reason: str, message: str) -> None:
        self.events.append(Event.warning(reason, message))

    def note(self, reason: str, message: str) -> None:
        self.events.append(Event.normal(reason, message))

    def is_news(self, type_: str, reason: str) -> bool:
        """Whether ``type_`` did not already carry ``reason`` (a Warning is posted once per
        change, not on every pass; the recorder aggregates repeats anyway)."""
        for c in self.current_conditions:
            if c.type == type_:
                return c.reason != reason
        return True


@dataclass(frozen=True)
class StoreFailure:
    """A store error as a condition, an optional Warning, and a retry delay (or None)."""

    condition: ConditionState
    event: Event | None
    retry_after: float | None
    database_error: metrics.DatabaseErrorKind


def database_error_kind(exc: StoreError) -> metrics.DatabaseErrorKind:
    """The ``kind`` label of ``aigw_database_errors_total`` for ``exc``."""
    if isinstance(exc, StoreTimeout):
        return "timeout"
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    if isinstance(exc, InsufficientPrivileges):
        return "privileges"
    if isinstance(exc, SchemaMismatch | NotSupportedByCoder):
        return "schema"
    if isinstance(exc, EncryptionKeyMismatch | UnknownKeyReference):
        return "encryption"
    return "other"


def store_failure(exc: StoreError, type_: str, doing: str = "") -> StoreFailure:
    """The one rule from a store error to a condition (both kinds use it).

    Unavailable/timeouts: ``DatabaseUnavailable``, retried soon. Plaintext refused (no key
    given while coderd encrypts): ``PlaintextRefused`` with a Warning, retried slowly. Key
    mismatch: ``EncryptionKeyMismatch`` with a Warning, retried slowly (fail closed: nothing was
    written). A grant missing: ``InsufficientPrivileges`` naming it; the schema:
    ``SchemaMismatch``; a feature this Coder version lacks: ``NotSupportedByCoder``; all
    retried slowly. Anything else: ``ReconcileError``, retried. Messages come from the
    store's secret-free errors.
    """
    prefix = f"{doing}: " if doing else ""
    kind = database_error_kind(exc)
    if isinstance(exc, PlaintextRefused):
        message = f"{prefix}refusing to write in plaintext: {exc}"[:MESSAGE_LIMIT]
        state = ConditionState.false(type_, Reason.PLAINTEXT_REFUSED, message)
        return StoreFailure(
            state, Event.warning(Reason.PLAINTEXT_REFUSED, message), RETRY_KEYS, kind
        )
    if isinstance(exc, InsufficientPrivileges):
        message = f"{prefix}{exc}"[:MESSAGE_LIMIT]
        state = ConditionState.false(type_, Reason.INSUFFICIENT_PRIVILEGES, message)
        return StoreFailure(
            state, Event.warning(Reason.INSUFFICIENT_PRIVILEGES, message), RETRY_SCHEMA, kind
        )
    if isinstance(exc, NotSupportedByCoder):
        message = f"{prefix}{exc}"[:MESSAGE_LIMIT]
        state = ConditionState.false(type_, Reason.NOT_SUPPORTED_BY_CODER, message)
        return StoreFailure(state, None, RETRY_SCHEMA, kind)
    if isinstance(exc, StoreUnavailable):
        message = f"{prefix}Coder's database is unavailable: {exc}"[:MESSAGE_LIMIT]
        state = ConditionState.false(type_, Reason.DATABASE_UNAVAILABLE, message)
        return StoreFailure(state, None, RETRY_DATABASE, kind)
    if isinstance(exc, EncryptionKeyMismatch | UnknownKeyReference):
        message = f"{prefix}refusing to write: {exc}"[:MESSAGE_LIMIT]
        state = ConditionState.false(type_, Reason.ENCRYPTION_KEY_MISMATCH, message)
        return StoreFailure(
            state, Event.warning(Reason.ENCRYPTION_KEY_MISMATCH, message), RETRY_KEYS, kind
        )
    if isinstance(exc, SchemaMismatch):
        message = f"{prefix}{exc}"[:MESSAGE_LIMIT]
        state = ConditionState.false(type_, Reason.SCHEMA_MISMATCH, message)
        return StoreFailure(state, None, RETRY_SCHEMA, kind)
    message = f"{prefix}{exc}"[:MESSAGE_LIMIT]
    state = ConditionState.false(type_, Reason.RECONCILE_ERROR, message)
    return StoreFailure(state, None, RETRY_DATABASE, kind)


def _result(outcome: PassOutcome) -> metrics.ReconcileResult:
    if outcome.retry_after is not None:
        return "retry"
    if outcome.db_action is None:
        return "blocked"  # stopped before the database: Secrets, name claim, spec
    return "unchanged" if outcome.db_action == "unchanged" else "synced"


def record_pass(ident: ObjectIdentity, outcome: PassOutcome) -> None:
    """The one rule from a pass's outcome to metrics (names and reasons only, never values)."""
    kind = ident.kind.kind
    if outcome.db_action is not None and outcome.db_action != "unchanged":
        metrics.DB_WRITES.labels(kind, outcome.db_action).inc()
    if outcome.notified:
        metrics.NOTIFIES.inc()
    if outcome.sts_reason is not None:
        metrics.STS_VERIFICATIONS.labels(outcome.sts_reason).inc()
        if not outcome.sts_ok:
            metrics.STS_ERRORS.labels(outcome.sts_reason).inc()
    if outcome.drift_reverted:
        metrics.DRIFT_REVERTED.labels(kind).inc()
    if outcome.database_error is not None:
        metrics.DATABASE_ERRORS.labels(outcome.database_error).inc()
    metrics.count_pass(kind, _result(outcome))
    if outcome.conditions:
        metrics.set_conditions(
            kind,
            ident.namespace,
            ident.name,
            [(c.type, c.status.value) for c in outcome.conditions],
        )
    if outcome.synced_at is not None:
        metrics.set_last_sync(kind, ident.namespace, ident.name, outcome.synced_at.timestamp())


def forget_object(wiring: Wiring, ident: ObjectIdentity) -> None:
    """Drop what outside the object's record still names a deleted object: its metric series
    and its Event aggregation keys (both would otherwise outlive it)."""
    metrics.forget_object(ident.kind.kind, ident.namespace, ident.name)
    if wiring.events is not None:
        wiring.events.forget(ident.uid)
