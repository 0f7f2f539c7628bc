"""The key as one pass moves it, and the pass's scratch state.

:class:`KeyState` starts from the object's status and is updated step by step (issue,
complete, rotate, retire); the status is rebuilt from it at the end. :class:`KeyPass` is the
shared :class:`~aigateway_operator.controllers.shared.PassScratch` plus what every step needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aigateway_operator.api.gatewaykey import GatewayKeyStatus, RotationStatus
from aigateway_operator.controllers.gatewaykey.secret import KeySecrets, parse_uuid
from aigateway_operator.controllers.shared import ObjectIdentity, PassScratch
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import GatewayKeyInfo

__all__ = ["KeyPass", "KeyState", "StopPass", "whole_seconds"]


def whole_seconds(when: datetime | None) -> datetime | None:
    """``when`` in UTC without microseconds (metav1.Time's precision)."""
    return when.astimezone(UTC).replace(microsecond=0) if when is not None else None


@dataclass
class KeyState:
    """The key as this pass leaves it (starts from status, updated step by step)."""

    key_id: uuid.UUID | None
    prefix: str | None
    created_at: datetime | None
    generation: int | None
    previous_id: uuid.UUID | None
    previous_prefix: str | None
    retire_after: datetime | None
    last_rotated_at: datetime | None
    info: GatewayKeyInfo | None = None

    @classmethod
    def from_status(cls, status: GatewayKeyStatus) -> KeyState:
        rot = status.rotation or RotationStatus()
        return cls(
            key_id=parse_uuid(status.key_id),
            prefix=status.key_prefix,
            created_at=status.created_at,
            generation=rot.generation,
            previous_id=parse_uuid(rot.previous_key_id),
            previous_prefix=rot.previous_key_prefix,
            retire_after=rot.retire_after,
            last_rotated_at=rot.last_rotated_at,
        )

    def clear_previous(self) -> None:
        self.previous_id = self.previous_prefix = self.retire_after = None


@dataclass(kw_only=True)
class KeyPass(PassScratch):
    """One gateway-key pass: the shared scratch state plus what every step needs."""

    wiring: Wiring
    kube: KeySecrets
    ident: ObjectIdentity
    current: GatewayKeyStatus
    written: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, name, resourceVersion) of Secrets this pass wrote: not news to the watch."""


class StopPass(Exception):
    """End the pass early; the conditions explaining why are already recorded."""
