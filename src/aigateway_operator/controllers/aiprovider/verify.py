"""``CredentialsValid``: the Bedrock identity checked with STS (re-used while still fresh).

``GetCallerIdentity`` with the configured identity (static keys from the spec's Secret, or the
operator's own, e.g. IRSA), then ``AssumeRole`` on ``roleARN`` (with the external id). The
verdict is kept in status and re-checked when the spec or the Secrets change and every
``AIGW_VERIFY_INTERVAL_S``; while STS is unreachable the last verdict is kept (marked stale by
a retry) rather than flipped to Unknown. Invalid credentials do not block the database write.
"""

from __future__ import annotations

import asyncio
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
from aigateway_operator.store import OwnerRef

__all__ = ["RETRY_STS", "VerifyResult", "verify_identity"]

RETRY_STS = 30.0


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
    last = current.bedrock.last_verified_at if current.bedrock else None
    fresh = (
        previous is not None
        and previous.reason != Reason.STS_UNAVAILABLE
        and previous.observed_generation == ident.generation
        and current.observed_secrets_revision == secrets.revision
        and last is not None
        and wiring.clock() - last < timedelta(seconds=wiring.settings.verify_interval_s)
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
        scratch.set(
            ConditionState.true(ConditionType.CREDENTIALS_VALID, Reason.VERIFIED, verdict.message)
        )
        return VerifyResult(verdict.to_status(now), verdict.reason, True)
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
    scratch.set(
        ConditionState.false(ConditionType.CREDENTIALS_VALID, verdict.reason, verdict.message)
    )
    if previous is None or previous.reason != verdict.reason:
        scratch.warn(verdict.reason, verdict.message)
    return VerifyResult(verdict.to_status(now), verdict.reason, False)
