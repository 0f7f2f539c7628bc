"""Typed errors of the storage layer.

Every error message is written for the person who has to act on it (which object, which
column, which digest) and **never** contains secret material: no API keys, no gateway
secrets, no encryption keys, no DSN password, and no raw Postgres message (whose DETAIL
line can echo row values). Postgres errors are translated by constraint name instead.

``retryable`` tells the caller (the reconcile loop) whether trying the same operation again
later can succeed without anybody changing anything: connection loss and lock timeouts are
retryable; a name conflict is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = [
    "DuplicateKey",
    "EncryptionKeyMismatch",
    "GatewayKeyConflict",
    "InsufficientPrivileges",
    "InvalidKey",
    "InvalidName",
    "InvalidProvider",
    "NameConflict",
    "NameTaken",
    "NotFound",
    "NotSupportedByCoder",
    "PlaintextRefused",
    "RevivalUnconfirmed",
    "SchemaMismatch",
    "SecretCollision",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "TypeMismatch",
    "UnknownKeyReference",
    "held_by",
]


class StoreError(Exception):
    """Base class of every error raised by :mod:`aigateway_operator.store`."""

    retryable: ClassVar[bool] = False
    """True when the same call may succeed later without anyone changing anything."""


class StoreUnavailable(StoreError):
    """Postgres could not be reached, or the connection broke mid-transaction.

    Every operation is one transaction, so nothing was half-applied: retry later.
    """

    retryable = True


class StoreTimeout(StoreUnavailable):
    """A statement or lock wait hit its timeout, or Postgres aborted us (deadlock, serialization).

    Usually coderd (or another replica) held advisory lock 10 or a row lock for longer than our
    ``lock_timeout``. Nothing was written; retry later.
    """


class SchemaMismatch(StoreError):
    """Coder's schema lacks something the operator relies on (checked at start)."""

    def __init__(self, missing: Sequence[str], hint: str = "") -> None:
        self.missing = tuple(missing)
        lines = "\n".join(f"  - {item}" for item in self.missing)
        msg = f"Coder's database schema is missing {len(self.missing)} item(s) we rely on:\n{lines}"
        if hint:
            msg += f"\n{hint}"
        super().__init__(msg)


class InsufficientPrivileges(SchemaMismatch):
    """The operator's database role lacks a privilege it needs (``deploy/postgres/grants.sql``).

    ``missing`` names each one exactly, e.g. ``DELETE on table public.ai_provider_keys``.
    Nothing was written (the statement that needed it rolled its transaction back).
    """

    def __init__(self, missing: Sequence[str], hint: str = "") -> None:
        self.missing = tuple(missing)
        lines = "\n".join(f"  - {item}" for item in self.missing)
        msg = (
            f"the operator's database role lacks {len(self.missing)} privilege(s) it needs:\n"
            f"{lines}\n"
            + (hint or "Grant them as in deploy/postgres/grants.sql; nothing was written.")
        )
        StoreError.__init__(self, msg)


class NotSupportedByCoder(StoreError):
    """The detected Coder release does not have what the call needs (e.g. AI Gateway keys
    before v2.35). Upgrade Coder; retrying does not help until then."""


class EncryptionKeyMismatch(StoreError):
    """Our encryption keys do not match what coderd uses, so writing would corrupt data.

    Raised before anything is written (fail closed). The message names key *digests*
    (first 7 hex of sha256("aes256gcm" + key), the same identifiers coderd logs), never keys.
    """


class UnknownKeyReference(EncryptionKeyMismatch):
    """A row is encrypted under a key digest we were not given, so we cannot read or compare it.

    Add the key (as a non-primary entry of ``AIGW_ENCRYPTION_KEYS``) or rotate the row with
    ``coder server dbcrypt rotate``.
    """

    def __init__(self, digest: str, where: str) -> None:
        self.digest = digest
        super().__init__(
            f"{where} is encrypted with key digest {digest!r}, which is not among the "
            "configured AIGW_ENCRYPTION_KEYS; add that key (any position after the first) "
            "so the row can be read and re-encrypted"
        )


class PlaintextRefused(EncryptionKeyMismatch):
    """No encryption keys are configured, but writing plaintext was not chosen or cannot be.

    Raised at start (``Store.open``) when plaintext was not chosen with
    ``AIGW_ALLOW_PLAINTEXT=true``, and on every write of a secret column (an API key, the
    settings blob) while coderd has an active key in ``dbcrypt_keys``: coderd encrypts, so a
    plaintext row from us would be the one unencrypted secret in its database. The message
    names the active key *digests*, never a key. Nothing was written.
    """

    def __init__(self, message: str, active_digests: Sequence[str] = ()) -> None:
        self.active_digests = tuple(active_digests)
        super().__init__(message)


class RevivalUnconfirmed(StoreError):
    """The owner's row is soft-deleted, so this write would bring it back (``revive=False``).

    A re-created object of the same identity takes its row back; a pass that still sees an
    object someone already deleted (a stale view, a second active replica) must not. The
    store cannot tell the two apart; the caller checks the object's current state and calls
    again with ``revive=True``. Nothing was written."""

    def __init__(self, name: str) -> None:
        super().__init__(f"AI provider {name!r} is soft-deleted; writing it would revive it")


class InvalidProvider(StoreError):
    """The desired provider breaks a rule coderd enforces (or its runtime needs) for this type."""

    def __init__(self, message: str, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class InvalidKey(InvalidProvider):
    """An API key is empty or has surrounding whitespace (coderd rejects both)."""


class DuplicateKey(InvalidProvider):
    """The same API key appears twice; coderd's key pool refuses to build such a provider."""

    def __init__(self, positions: Sequence[int]) -> None:
        self.positions = tuple(positions)
        where = ", ".join(str(p) for p in self.positions)
        super().__init__(
            f"apiKeys entries {where} (1-based) have the same value; every key of a provider "
            "must be distinct because coderd's key pool refuses duplicates",
            field="apiKeys",
        )


class InvalidName(StoreError):
    """A provider or gateway-key name does not satisfy Coder's CHECK constraint."""

    def __init__(self, kind: str, name: str, rule: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"invalid {kind} name {name!r}: {rule}")


class NameTaken(StoreError):
    """Another live row already uses this name (names are unique among live rows).

    ``holder`` names who holds it when the store knows (gateway keys: ``AIGatewayCoderdKey
    ns/name``, ``operator instance X``, or a key made in Coder); it is in the message too.
    """

    def __init__(self, kind: str, name: str, detail: str = "", *, holder: str = "") -> None:
        self.kind = kind
        self.name = name
        self.holder = holder
        msg = f"{kind} name {name!r} is already used by another live row"
        detail = detail or (f"it is held by {holder}" if holder else "")
        super().__init__(f"{msg}; {detail}" if detail else msg)


def held_by(holder: tuple[str, str, str, str], instance: str) -> str:
    """How a message names the owner of a row: ``AIProvider team-a/openai`` when it is this
    operator install's, ``operator instance X`` when another install's."""
    other, kind, namespace, name = holder
    if other != instance:
        return f"operator instance {other!r}"
    return f"{kind} {namespace}/{name}"


class NameConflict(NameTaken):
    """A live provider with this name exists that no object of this operator owns.

    It is left untouched. Pass ``adopt=True`` (where adoption is allowed) to take it over (its
    id, and so any chat model configuration that references it, is kept), or pick another name.
    """

    def __init__(self, name: str, row_id: str, detail: str = "") -> None:
        self.row_id = row_id
        super().__init__(
            "AI provider",
            name,
            detail or f"row {row_id} was made in Coder, not by this operator",
        )


class TypeMismatch(StoreError):
    """Adopting a live provider of another type: adoption never changes a provider's type."""

    def __init__(self, name: str, stored: str, desired: str) -> None:
        self.name = name
        self.stored = stored
        self.desired = desired
        super().__init__(
            f"AI provider {name!r} in Coder has type {stored!r}, the spec says {desired!r}; "
            "adoption never changes a provider's type"
        )


class NotFound(StoreError):
    """The row the call refers to does not exist (or is soft-deleted)."""


class GatewayKeyConflict(StoreError):
    """A gateway key with this id exists but with another secret or name than requested."""


class SecretCollision(StoreError):
    """Generated gateway secrets kept colliding with existing prefixes/hashes (retries exhausted).

    With 62^7 possible prefixes this means something is badly wrong (e.g. a broken RNG);
    with a caller-supplied secret it means that exact secret is already in use.
    """
