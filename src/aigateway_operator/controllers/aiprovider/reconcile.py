"""One AIProvider, one pass: spec -> Secrets -> checks -> Coder's tables -> STS -> status.

The pass is level-triggered: it never looks at what changed, only at what should be, so any
trigger (a watch event, a Secret change, drift, a due re-check, a restart) runs the same
code, and a pass over an object already in sync writes nothing to the database and returns
an empty status patch.

The steps, each in its own module: the name claim (:mod:`.index`), the Secrets
(:mod:`.secrets`), the write (here, one store transaction), the STS check (:mod:`.verify`),
drift reporting (:mod:`.drift`), the status (:mod:`.status`). A missing Secret or a bad value
stops the pass before the database; invalid AWS credentials do not (Coder shows the provider
and its gateways report the failure).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from aigateway_operator.api.aiprovider import (
    AIProviderSpec,
    AIProviderStatus,
    DeletionPolicy,
    DriftPolicy,
)
from aigateway_operator.api.common import ConditionType, EventReason, Reason
from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.controllers.actors import (
    DRIFT_REVERT,
    SECRET_CHANGED,
    spec_actor,
)
from aigateway_operator.controllers.aiprovider.drift import IN_SYNC, report_drift
from aigateway_operator.controllers.aiprovider.hostnames import (
    announce_hostname_warning,
    check_hostname,
    record_hostname,
    with_hostname_warning,
)
from aigateway_operator.controllers.aiprovider.inputs import gather
from aigateway_operator.controllers.aiprovider.secrets import ProviderSecrets
from aigateway_operator.controllers.aiprovider.status import (
    carry,
    coder_owned_columns,
    coder_owned_status,
    encryption_digest,
    finish,
    key_status,
)
from aigateway_operator.controllers.aiprovider.verify import verify_identity
from aigateway_operator.controllers.shared import (
    MESSAGE_LIMIT,
    ObjectIdentity,
    PassOutcome,
    PassScratch,
    store_failure,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import (
    Actor,
    AppliedInputs,
    BedrockSettings,
    DeletePolicy,
    DesiredProvider,
    DuplicateKey,
    InvalidKey,
    InvalidName,
    InvalidProvider,
    NameConflict,
    NameTaken,
    OwnerRef,
    ProviderResult,
    ProviderType,
    RevivalUnconfirmed,
    StoreError,
    TypeMismatch,
)
from aigateway_operator.validation.rules import Finding

__all__ = ["desired_provider", "reconcile"]

log = logging.getLogger("aigateway_operator")


def desired_provider(spec: AIProviderSpec, name: str, secrets: ProviderSecrets) -> DesiredProvider:
    """What Coder's rows should hold for this spec and these Secret values."""
    bedrock: BedrockSettings | None = None
    if spec.bedrock is not None:
        b = spec.bedrock
        static = secrets.static
        bedrock = BedrockSettings(
            region=b.region or "",
            model=b.model,
            small_fast_model=b.small_fast_model,
            access_key=static.access_key_id if static else "",
            access_key_secret=static.secret_access_key if static else "",
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
        api_keys=secrets.api_keys,
        bedrock=bedrock,
        coder_owned=coder_owned_columns(spec),
    )


async def reconcile(
    wiring: Wiring,
    ident: ObjectIdentity,
    spec_body: object,
    status_body: object,
) -> PassOutcome:
    """Bring Coder's rows for this object to its spec; return the status patch and Events.

    With ``driftPolicy: Report`` and nothing changed on our side since the last successful
    pass, the row is only compared with the spec and differences are reported, not written.
    """
    inputs = await gather(wiring, ident, spec_body, status_body)
    current = inputs.current
    scratch = PassScratch(current_conditions=tuple(current.conditions))
    # One reading for the spec and the name it claims: an invalid metadata.name (no
    # spec.providerName) is InvalidSpec like any other spec error, never an exception.
    spec, name = inputs.reading.spec, inputs.reading.provider_name
    secrets = inputs.secrets
    if spec is None or name is None or secrets is None:
        message = (inputs.reading.problem or "invalid spec")[:MESSAGE_LIMIT]
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.INVALID_SPEC, message))
        scratch.warn(Reason.INVALID_SPEC, message)
        return finish(wiring, ident, current, scratch, AIProviderStatus())

    if not isinstance(secrets, ProviderSecrets):
        return _unresolved(wiring, ident, current, scratch, secrets)
    count = len(secrets.refs.all())
    scratch.set(
        ConditionState.true(
            ConditionType.SECRETS_RESOLVED,
            Reason.RESOLVED,
            f"{count} Secret reference(s) resolved" if count else "No Secrets referenced",
        )
    )

    owner = inputs.owner
    desired = desired_provider(spec, name, secrets)
    # Did an earlier write already apply exactly this spec and these Secret versions? Then any
    # difference in the row was made by someone else: drift. The operator's own record says
    # so (written with the row), never the status: whoever may write aiproviders/status could
    # forge observedGeneration and turn a spec change into "drift".
    applied = AppliedInputs(ident.uid, ident.generation, inputs.spec_digest, secrets.revision)
    try:
        recorded = await wiring.store.applied_inputs(owner)
    except StoreError as exc:
        _store_failed(scratch, exc)
        return finish(wiring, ident, current, scratch, carry(current, secrets.revision))
    spec_applied = applied.same_spec(recorded)
    unchanged_inputs = spec_applied and recorded == applied
    if spec.drift_policy is DriftPolicy.REPORT and unchanged_inputs:
        return await report_drift(
            wiring, ident, owner, current, scratch, spec, desired, secrets.revision
        )

    actor = await _actor(
        wiring,
        ident,
        inputs.spec_digest,
        spec_applied=spec_applied,
        applied=applied,
        recorded=recorded,
    )
    owner = replace(owner, actor=actor)
    result = await _write(wiring, ident, owner, spec, desired, scratch, applied)
    if result is None:
        return finish(wiring, ident, current, scratch, carry(current, secrets.revision))
    if result.action == "left_alone":
        return _left_alone(wiring, ident, current, scratch, result, secrets.revision)

    drifted = unchanged_inputs and result.changed and result.action != "adopted"
    deprecated = spec.type.value == "anthropic" and spec.bedrock is not None
    # Coder's proxy serves only enabled rows; with enabled Coder-owned, the row's own value
    # (after the write) counts, not the spec's.
    enabled = result.coder_owned.get("enabled", desired.enabled)
    hostname = await check_hostname(wiring, result.provider_id, result.name, enabled=enabled)
    message = with_hostname_warning(ANTHROPIC_BEDROCK if deprecated else IN_SYNC, hostname)
    _sync_events(result, scratch, drifted=drifted, message=message)
    announce_hostname_warning(scratch, hostname)
    verified = await verify_identity(wiring, ident, owner, spec, current, secrets, scratch)

    status = AIProviderStatus(
        observed_generation=ident.generation,
        provider_id=str(result.provider_id),
        provider_name=result.name,
        key_count=len(result.keys),
        api_keys=key_status(wiring, spec, secrets, result, current),
        bedrock=verified.bedrock,
        coder_owned=coder_owned_status(spec, result.coder_owned),
        encryption_key_digest=encryption_digest(result),
        coder_version=wiring.store.coder_version.release.label,
        observed_secrets_revision=secrets.revision,
        last_synced_at=(
            wiring.clock()
            if result.changed or current.last_synced_at is None
            else current.last_synced_at
        ),
    )
    outcome = finish(wiring, ident, current, scratch, status)
    outcome.db_action = result.action
    outcome.notified = result.notified
    outcome.drift_reverted = result.changed and (drifted or result.action == "revived")
    outcome.sts_reason = verified.reason
    outcome.sts_ok = verified.ok
    last = verified.bedrock.last_verified_at if verified.bedrock else None
    if last is not None and verified.ok:
        outcome.next_due = last + timedelta(seconds=wiring.settings.verify_interval_s)
    outcome.row_id = str(result.provider_id)
    outcome.row_version = result.version
    record_hostname(outcome, hostname)
    return outcome


async def _actor(
    wiring: Wiring,
    ident: ObjectIdentity,
    digest: str,
    *,
    spec_applied: bool,
    applied: AppliedInputs,
    recorded: AppliedInputs | None,
) -> Actor:
    """Who caused what this pass may write (``controllers/actors.py``): the requester of a
    generation the operator's record does not show applied; else a Secret change, or the
    operator reverting drift. The admission record is read only in the first case."""
    if not spec_applied:
        return await spec_actor(wiring, ident, digest)
    if recorded is None or recorded.secrets_revision != applied.secrets_revision:
        return SECRET_CHANGED
    return DRIFT_REVERT


def _store_failed(scratch: PassScratch, exc: StoreError) -> None:
    """A store failure as the Synced condition (and a retry when it may fix itself)."""
    failure = store_failure(exc, ConditionType.SYNCED)
    scratch.set(failure.condition)
    scratch.database_error = failure.database_error
    if failure.event is not None:
        scratch.events.append(failure.event)
    if failure.retry_after is not None:
        scratch.retry(failure.retry_after, failure.condition.message)


def _left_alone(
    wiring: Wiring,
    ident: ObjectIdentity,
    current: AIProviderStatus,
    scratch: PassScratch,
    result: ProviderResult,
    revision: str,
) -> PassOutcome:
    """The row holds something this operator does not know (a newer Coder's provider type or
    settings variant): nothing was written; say so once and wait for a person."""
    what = ", ".join(str(d) for d in result.differences if d.left_alone) or "unknown content"
    message = (
        f"Coder AI provider {result.name!r} holds what this operator does not know ({what}); "
        "it is left alone. Upgrade the operator, or change the provider in Coder"
    )[:MESSAGE_LIMIT]
    scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.UNSUPPORTED_BY_OPERATOR, message))
    if scratch.is_news(ConditionType.SYNCED, Reason.UNSUPPORTED_BY_OPERATOR):
        scratch.warn(Reason.UNSUPPORTED_BY_OPERATOR, message)
    outcome = finish(wiring, ident, current, scratch, carry(current, revision))
    outcome.db_action = "unchanged"
    return outcome


def _unresolved(
    wiring: Wiring,
    ident: ObjectIdentity,
    current: AIProviderStatus,
    scratch: PassScratch,
    findings: Sequence[Finding],
) -> PassOutcome:
    """A reference is missing or a value is bad: say which, touch nothing in the database."""
    message = "; ".join(f.message for f in findings)[:MESSAGE_LIMIT]
    scratch.set(ConditionState.false(ConditionType.SECRETS_RESOLVED, findings[0].reason, message))
    scratch.warn(findings[0].reason, message)
    return finish(wiring, ident, current, scratch, carry(current))


async def _write(
    wiring: Wiring,
    ident: ObjectIdentity,
    owner: OwnerRef,
    spec: AIProviderSpec,
    desired: DesiredProvider,
    scratch: PassScratch,
    applied: AppliedInputs,
) -> ProviderResult | None:
    """One store transaction; every failure becomes a Synced=False condition (and a retry).
    ``applied`` is recorded with the row as what this write applied."""
    may_adopt = wiring.settings.may_adopt(ident.namespace)
    policy = (
        DeletePolicy.RELEASE
        if spec.deletion_policy is DeletionPolicy.ORPHAN
        else DeletePolicy.SOFT_DELETE
    )
    adopt = spec.adopt_existing and may_adopt
    try:
        try:
            return await wiring.store.upsert_provider(
                desired, owner, adopt=adopt, policy=policy, revive=False, applied=applied
            )
        except RevivalUnconfirmed:
            # The row was deleted: bring it back only for an object that exists now, with
            # this uid, not being deleted (a pass on a stale view must not resurrect it).
            if not await _still_live(wiring, ident):
                log.info("not reviving the Coder row of a deleted object", extra=ident.log)
                return None
            return await wiring.store.upsert_provider(
                desired, owner, adopt=adopt, policy=policy, revive=True, applied=applied
            )
    except NameConflict as exc:
        # A provider made in Coder (or recorded by an earlier release) holds the name.
        if spec.adopt_existing and not may_adopt:
            advice = (
                f"spec.adoptExisting is set, but adoption is not allowed in namespace "
                f"{ident.namespace!r} (the operator's AIGW_ADOPTION_NAMESPACES); ask the "
                "platform team, or choose another spec.providerName"
            )
        elif may_adopt:
            advice = (
                "set spec.adoptExisting: true to take over the existing Coder provider, or "
                "choose another spec.providerName"
            )
        else:
            advice = "choose another spec.providerName"
        message = f"spec.providerName {desired.name!r}: {exc}. {advice}"[:MESSAGE_LIMIT]
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.NAME_CONFLICT, message))
        scratch.warn(Reason.NAME_CONFLICT, message)
    except NameTaken as exc:
        # Held by another object (or another operator install): it keeps the name.
        message = (
            f"spec.providerName {desired.name!r}: {exc}. This object takes the name over once "
            "that owner is gone; or choose another spec.providerName"
        )[:MESSAGE_LIMIT]
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.NAME_CONFLICT, message))
        scratch.warn(Reason.NAME_CONFLICT, message)
    except TypeMismatch as exc:
        message = f"spec.type {spec.type.value!r}: {exc}"[:MESSAGE_LIMIT]
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.TYPE_MISMATCH, message))
        scratch.warn(Reason.TYPE_MISMATCH, message)
    except (DuplicateKey, InvalidKey) as exc:
        scratch.set(
            ConditionState.false(
                ConditionType.SYNCED, Reason.DUPLICATE_API_KEY, f"spec.apiKeys: {exc}"
            )
        )
    except (InvalidProvider, InvalidName) as exc:
        message = f"{_spec_field(exc)}: {exc}"[:MESSAGE_LIMIT]
        scratch.set(ConditionState.false(ConditionType.SYNCED, Reason.INVALID_SPEC, message))
        scratch.warn(Reason.INVALID_SPEC, message)
    except StoreError as exc:
        _store_failed(scratch, exc)
    return None


#: The store names fields by Coder's settings; messages name the spec field a user edits.
_SPEC_FIELDS = {"bedrock.accessKey": "spec.bedrock.credentialsSecretRef"}


def _spec_field(exc: InvalidProvider | InvalidName) -> str:
    """The spec field a store rejection is about (the store knows no Kubernetes)."""
    if isinstance(exc, InvalidName):
        return "spec.providerName"
    if not exc.field:
        return "spec"
    return _SPEC_FIELDS.get(exc.field, f"spec.{exc.field}")


async def _still_live(wiring: Wiring, ident: ObjectIdentity) -> bool:
    """Whether the object exists now, as this uid, and is not being deleted (one GET)."""
    body = await wiring.kube.get_object(AIPROVIDER.plural, ident.namespace, ident.name)
    meta = (body or {}).get("metadata") or {}
    return bool(body) and meta.get("uid") == ident.uid and not meta.get("deletionTimestamp")


#: On an AIProvider of type anthropic with Bedrock settings (deprecated: coderd turns such rows
#: into type bedrock, and so does the store).
ANTHROPIC_BEDROCK = (
    f"{IN_SYNC}; written as type bedrock: spec.type anthropic with spec.bedrock is deprecated "
    "(Coder runs Bedrock as a provider type of its own), use spec.type bedrock"
)


def _sync_events(
    result: ProviderResult, scratch: PassScratch, *, drifted: bool, message: str = IN_SYNC
) -> None:
    name = result.name
    if result.action == "created":
        scratch.note(EventReason.CREATED, f"Created Coder AI provider {name!r}")
    elif result.action == "adopted":
        scratch.note(EventReason.ADOPTED, f"Adopted existing Coder AI provider {name!r}")
    elif drifted or result.action == "revived":
        changed = ", ".join(result.changed_fields) or "deleted flag"
        scratch.warn(
            EventReason.DRIFT_REVERTED,
            f"Coder AI provider {name!r} was changed outside the operator ({changed}); "
            "reverted to the spec (driftPolicy: Revert)",
        )
    elif result.action == "updated":
        scratch.note(
            EventReason.UPDATED,
            f"Updated Coder AI provider {name!r}: {', '.join(result.changed_fields)}",
        )
    if result.action != "created" and (result.keys_added or result.keys_removed):
        scratch.note(
            EventReason.KEYS_ROTATED,
            f"API keys: {len(result.keys_added)} added, {len(result.keys_removed)} removed, "
            f"{len(result.keys_kept)} kept",
        )
    # One stable message: a condition message that depended on the last action would change
    # on the next (no-op) pass and cost a status write after every restart.
    scratch.set(ConditionState.true(ConditionType.SYNCED, Reason.SYNCED, message))
