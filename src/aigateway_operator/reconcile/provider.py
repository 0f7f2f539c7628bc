"""One AIProvider, one pass: spec -> Secrets -> checks -> Coder's tables -> STS -> status.

No kopf here: the handler passes plain values in and turns the :class:`Outcome` into a status
patch, Events and (for transient failures) a retry. The pass is level-triggered: it never
looks at what changed, only at what should be, so any trigger (create, edit, Secret change,
drift, timer, restart) runs the same code, and a pass over an object already in sync writes
nothing to the database and returns an empty status patch.

Invalid AWS credentials do not block the database write (Coder shows the provider and its
gateways report the failure); a missing Secret or a bad key value does: the database is not
touched until every reference resolves and passes the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aigateway_operator.api.aiprovider import (
    AIProviderSpec,
    AIProviderStatus,
    APIKeyStatus,
    BedrockIdentityStatus,
    DeletionPolicy,
    DriftPolicy,
    InvalidSpecError,
    InvalidStatusError,
)
from aigateway_operator.api.common import ConditionType, Reason, SecretKeyRef
from aigateway_operator.credentials import Resolved, SecretRef, resolve
from aigateway_operator.reconcile.runtime import Runtime
from aigateway_operator.status.conditions import ConditionState, next_status
from aigateway_operator.store import (
    BedrockSettings,
    DeletePolicy,
    DesiredProvider,
    DuplicateKey,
    EncryptionKeyMismatch,
    InvalidKey,
    InvalidName,
    InvalidProvider,
    NameConflict,
    NameTaken,
    OwnerRef,
    ProviderResult,
    ProviderType,
    SchemaMismatch,
    StoreError,
    StoreUnavailable,
    UnknownKeyReference,
)
from aigateway_operator.validation.identity import StaticCredentials, Verdict
from aigateway_operator.validation.rules import (
    Finding,
    check_api_keys,
    check_aws_static_credentials,
)

KIND = "AIProvider"

#: Retry delays (seconds) for transient failures, by reason.
RETRY_DATABASE = 10.0
RETRY_KEYS = 60.0
RETRY_SCHEMA = 300.0
RETRY_STS = 30.0


@dataclass(frozen=True)
class ObjectInfo:
    """The Kubernetes object being reconciled, as plain values."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: str = ""
    """``metadata.creationTimestamp``: decides who keeps a contested provider name."""

    def owner(self) -> OwnerRef:
        return OwnerRef(
            uid=self.uid,
            kind=KIND,
            namespace=self.namespace,
            name=self.name,
            generation=self.generation,
        )


@dataclass(frozen=True)
class NameClaim:
    """One object claiming a provider name (from the operator's in-memory index)."""

    created: str
    uid: str
    namespace: str
    name: str
    deleting: bool = False
    """Being deleted: its claim ends once its finalizer has released the row."""

    def sort_key(self) -> tuple[str, str]:
        return (self.created, self.uid)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post; ``message`` is secret-free by construction."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What the handler should do: patch status, post events, maybe retry later."""

    status_patch: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    retry_message: str = ""
    done: bool = True
    """For deletion: whether the finalizer may be released."""
    provider_id: str | None = None
    row_version: datetime | None = None
    """``updated_at`` our pass left on the row: lets the drift watcher ignore our own write."""
    # What happened, for metrics (names and reasons only).
    db_action: str | None = None
    notified: bool = False
    sts_reason: str | None = None
    drift_reverted: bool = False
    conditions: tuple[tuple[str, str], ...] = ()
    next_due: datetime | None = None
    """When the object next needs a pass although nothing changed (STS re-verification, or a
    blocked object retried); None: only on events."""


@dataclass
class _Pass:
    """Mutable scratch state of one pass."""

    conditions: list[ConditionState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    retry_message: str = ""
    db_action: str | None = None
    notified: bool = False
    sts_reason: str | None = None
    drift_reverted: bool = False

    def retry(self, delay: float, message: str) -> None:
        if self.retry_after is None or delay < self.retry_after:
            self.retry_after = delay
            self.retry_message = message


def _refs(spec: AIProviderSpec) -> list[SecretRef]:
    refs = [
        SecretRef(f"spec.apiKeys[{i}].secretKeyRef", k.secret_key_ref.name, k.secret_key_ref.key)
        for i, k in enumerate(spec.api_keys)
    ]
    creds = spec.bedrock.credentials_secret_ref if spec.bedrock else None
    if creds is not None:
        field_ = "spec.bedrock.credentialsSecretRef"
        refs.append(SecretRef(f"{field_}.accessKeyIDKey", creds.name, creds.access_key_id_key))
        refs.append(
            SecretRef(f"{field_}.secretAccessKeyKey", creds.name, creds.secret_access_key_key)
        )
    return refs


def fingerprint(key: bytes, value: str) -> str:
    """A keyed, non-reversible fingerprint: shows which key is live, reveals nothing."""
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def _parse_status(body: Mapping[str, Any] | None) -> AIProviderStatus:
    try:
        return AIProviderStatus.from_body(body)
    except InvalidStatusError:
        return AIProviderStatus()


def _problems_message(findings: Sequence[Finding]) -> str:
    return "; ".join(f.message for f in findings)[:1000]


async def reconcile(
    rt: Runtime,
    obj: ObjectInfo,
    spec_body: Mapping[str, Any],
    status_body: Mapping[str, Any] | None,
    claims: Sequence[NameClaim] = (),
) -> Outcome:
    """Bring Coder's rows for this object to its spec; return the status patch and events.

    With ``driftPolicy: Report`` and nothing changed on our side since the last successful
    pass, the row is only compared with the spec and differences are reported, not written.
    """
    current = _parse_status(status_body)
    scratch = _Pass()
    try:
        spec = AIProviderSpec.from_body(spec_body)
    except InvalidSpecError as exc:
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.INVALID_SPEC, str(exc)[:1000])
        )
        return _finish(rt, obj, current, scratch, AIProviderStatus())

    name = spec.effective_provider_name(obj.name)
    live = [c for c in claims if not c.deleting or c.uid == obj.uid]
    winner = min(live, key=NameClaim.sort_key, default=None)
    if winner is not None and winner.uid != obj.uid:
        message = (
            f"spec.providerName {name!r} is already claimed by the older AIProvider "
            f"{winner.namespace}/{winner.name}; choose another spec.providerName"
        )
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.NAME_CONFLICT, message)
        )
        scratch.events.append(Event("Warning", Reason.NAME_CONFLICT, message))
        return _finish(rt, obj, current, scratch, _carry(current))

    refs = _refs(spec)
    resolved = await resolve(rt.kube, obj.namespace, refs)
    if isinstance(resolved, list):
        findings = [Finding(p.reason, p.field, p.message) for p in resolved]
        return _unresolved(rt, obj, current, scratch, findings)
    findings = _check_values(spec, refs, resolved)
    if findings:
        return _unresolved(rt, obj, current, scratch, findings)
    scratch.conditions.append(
        ConditionState.true(
            ConditionType.SECRETS_RESOLVED,
            Reason.RESOLVED,
            f"{len(refs)} Secret reference(s) resolved" if refs else "No Secrets referenced",
        )
    )

    desired = _desired(spec, name, refs, resolved)
    # Did the last successful pass already apply exactly this spec and these Secret versions?
    # Then any difference in the row was made by someone else: drift.
    synced = current.condition(ConditionType.SYNCED)
    unchanged_inputs = (
        synced is not None
        and synced.reason in (Reason.SYNCED, Reason.DRIFTED)
        and synced.observed_generation == obj.generation
        and current.observed_secrets_revision == resolved.revision
    )
    if spec.drift_policy is DriftPolicy.REPORT and unchanged_inputs:
        return await _report_drift(rt, obj, current, scratch, spec, resolved, refs)

    result = await _write(rt, obj, spec, desired, scratch)
    if result is None:
        return _finish(rt, obj, current, scratch, _carry(current, resolved.revision))

    drifted = unchanged_inputs and result.changed and result.action != "adopted"
    _sync_events(result, scratch, drifted=drifted)
    bedrock_status = await _verify(rt, obj, spec, current, resolved, refs, result, scratch)

    status = AIProviderStatus(
        observed_generation=obj.generation,
        provider_id=str(result.provider_id),
        provider_name=result.name,
        key_count=len(result.keys),
        api_keys=_key_status(rt, spec, refs, resolved, result, current),
        bedrock=bedrock_status,
        encryption_key_digest=_digest(result),
        observed_secrets_revision=resolved.revision,
        last_synced_at=(
            rt.clock()
            if result.changed or current.last_synced_at is None
            else current.last_synced_at
        ),
    )
    outcome = _finish(rt, obj, current, scratch, status)
    outcome.provider_id = str(result.provider_id)
    outcome.row_version = result.updated_at
    verified = bedrock_status.last_verified_at if bedrock_status else None
    outcome.next_due = (
        verified + timedelta(seconds=rt.settings.verify_interval_s) if verified else None
    )
    return outcome


def _check_values(spec: AIProviderSpec, refs: list[SecretRef], resolved: Resolved) -> list[Finding]:
    n = len(spec.api_keys)
    entries = [(SecretKeyRef(name=r.name, key=r.key), resolved.get(r)) for r in refs[:n]]
    findings = check_api_keys(entries)
    creds = spec.bedrock.credentials_secret_ref if spec.bedrock else None
    if creds is not None:
        findings += check_aws_static_credentials(
            creds, resolved.get(refs[n]), resolved.get(refs[n + 1])
        )
    return findings


def _unresolved(
    rt: Runtime,
    obj: ObjectInfo,
    current: AIProviderStatus,
    scratch: _Pass,
    findings: Sequence[Finding],
) -> Outcome:
    """A reference is missing or a value is bad: say which, touch nothing in the database."""
    message = _problems_message(findings)
    scratch.conditions.append(
        ConditionState.false(ConditionType.SECRETS_RESOLVED, findings[0].reason, message)
    )
    scratch.events.append(Event("Warning", findings[0].reason, message))
    return _finish(rt, obj, current, scratch, _carry(current))


def _desired(
    spec: AIProviderSpec, name: str, refs: list[SecretRef], resolved: Resolved
) -> DesiredProvider:
    n = len(spec.api_keys)
    bedrock: BedrockSettings | None = None
    if spec.bedrock is not None:
        b = spec.bedrock
        static = b.credentials_secret_ref is not None
        bedrock = BedrockSettings(
            region=b.region or "",
            model=b.model,
            small_fast_model=b.small_fast_model,
            access_key=resolved.get(refs[n]).decode() if static else "",
            access_key_secret=resolved.get(refs[n + 1]).decode() if static else "",
            role_arn=b.role_arn or "",
            external_id=b.external_id,
            protocol=b.protocol.value,
        )
    return DesiredProvider(
        name=name,
        type=ProviderType(spec.type.value),
        display_name=spec.display_name or None,
        enabled=spec.enabled,
        base_url=spec.base_url or None,
        icon=spec.icon,
        api_keys=tuple(resolved.get(r).decode() for r in refs[:n]),
        bedrock=bedrock,
    )


async def _write(
    rt: Runtime, obj: ObjectInfo, spec: AIProviderSpec, desired: DesiredProvider, scratch: _Pass
) -> ProviderResult | None:
    """One store transaction; every failure becomes a Synced=False condition (and a retry)."""
    try:
        return await rt.store.upsert_provider(desired, obj.owner(), adopt=spec.adopt_existing)
    except (NameTaken, NameConflict) as exc:
        message = (
            f"spec.providerName {desired.name!r}: {exc}. Set spec.adoptExisting: true to take "
            "over the existing Coder provider, or choose another spec.providerName"
        )
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.NAME_CONFLICT, message[:1000])
        )
        scratch.events.append(Event("Warning", Reason.NAME_CONFLICT, message[:1000]))
    except (DuplicateKey, InvalidKey) as exc:
        scratch.conditions.append(
            ConditionState.false(
                ConditionType.SYNCED, Reason.DUPLICATE_API_KEY, f"spec.apiKeys: {exc}"
            )
        )
    except (InvalidProvider, InvalidName) as exc:
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.INVALID_SPEC, str(exc)[:1000])
        )
    except StoreUnavailable as exc:
        message = f"Coder's database is unavailable: {exc}"[:1000]
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.DATABASE_UNAVAILABLE, message)
        )
        scratch.retry(RETRY_DATABASE, message)
    except (EncryptionKeyMismatch, UnknownKeyReference) as exc:
        message = f"refusing to write: {exc}"[:1000]
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.ENCRYPTION_KEY_MISMATCH, message)
        )
        scratch.events.append(Event("Warning", Reason.ENCRYPTION_KEY_MISMATCH, message))
        scratch.retry(RETRY_KEYS, message)
    except SchemaMismatch as exc:
        message = str(exc)[:1000]
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.SCHEMA_MISMATCH, message)
        )
        scratch.retry(RETRY_SCHEMA, message)
    except StoreError as exc:
        message = str(exc)[:1000]
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.RECONCILE_ERROR, message)
        )
        scratch.retry(RETRY_DATABASE, message)
    return None


def _sync_events(result: ProviderResult, scratch: _Pass, *, drifted: bool) -> None:
    name = result.name
    scratch.db_action = result.action
    scratch.notified = result.notified
    scratch.drift_reverted = result.changed and (drifted or result.action == "revived")
    if result.action == "created":
        scratch.events.append(Event("Normal", "Created", f"Created Coder AI provider {name!r}"))
    elif result.action == "adopted":
        scratch.events.append(
            Event("Normal", Reason.ADOPTED, f"Adopted existing Coder AI provider {name!r}")
        )
    elif drifted or result.action == "revived":
        changed = ", ".join(result.changed_fields) or "deleted flag"
        scratch.events.append(
            Event(
                "Warning",
                Reason.DRIFT_REVERTED,
                f"Coder AI provider {name!r} was changed outside the operator ({changed}); "
                "reverted to the spec (driftPolicy: Revert)",
            )
        )
    elif result.action == "updated":
        scratch.events.append(
            Event(
                "Normal",
                "Updated",
                f"Updated Coder AI provider {name!r}: {', '.join(result.changed_fields)}",
            )
        )
    if result.action != "created" and (result.keys_added or result.keys_removed):
        scratch.events.append(
            Event(
                "Normal",
                "KeysRotated",
                f"API keys: {len(result.keys_added)} added, {len(result.keys_removed)} removed, "
                f"{len(result.keys_kept)} kept",
            )
        )
    # One stable message: a condition message that depended on the last action would change
    # on the next (no-op) pass and cost a status write after every restart.
    message = "Provider is in sync with Coder"
    scratch.conditions.append(ConditionState.true(ConditionType.SYNCED, Reason.SYNCED, message))


async def _verify(
    rt: Runtime,
    obj: ObjectInfo,
    spec: AIProviderSpec,
    current: AIProviderStatus,
    resolved: Resolved,
    refs: list[SecretRef],
    result: ProviderResult,
    scratch: _Pass,
) -> BedrockIdentityStatus | None:
    """CredentialsValid: STS for Bedrock (re-used while inputs and age allow), else N/A."""
    if spec.bedrock is None:
        scratch.conditions.append(
            ConditionState.true(
                ConditionType.CREDENTIALS_VALID,
                Reason.NOT_APPLICABLE,
                "No AWS identity to verify for this provider type",
            )
        )
        return None
    previous = current.condition(ConditionType.CREDENTIALS_VALID)
    last = current.bedrock.last_verified_at if current.bedrock else None
    fresh = (
        previous is not None
        and previous.reason != Reason.STS_UNAVAILABLE
        and previous.observed_generation == obj.generation
        and current.observed_secrets_revision == resolved.revision
        and last is not None
        and rt.clock() - last < timedelta(seconds=rt.settings.verify_interval_s)
    )
    if fresh and previous is not None:
        scratch.conditions.append(
            ConditionState(previous.type, previous.status, previous.reason, previous.message)
        )
        return current.bedrock
    b = spec.bedrock
    n = len(spec.api_keys)
    static = (
        StaticCredentials(resolved.get(refs[n]).decode(), resolved.get(refs[n + 1]).decode())
        if b.credentials_secret_ref is not None
        else None
    )
    external_id = b.external_id
    if b.role_arn and not external_id:
        # coderd generates an external id when none is given; verify with the one it will use.
        stored = await rt.store.get_provider(obj.owner())
        if stored is not None and stored.bedrock is not None:
            external_id = stored.bedrock.external_id
    verdict: Verdict = await asyncio.to_thread(
        rt.verifier, b.region, b.role_arn, external_id, static
    )
    scratch.sts_reason = verdict.reason
    now = rt.clock()
    if verdict.ok:
        scratch.conditions.append(
            ConditionState.true(ConditionType.CREDENTIALS_VALID, Reason.VERIFIED, verdict.message)
        )
        return verdict.to_status(now)
    if verdict.retryable:
        scratch.retry(RETRY_STS, verdict.message)
        if previous is not None and previous.reason != Reason.STS_UNAVAILABLE:
            # Keep the last verdict while STS is unreachable; say it is stale.
            scratch.conditions.append(
                ConditionState(previous.type, previous.status, previous.reason, previous.message)
            )
            return current.bedrock
        scratch.conditions.append(
            ConditionState.unknown(
                ConditionType.CREDENTIALS_VALID, Reason.STS_UNAVAILABLE, verdict.message
            )
        )
        return current.bedrock
    scratch.conditions.append(
        ConditionState.false(ConditionType.CREDENTIALS_VALID, verdict.reason, verdict.message)
    )
    if previous is None or previous.reason != verdict.reason:
        scratch.events.append(Event("Warning", verdict.reason, verdict.message))
    return verdict.to_status(now)


def _key_status(
    rt: Runtime,
    spec: AIProviderSpec,
    refs: list[SecretRef],
    resolved: Resolved,
    result: ProviderResult,
    current: AIProviderStatus,
) -> tuple[APIKeyStatus, ...]:
    created = {k.id: k.created_at for k in current.api_keys if k.id}
    now = rt.clock()
    out = []
    for i, key in enumerate(result.keys):
        ref = spec.api_keys[i].secret_key_ref if i < len(spec.api_keys) else None
        value = resolved.get(refs[i]).decode() if i < len(spec.api_keys) else ""
        out.append(
            APIKeyStatus(
                id=str(key.id),
                masked=key.masked,
                secret_key_ref=ref,
                fingerprint=fingerprint(rt.fingerprint_key, value) if value else None,
                created_at=created.get(str(key.id)) or now,
            )
        )
    return tuple(out)


def _digest(result: ProviderResult) -> str | None:
    if result.settings_key_id:
        return result.settings_key_id
    return next((k.key_id for k in result.keys if k.key_id), None)


def _carry(current: AIProviderStatus, revision: str | None = None) -> AIProviderStatus:
    """Keep what the last successful pass reported (the row still looks like that)."""
    return current.model_copy(
        update={"observed_secrets_revision": revision or current.observed_secrets_revision}
    )


def _finish(
    rt: Runtime,
    obj: ObjectInfo,
    current: AIProviderStatus,
    scratch: _Pass,
    status: AIProviderStatus,
) -> Outcome:
    patch, conditions = next_status(
        current, status, scratch.conditions, generation=obj.generation, clock=rt.clock
    )
    return Outcome(
        status_patch=patch,
        events=scratch.events,
        # Stopped before the database (a Secret, a name, the spec) with no retry pending:
        # events normally bring it back; a slow retry is the backstop.
        next_due=(
            rt.clock() + timedelta(seconds=rt.settings.resync_interval_s)
            if scratch.retry_after is None
            else None
        ),
        retry_after=scratch.retry_after,
        retry_message=scratch.retry_message,
        db_action=scratch.db_action,
        notified=scratch.notified,
        sts_reason=scratch.sts_reason,
        drift_reverted=scratch.drift_reverted,
        conditions=tuple((c.type, c.status.value) for c in conditions),
    )


async def _report_drift(
    rt: Runtime,
    obj: ObjectInfo,
    current: AIProviderStatus,
    scratch: _Pass,
    spec: AIProviderSpec,
    resolved: Resolved,
    refs: list[SecretRef],
) -> Outcome:
    """driftPolicy: Report: compare the row with the spec and say so, never write."""
    desired = _desired(spec, spec.effective_provider_name(obj.name), refs, resolved)
    try:
        differences = await rt.store.compare_provider(desired, obj.owner())
    except StoreError as exc:
        message = f"Coder's database is unavailable: {exc}"[:1000]
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.DATABASE_UNAVAILABLE, message)
        )
        scratch.retry(RETRY_DATABASE, message)
        return _finish(rt, obj, current, scratch, _carry(current))
    if differences is None:
        differences = ["row missing"]
    if differences:
        message = (
            "Coder AI provider was changed outside the operator "
            f"({', '.join(differences)}); not reverted (driftPolicy: Report)"
        )
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.DRIFTED, message)
        )
        prev = current.condition(ConditionType.SYNCED)
        if prev is None or prev.reason != Reason.DRIFTED:
            scratch.events.append(Event("Warning", Reason.DRIFTED, message))
    else:
        scratch.conditions.append(
            ConditionState.true(
                ConditionType.SYNCED, Reason.SYNCED, "Provider is in sync with Coder"
            )
        )
    return _finish(rt, obj, current, scratch, _carry(current, resolved.revision))


async def finalize(
    rt: Runtime,
    obj: ObjectInfo,
    spec_body: Mapping[str, Any],
    status_body: Mapping[str, Any] | None,
) -> Outcome:
    """Deletion: soft-delete (Delete) or release (Orphan). A database outage keeps the object."""
    current = _parse_status(status_body)
    policy = DeletionPolicy.DELETE
    with contextlib.suppress(InvalidSpecError):
        policy = AIProviderSpec.from_body(spec_body).deletion_policy
    scratch = _Pass()
    store_policy = (
        DeletePolicy.RELEASE if policy is DeletionPolicy.ORPHAN else DeletePolicy.SOFT_DELETE
    )
    try:
        result = await rt.store.delete_provider(obj.owner(), store_policy)
    except StoreError as exc:
        message = f"waiting to delete the Coder provider: {exc}"[:1000]
        scratch.conditions.append(
            ConditionState.false(ConditionType.SYNCED, Reason.DATABASE_UNAVAILABLE, message)
        )
        scratch.conditions.append(
            ConditionState.false(ConditionType.READY, Reason.DELETING, message)
        )
        scratch.retry(RETRY_DATABASE, message)
        outcome = _finish(rt, obj, current, scratch, _carry(current))
        outcome.done = False
        return outcome
    if result.action == "deleted":
        scratch.events.append(
            Event(
                "Normal",
                "Deleted",
                f"Soft-deleted the Coder AI provider and removed {result.keys_removed} key(s)",
            )
        )
    elif result.action == "released":
        scratch.events.append(
            Event("Normal", Reason.ORPHANED, "Left the Coder AI provider in place (Orphan)")
        )
    return Outcome(status_patch={}, events=scratch.events, done=True)
