"""What every pass needs, built once at operator start and handed down explicitly.

The operator layer builds one :class:`Wiring` in kopf's startup handler (the store opened,
the one Kubernetes client, the Event recorder) and the two kinds' controllers on top of it;
tests build one with fakes where the tier allows.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aigateway_operator.config import Settings
from aigateway_operator.kube import EventRecorder, Kube
from aigateway_operator.status.conditions import utc_now
from aigateway_operator.store import Store
from aigateway_operator.validation.identity import StaticCredentials, Verdict

__all__ = ["Verifier", "Wiring", "fingerprint_key"]

Verifier = Callable[[str | None, str | None, str | None, StaticCredentials | None], Verdict]


def _default_verifier(
    region: str | None,
    role_arn: str | None,
    external_id: str | None,
    static: StaticCredentials | None,
) -> Verdict:
    # Imported on first use: boto3 costs ~20 MB, needed only once a Bedrock provider exists.
    from aigateway_operator.validation.aws import verify_bedrock_identity

    return verify_bedrock_identity(region, role_arn, external_id, static)


def fingerprint_key(settings: Settings) -> bytes:
    """The key of status fingerprints, derived from a secret the operator already holds.

    The primary encryption key when there is one (so fingerprints are as strong as the
    at-rest encryption), else the database URL (a secret too). Never stored anywhere.
    """
    keys = settings.encryption_key_bytes()
    material = keys[0] if keys else (settings.require_database_url().encode())
    return hmac.new(material, b"aigateway-operator/status-fingerprint/v1", hashlib.sha256).digest()


@dataclass
class Wiring:
    """The dependencies of both kinds' passes."""

    settings: Settings
    store: Store
    kube: Kube
    events: EventRecorder | None
    """None in tests that do not look at Events."""
    fingerprint_key: bytes = field(repr=False)
    verifier: Verifier = _default_verifier
    clock: Callable[[], datetime] = utc_now
