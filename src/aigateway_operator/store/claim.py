"""Which provider row a write for an owner may take, and how: the claim rule, pure.

One rule for :meth:`ProviderOps.upsert`, :meth:`ProviderOps.preview` and the unit tests'
fake store (``tests/support/fakes.py``), so the three cannot disagree about who may have a
name. The caller loads the candidates (the row recorded for the owner, or the soft-deleted row
with the id derived for it; another live row holding the wanted name) and asks
:func:`claim`; nothing here touches a connection.

* Our row is live: it is updated (renamed if need be); a name held by another live row is
  refused (:class:`NameTaken`).
* Another live row holds the name: recorded for another identity (or install), it stays
  theirs (:class:`NameTaken` naming the holder; the newcomer waits until it is gone); recorded
  for nobody (made in Coder), it is adopted only when the caller asked to adopt
  (:class:`NameConflict` otherwise), never changing its type (:class:`TypeMismatch`; a type
  this operator does not know is left to the update, which leaves the row alone).
* Our row is soft-deleted and the name is free: it is revived.
* Nothing: a row is created.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from aigateway_operator.store.errors import NameConflict, NameTaken, TypeMismatch, held_by
from aigateway_operator.store.models import OwnerRef, ProviderType

__all__ = ["Claim", "NameHolder", "claim"]

_KNOWN_TYPES = frozenset(t.value for t in ProviderType)


class Claim(StrEnum):
    """What a write does with the row it takes."""

    UPDATE = "update"
    ADOPT = "adopt"
    REVIVE = "revive"
    CREATE = "create"


@dataclass(frozen=True)
class NameHolder:
    """A live row holding the wanted name that is not the owner's own."""

    id: uuid.UUID
    type: str
    """Its ``ai_provider_type`` label (possibly one this operator does not know)."""
    recorded_for: tuple[str, str, str, str] | None
    """The identity its ownership record names (None: made in Coder, unrecorded)."""


def claim(
    *,
    ours_deleted: bool | None,
    holder: NameHolder | None,
    name: str,
    type_: ProviderType,
    owner: OwnerRef,
    adopt: bool,
) -> Claim:
    """The claim of a write of provider ``name`` (``type_``) for ``owner``.

    ``ours_deleted``: whether the owner's own row is soft-deleted (None: it has none).
    Raises :class:`NameTaken`, :class:`NameConflict` or :class:`TypeMismatch` as the module
    docstring says, in that order.
    """
    if ours_deleted is False:
        if holder is not None:
            who = held_by(holder.recorded_for, owner.instance) if holder.recorded_for else ""
            raise NameTaken(
                "AI provider",
                name,
                "cannot rename the provider to it" + (f"; it is held by {who}" if who else ""),
                holder=who,
            )
        return Claim.UPDATE
    if holder is not None:
        if holder.recorded_for is not None:
            raise NameTaken(
                "AI provider", name, holder=held_by(holder.recorded_for, owner.instance)
            )
        if not adopt:
            raise NameConflict(name, str(holder.id))
        if holder.type in _KNOWN_TYPES and holder.type != type_.value:
            raise TypeMismatch(name, holder.type, type_.value)
        return Claim.ADOPT
    return Claim.CREATE if ours_deleted is None else Claim.REVIVE
