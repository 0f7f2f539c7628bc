"""What one AIProvider pass acts on, gathered once at its start.

:func:`gather` is the only step of a pass that reads the object: the identity the runner
built (once per pass, handed down), the current status parsed once (the conditions the pass
starts from, and the base of its status patch: never re-validated), the spec read once
(:func:`.reading.read_provider`: typed spec, provider name, Secret references), the spec's
digest (what the operator's records and the admission record know the spec by), the owner
record the store knows the object by, and the Secrets resolved and checked. Every later step
takes these values; none goes back to kopf's body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aigateway_operator.api.aiprovider import AIProviderStatus
from aigateway_operator.controllers.actors import spec_digest
from aigateway_operator.controllers.aiprovider.reading import ProviderReading, read_provider
from aigateway_operator.controllers.aiprovider.secrets import (
    ProviderSecrets,
    resolve_provider_secrets,
)
from aigateway_operator.controllers.aiprovider.status import parse_status
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import OwnerRef
from aigateway_operator.validation.rules import Finding

__all__ = ["Inputs", "gather"]


@dataclass(frozen=True)
class Inputs:
    """Everything one pass reads about its object, read once."""

    ident: ObjectIdentity
    current: AIProviderStatus
    """The status as last written (the empty status when someone wrote one that does not
    parse)."""
    reading: ProviderReading
    spec_digest: str
    """``actors.spec_digest`` of the spec as the pass got it."""
    owner: OwnerRef
    """The object as the store's ownership records know it (no actor yet: the pass decides
    who caused its write)."""
    secrets: ProviderSecrets | Sequence[Finding] | None
    """The checked values behind the spec's references, or every problem found with them;
    None when the spec cannot be acted on (``reading.problem``), so nothing was read."""


async def gather(
    wiring: Wiring, ident: ObjectIdentity, spec_body: object, status_body: object
) -> Inputs:
    """Read the object (``spec_body``, ``status_body``: kopf's ``body["spec"]`` and
    ``body["status"]``) and the Secrets its spec references; never raises for bad input."""
    # The body is read before the first await: nothing below looks at it again.
    current = parse_status(status_body)
    reading = read_provider(ident, spec_body)
    digest = spec_digest(spec_body)
    owner = ident.owner(wiring.settings.instance_id)
    secrets: ProviderSecrets | Sequence[Finding] | None = None
    if reading.spec is not None and reading.provider_name is not None:
        secrets = await resolve_provider_secrets(
            wiring.kube,
            ident.namespace,
            reading.spec,
            reading.refs,
            consumer=ident.name,
            access=wiring.settings.secret_access,
        )
    return Inputs(ident, current, reading, digest, owner, secrets)
