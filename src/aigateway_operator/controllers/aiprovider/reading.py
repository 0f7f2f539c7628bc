"""One reading of an AIProvider: from what kopf hands over to what every step needs.

:func:`read_provider` turns the object's identity (``ObjectIdentity.from_body`` of kopf's
body) and its ``spec`` into the typed spec, the Coder provider name it claims and the names
of the Secrets it references, or into the reason it cannot be acted on (the ``InvalidSpec``
message, naming the field). The pass, admission, the index and the deletion all read the
spec through it, so they cannot disagree about what an object says: an invalid
``metadata.name`` without ``spec.providerName`` is the same ``InvalidSpec`` to all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigateway_operator.api.aiprovider import AIProviderSpec, InvalidSpecError
from aigateway_operator.controllers.aiprovider.secrets import ProviderSecretRefs
from aigateway_operator.controllers.shared import ObjectIdentity

__all__ = ["ProviderReading", "read_provider"]

_NO_REFS = ProviderSecretRefs(())


@dataclass(frozen=True)
class ProviderReading:
    """What one AIProvider says, read once."""

    ident: ObjectIdentity
    spec: AIProviderSpec | None
    """None when the spec does not parse (``problem`` says why)."""
    provider_name: str | None
    """The Coder provider name the object claims (``spec.providerName``, by default
    ``metadata.name``); None when the spec does not parse or the name is not a valid one."""
    refs: ProviderSecretRefs
    """The spec's Secret references, each named by its field; none when it does not parse.
    Built once here: the pass resolves and checks exactly these."""
    problem: str | None = None
    """Why the object cannot be acted on (an ``InvalidSpec`` message naming the field)."""

    @property
    def secret_names(self) -> frozenset[str]:
        """The Secrets (in the object's namespace) the spec references."""
        return frozenset(self.refs.secret_names())


def read_provider(ident: ObjectIdentity, spec_body: object) -> ProviderReading:
    """Read ``spec_body`` (kopf's ``body["spec"]``) of the object ``ident``; never raises."""
    try:
        spec = AIProviderSpec.from_body(spec_body if isinstance(spec_body, dict) else None)
    except InvalidSpecError as exc:
        return ProviderReading(ident, None, None, _NO_REFS, problem=str(exc))
    refs = ProviderSecretRefs.of(spec)
    try:
        name = spec.effective_provider_name(ident.name)
    except InvalidSpecError as exc:
        return ProviderReading(ident, spec, None, refs, problem=str(exc))
    return ProviderReading(ident, spec, name, refs)
