"""Secret resolution: turn ``secretKeyRef``\\ s into values held only in memory.

Each reference names the spec field it came from, so every problem can say exactly which
entry is at fault (``spec.apiKeys[1].secretKeyRef``) and which Secret/key, never the value.
The revision is a digest of the identities (uid, resourceVersion) of the Secrets read: equal
revisions mean the operator consumed exactly the same Secret versions.

**Which Secrets may be used** (:class:`SecretAccess`). The operator can read every Secret of
the namespaces it watches; a user who may create an AIProvider must not get, through it, a
Secret they may not read themselves (Kubernetes' confused-deputy rule). So a Secret is used
only when it opts in: its annotation ``aigateway.dev/allowed-aiproviders`` is ``*`` or a
comma-separated list naming the AIProvider (``AIGW_SECRET_ACCESS=annotated``, the default).
Whoever may annotate a Secret may read it, so opting in gives nobody more than they have.
``AIGW_SECRET_ACCESS=namespace`` uses any Secret of the object's namespace (clusters without
namespace tenants). A gateway-key Secret the operator wrote is never usable as a provider
key, whatever its annotations.

**Where its values may go** (:class:`Destination`, :func:`allows_destination`). Naming the
consumer is not enough: whoever may edit that AIProvider (or, with ``*``, create one) could
point ``spec.baseURL`` at a host of their own, and Coder would send the key there. So the
opt-in binds the destination too: the annotation ``aigateway.dev/allowed-hosts`` lists the
hosts the values may be sent to (``*``, or comma-separated ``host`` / ``host:port``; a
``host`` alone means the URL's default port). A Secret without it is used only with the
provider type's own default endpoint: no ``spec.baseURL``, or one on the same https host and
port as the type's default (``api.openai.com`` for ``openai``; for Bedrock,
``bedrock-runtime.<region>.amazonaws.com``, where Coder sends requests signed with the AWS
keys). Types without a default (``azure``, ``openai-compat``, Bedrock ``mantle``) need the
annotation. A URL this module cannot read the host of unambiguously (user info, ``%``,
``\\``, blanks) matches nothing but ``*``. ``AIGW_SECRET_ACCESS=namespace`` (no tenants)
checks neither annotation.

A Secret that may not be used, for this consumer or this destination, is reported exactly
like a missing one (same reason, same message): the author learns nothing about it — not
that it exists, not its keys, not its values' length or equality, not which hosts it allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from aigateway_operator.api.common import Reason
from aigateway_operator.api.identity import (
    AIGATEWAYCODERDKEY,
    ALLOWED_AIPROVIDERS_ANNOTATION,
    ALLOWED_HOSTS_ANNOTATION,
    GATEWAY_KEY_OWNER_LABEL,
)
from aigateway_operator.config import SecretAccess
from aigateway_operator.kube.client import SecretData

__all__ = [
    "DEFAULT_ENDPOINT",
    "Destination",
    "Resolved",
    "SecretAccess",
    "SecretProblem",
    "SecretReader",
    "SecretRef",
    "allows_destination",
    "destination_of",
    "may_use",
    "resolve",
]


class SecretReader(Protocol):
    async def read_secret(self, namespace: str, name: str) -> SecretData | None: ...


@dataclass(frozen=True)
class SecretRef:
    """A reference from a spec field to one key of a Secret in the object's namespace."""

    field: str
    name: str
    key: str

    def describe(self) -> str:
        return f"{self.field} (Secret {self.name!r}, key {self.key!r})"


@dataclass(frozen=True)
class SecretProblem:
    """Why a reference could not be resolved. Stable ``reason``; ``message`` names, never values."""

    reason: Reason
    field: str
    message: str


@dataclass(frozen=True)
class Resolved:
    """Plaintext values by reference, plus the revision of the Secrets they came from."""

    values: dict[SecretRef, bytes] = field(repr=False)
    revision: str
    secrets: tuple[str, ...]

    def get(self, ref: SecretRef) -> bytes:
        """The raw value; shape checks belong to ``validation.rules``."""
        return self.values[ref]


def _gateway_key_secret(secret: SecretData) -> bool:
    """A Secret the operator wrote for an AIGatewayCoderdKey (its label or its owner)."""
    return GATEWAY_KEY_OWNER_LABEL in secret.labels or any(
        kind == AIGATEWAYCODERDKEY.kind for kind in secret.owner_kinds
    )


@dataclass(frozen=True)
class Destination:
    """Where a spec sends the values it references: the provider type's own default endpoint
    (``host`` None), or a host and port (``host`` "" for a URL whose host cannot be read
    unambiguously: it matches nothing but ``*``)."""

    host: str | None
    port: int | None = None

    @property
    def is_default(self) -> bool:
        return self.host is None

    def describe(self) -> str:
        if self.host is None:
            return "the provider type's default endpoint"
        return f"{self.host}:{self.port}" if self.host else "an unreadable host"


DEFAULT_ENDPOINT = Destination(None)
_UNREADABLE = Destination("", None)
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _host_port(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, or None when the host cannot be read
    unambiguously (so no two URL parsers could disagree on it)."""
    if any(c.isspace() or c in "\\%" for c in url) or not url.isprintable():
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def destination_of(base_url: str | None, default_url: str | None) -> Destination:
    """Where a spec with ``base_url`` sends its values, given the type's ``default_url``
    (None: the type has none). No ``base_url``, or one on the default's https host and port,
    is :data:`DEFAULT_ENDPOINT`."""
    if not base_url:
        return DEFAULT_ENDPOINT
    found = _host_port(base_url)
    if found is None:
        return _UNREADABLE
    scheme, host, port = found
    default = _host_port(default_url) if default_url else None
    if default is not None and default[0] == "https" and (scheme, host, port) == default:
        return DEFAULT_ENDPOINT
    return Destination(host, port)


def _allowed_hosts(secret: SecretData) -> list[tuple[str, int | None]]:
    """The annotation's entries as (host, port or None); ``("*", None)`` for any host.
    Entries that do not parse are dropped (they allow nothing)."""
    out: list[tuple[str, int | None]] = []
    for raw in secret.annotations.get(ALLOWED_HOSTS_ANNOTATION, "").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            out.append(("*", None))
            continue
        found = _host_port(f"https://{entry}/")
        if found is None or "/" in entry:
            continue
        _, host, port = found
        explicit = entry.rsplit(":", 1)[-1].isdigit() and not entry.endswith("]")
        out.append((host, port if explicit else None))
    return out


def allows_destination(secret: SecretData, destination: Destination) -> bool:
    """Whether ``secret``'s values may be sent to ``destination`` (see the module docs)."""
    if destination.is_default:
        return True
    for host, port in _allowed_hosts(secret):
        if host == "*":
            return True
        if not destination.host or host != destination.host:
            continue
        if port is None and destination.port in _DEFAULT_PORTS.values():
            return True
        if port == destination.port:
            return True
    return False


def may_use(
    secret: SecretData,
    consumer: str,
    access: SecretAccess,
    destination: Destination = DEFAULT_ENDPOINT,
) -> bool:
    """Whether the AIProvider named ``consumer`` may use ``secret`` and send its values to
    ``destination`` (see the module docs)."""
    if _gateway_key_secret(secret):
        return False
    if access is SecretAccess.NAMESPACE:
        return True
    allowed = secret.annotations.get(ALLOWED_AIPROVIDERS_ANNOTATION, "")
    names = {n.strip() for n in allowed.split(",") if n.strip()}
    if not ("*" in names or consumer in names):
        return False
    return allows_destination(secret, destination)


async def resolve(
    reader: SecretReader,
    namespace: str,
    refs: Sequence[SecretRef],
    *,
    consumer: str,
    access: SecretAccess = SecretAccess.ANNOTATED,
    destination: Destination = DEFAULT_ENDPOINT,
) -> Resolved | list[SecretProblem]:
    """Read every referenced Secret once; return all values or every problem found.

    ``consumer`` is the AIProvider's name and ``destination`` where its spec sends the
    values; a Secret that does not allow both (:func:`may_use`) is treated as absent.
    """
    secrets: dict[str, SecretData | None] = {}
    for name in sorted({r.name for r in refs}):
        secret = await reader.read_secret(namespace, name)
        usable = secret is not None and may_use(secret, consumer, access, destination)
        secrets[name] = secret if usable else None
    problems: list[SecretProblem] = []
    values: dict[SecretRef, bytes] = {}
    for ref in refs:
        secret = secrets[ref.name]
        if secret is None:
            problems.append(
                SecretProblem(
                    Reason.SECRET_NOT_FOUND,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} was not found in namespace "
                    f"{namespace!r}, or does not allow this AIProvider to use it, or to "
                    "send it where this spec sends it (annotations "
                    f"{ALLOWED_AIPROVIDERS_ANNOTATION}, {ALLOWED_HOSTS_ANNOTATION})",
                )
            )
            continue
        raw = secret.data.get(ref.key)
        if raw is None:
            problems.append(
                SecretProblem(
                    Reason.SECRET_KEY_MISSING,
                    ref.field,
                    f"{ref.field}: Secret {ref.name!r} has no key {ref.key!r}",
                )
            )
            continue
        values[ref] = raw
    if problems:
        return problems
    ident = "\n".join(
        f"{name}\0{s.uid}\0{s.resource_version}" for name, s in sorted(secrets.items()) if s
    )
    return Resolved(
        values=values,
        revision=hashlib.sha256(ident.encode()).hexdigest()[:16],
        secrets=tuple(sorted(secrets)),
    )
