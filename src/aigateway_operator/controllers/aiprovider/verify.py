"""``CredentialsValid``: the Bedrock identity checked with STS (re-used while still fresh).

``GetCallerIdentity`` with the configured identity (static keys from the spec's Secret, or the
operator's own, e.g. IRSA), then ``AssumeRole`` on ``roleARN`` (with the external id). The
verdict is kept in status and re-checked when the spec or the Secrets change and every
``AIGW_VERIFY_INTERVAL_S``; while STS is unreachable the last verdict is kept (marked stale by
a retry) rather than flipped to Unknown. Invalid credentials do not block the database write.

Whether the verdict in status is still fresh is the operator's own record's to say
(``owners.verified_*``: for which object generation and Secret versions STS was asked, when,
and a digest of the verdict it wrote), never the status's: a status writer who sets
``CredentialsValid=True`` with a current ``observedGeneration`` and ``lastVerifiedAt`` gets
STS asked again, and the real verdict written over theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import timedelta

from aigateway_operator.api.aiprovider import (
    AIProviderSpec,
    AIProviderStatus,
    BedrockIdentityStatus,
)
from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.controllers.aiprovider.secrets import ProviderSecrets
from aigateway_operator.controllers.shared import ObjectIdentity, PassScratch
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import OwnerRef, StoreError, VerificationRecord

__all__ = ["RETRY_STS", "VerifyResult", "verdict_digest", "verify_identity"]

log = logging.getLogger("aigateway_operator")

RETRY_STS = 30.0


def verdict_digest(
    status: str, reason: str, message: str, bedrock: BedrockIdentityStatus | None
) -> str:
    """sha256 of a verdict as the status shows it (the condition and the identity it names;
    not the times, which the record keeps itself)."""
    b = bedrock or BedrockIdentityStatus()
    text = json.dumps(
        [str(status), str(reason), message, b.caller_arn, b.assumed_role_arn, b.account_id]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _inputs(ident: ObjectIdentity, secrets: ProviderSecrets) -> str:
    return f"{ident.uid}/{ident.generation}/{secrets.revision}"


async def _recorded(
    wiring: Wiring, ident: ObjectIdentity, owner: OwnerRef
) -> VerificationRecord | None:
    try:
        return await wiring.store.provider_verification(owner)
    except StoreError as exc:
        log.info("the STS verification record could not be read: %s", exc, extra=ident.log)
        return None


async def _record(
    wiring: Wiring, ident: ObjectIdentity, owner: OwnerRef, record: VerificationRecord
) -> None:
    try:
        await wiring.store.record_provider_verification(owner, record)
    except StoreError as exc:  # the next pass asks STS again: costly, never wrong
        log.info("the STS verification was not recorded: %s", exc, extra=ident.log)


class VerifyResult:
    """What the STS step leaves for the status and the metrics."""

    __slots__ = ("bedrock", "ok", "reason")

    def __init__(self, bedrock: BedrockIdentityStatus | None, reason: str | None, ok: bool) -> None:
        self.bedrock = bedrock
        self.reason = reason
        """The verdict's reason when STS was called this pass (None: not called)."""
        self.ok = ok


async def verify_identity(
    wiring: Wiring,
    ident: ObjectIdentity,
    owner: OwnerRef,
    spec: AIProviderSpec,
    current: AIProviderStatus,
    secrets: ProviderSecrets,
    scratch: PassScratch,
) -> VerifyResult:
    """Set ``CredentialsValid``; return ``status.bedrock`` and what was called."""
    if spec.bedrock is None:
        scratch.set(
            ConditionState.true(
                ConditionType.CREDENTIALS_VALID,
                Reason.NOT_APPLICABLE,
                "No AWS identity to verify for this provider type",
            )
        )
        return VerifyResult(None, None, True)
    previous = current.condition(ConditionType.CREDENTIALS_VALID)
    inputs = _inputs(ident, secrets)
    record = await _recorded(wiring, ident, owner) if previous is not None else None
    fresh = (
        previous is not None
        and record is not None
        and previous.reason != Reason.STS_UNAVAILABLE
        and record.inputs == inputs
        and record.digest
        == verdict_digest(previous.status, previous.reason, previous.message, current.bedrock)
        and wiring.clock() - record.at < timedelta(seconds=wiring.settings.verify_interval_s)
    )
    if fresh and previous is not None:
        scratch.set(
            ConditionState(previous.type, previous.status, previous.reason, previous.message)
        )
        return VerifyResult(current.bedrock, None, True)
    b = spec.bedrock
    external_id = b.external_id
    if b.role_arn and not external_id:
        # coderd generates an external id when none is given; verify with the one it will use.
        stored = await wiring.store.get_provider(owner)
        if stored is not None and stored.bedrock is not None:
            external_id = stored.bedrock.external_id
    verdict = await asyncio.to_thread(
        wiring.verifier, b.region, b.role_arn, external_id, secrets.static
    )
    now = wiring.clock()
    if verdict.ok:
        cond = ConditionState.true(
            ConditionType.CREDENTIALS_VALID, Reason.VERIFIED, verdict.message
        )
        scratch.set(cond)
        bedrock = verdict.to_status(now)
        digest = verdict_digest(cond.status, cond.reason, cond.message, bedrock)
        await _record(wiring, ident, owner, VerificationRecord(inputs, digest, now))
        return VerifyResult(bedrock, verdict.reason, True)
    if verdict.retryable:
        scratch.retry(RETRY_STS, verdict.message)
        if previous is not None and previous.reason != Reason.STS_UNAVAILABLE:
            # Keep the last verdict while STS is unreachable; the retry refreshes it.
            scratch.set(
                ConditionState(previous.type, previous.status, previous.reason, previous.message)
            )
            return VerifyResult(current.bedrock, verdict.reason, False)
        scratch.set(
            ConditionState.unknown(
                ConditionType.CREDENTIALS_VALID, Reason.STS_UNAVAILABLE, verdict.message
            )
        )
        return VerifyResult(current.bedrock, verdict.reason, False)
    cond = ConditionState.false(ConditionType.CREDENTIALS_VALID, verdict.reason, verdict.message)
    scratch.set(cond)
    if previous is None or previous.reason != verdict.reason:
        scratch.warn(verdict.reason, verdict.message)
    bedrock = verdict.to_status(now)
    digest = verdict_digest(cond.status, cond.reason, cond.message, bedrock)
    await _record(wiring, ident, owner, VerificationRecord(inputs, digest, now))
    return VerifyResult(bedrock, verdict.reason, False)
