"""The key as one pass sees it, and the pass's scratch state.

:class:`KeyState` is what the operator's ownership records say (``store.gateway_key_state``:
the current, previous and pending keys of this object's identity, joined with Coder's rows,
and the ``spec.rotation.generation`` the current key was issued for), re-read after every
write of the pass; the status is rebuilt from it at the end. Whether a rotation was asked for
is decided from that record, never from the status (which a status writer could set to the
bumped generation and so cancel a rotation someone asked for) nor from the Secret. Only a key
recorded by an earlier release, without that record, falls back to the Secret's annotation
when the Secret holds the key (else: no rotation is due). The time of the last rotation once
its previous key is gone comes from the status, for display only. Nothing read from a Secret
or the status ever names a row to act on, or decides a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from aigateway_operator.api.aiprovider import DeletionPolicy
from aigateway_operator.api.gatewaykey import GatewayKeySpec, GatewayKeyStatus, RotationStatus
from aigateway_operator.controllers.actors import operator_actor, spec_actor
from aigateway_operator.controllers.gatewaykey.secret import KeySecrets
from aigateway_operator.controllers.shared import ObjectIdentity, PassScratch
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import (
    Actor,
    GatewayKeyInfo,
    GatewayKeyOwnership,
    OwnerPolicy,
    OwnerRef,
)

__all__ = ["KeyPass", "KeyState", "StopPass", "owner_policy", "whole_seconds"]


def whole_seconds(when: datetime | None) -> datetime | None:
    """``when`` in UTC without microseconds (metav1.Time's precision)."""
    return when.astimezone(UTC).replace(microsecond=0) if when is not None else None


def owner_policy(spec: GatewayKeySpec) -> OwnerPolicy:
    """``spec.deletionPolicy`` as the ownership records keep it."""
    return "Orphan" if spec.deletion_policy is DeletionPolicy.ORPHAN else "Delete"


@dataclass
class KeyState:
    """The records of this object's keys (authority) plus its own schedule hints."""

    own: GatewayKeyOwnership
    generation: int | None
    """``spec.rotation.generation`` the current key was issued for."""
    last_rotated_at: datetime | None
    grace: timedelta

    @classmethod
    def of(cls, own: GatewayKeyOwnership, status: GatewayKeyStatus, grace: timedelta) -> KeyState:
        rot = status.rotation or RotationStatus()
        return cls(own, own.current_rotation_generation, rot.last_rotated_at, grace)

    @property
    def info(self) -> GatewayKeyInfo | None:
        """The current key's row (None: none recorded, or deleted in Coder)."""
        return self.own.current

    @property
    def key_id(self) -> str | None:
        return str(self.own.current.id) if self.own.current else None

    @property
    def prefix(self) -> str | None:
        return self.own.current.secret_prefix if self.own.current else None

    @property
    def created_at(self) -> datetime | None:
        return self.own.current.created_at if self.own.current else None

    @property
    def previous(self) -> GatewayKeyInfo | None:
        return self.own.previous

    @property
    def retire_after(self) -> datetime | None:
        """When the previous key may go at the earliest: its rotation plus the grace period,
        rounded *up* to whole seconds (metav1.Time's precision): rounding down would end the
        grace up to a second early. It stays longer while gateways still use it
        (:mod:`.rotation`)."""
        since = self.own.previous_since
        if self.own.previous is None or since is None:
            return None
        end = (since + self.grace).astimezone(UTC)
        whole = end.replace(microsecond=0)
        return whole if whole == end else whole + timedelta(seconds=1)

    @property
    def rotated_at(self) -> datetime | None:
        since = self.own.previous_since if self.own.previous is not None else None
        return since or self.last_rotated_at


@dataclass(kw_only=True)
class KeyPass(PassScratch):
    """One gateway-key pass: the shared scratch state plus what every step needs."""

    wiring: Wiring
    kube: KeySecrets
    ident: ObjectIdentity
    current: GatewayKeyStatus
    written: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, name, resourceVersion) of Secrets this pass wrote: not news to the watch."""
    spec_digest: str = ""
    """The digest of the spec as the pass got it (``actors.spec_digest``, taken once at the
    start of the pass): it finds the requester of this generation."""
    actor: Actor | None = None
    """Who caused the next write (``controllers/actors.py``); set by each step that writes."""
    _requester: Actor | None = field(default=None, repr=False)
    """The spec's requester, once read (:meth:`as_requester`)."""

    @property
    def owner(self) -> OwnerRef:
        """This object's identity in the ownership records (with the current actor)."""
        owner = self.ident.owner(self.wiring.settings.instance_id)
        return owner if self.actor is None else replace(owner, actor=self.actor)

    async def as_requester(self) -> None:
        """The next write is the spec's: its requester (one read, once per pass)."""
        if self._requester is None:
            self._requester = await spec_actor(self.wiring, self.ident, self.spec_digest)
        self.actor = self._requester

    def as_operator(self, why: str) -> None:
        """The next write is the operator's own doing (a repair, a schedule)."""
        self.actor = operator_actor(why)

    async def reload(self, state: KeyState) -> None:
        """Re-read the records after a write."""
        state.own = await self.wiring.store.gateway_key_state(self.owner)


class StopPass(Exception):
    """End the pass early; the conditions explaining why are already recorded."""
