"""What an STS verification takes and returns, without importing the AWS SDK.

Kept apart from ``validation.aws`` so that the operator only loads boto3 (about 20 MB) once a
Bedrock provider actually needs verifying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aigateway_operator.api.aiprovider import BedrockIdentityStatus
from aigateway_operator.api.common import Reason

__all__ = ["StaticCredentials", "Verdict", "VerdictReason"]

#: The reasons a verification ends with (``CredentialsValid``'s, and the ``reason`` of
#: ``aigw_sts_verifications_total``; all but Verified that of ``aigw_sts_errors_total``).
VerdictReason = Literal[
    Reason.VERIFIED,
    Reason.NO_BASE_IDENTITY,
    Reason.ACCESS_DENIED,
    Reason.INVALID_ROLE_ARN,
    Reason.STS_UNAVAILABLE,
]


@dataclass(frozen=True)
class StaticCredentials:
    """Long-term access keys read from the spec's Secret. Excluded from ``repr``."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification; ``message`` is safe to show anywhere."""

    ok: bool
    reason: VerdictReason
    message: str
    caller_arn: str | None = None
    assumed_role_arn: str | None = None
    account_id: str | None = None
    expiration: datetime | None = None

    @property
    def retryable(self) -> bool:
        """Whether retrying unchanged may succeed (STS down or throttling)."""
        return self.reason is Reason.STS_UNAVAILABLE

    def to_status(self, verified_at: datetime) -> BedrockIdentityStatus:
        """``status.bedrock`` for this verdict (empty identity fields on failure)."""
        return BedrockIdentityStatus(
            caller_arn=self.caller_arn,
            assumed_role_arn=self.assumed_role_arn,
            account_id=self.account_id,
            expiration=self.expiration,
            last_verified_at=verified_at,
        )
