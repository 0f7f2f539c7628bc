"""What a gateway key's Secret holds, read defensively (it may be missing or edited by hand).

The Secret is a delivery target, never an authority: whoever may edit Secrets in the
namespace may write anything into it. Its value is compared with the hashes the operator
recorded (a pending key being delivered, the current key); its annotations (the key id it
was written for, the rotation generation) are hints for people and for this object's own
rotation schedule, never used to pick a row in Coder.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from aigateway_operator.api.gatewaykey import SECRET_DATA_KEY
from aigateway_operator.api.identity import (
    GATEWAY_KEY_ID_ANNOTATION,
    GATEWAY_KEY_ROTATION_ANNOTATION,
)
from aigateway_operator.kube import SecretData

__all__ = [
    "PREFIX_LENGTH",
    "Held",
    "KeySecrets",
    "held_from",
    "owner_label_value",
    "parse_uuid",
]

PREFIX_LENGTH = 11


class KeySecrets(Protocol):
    """What this pipeline needs from the Kubernetes client (``kube.Kube`` implements it)."""

    async def read_secret(self, namespace: str, name: str) -> SecretData | None: ...

    async def write_owned_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        owner: dict[str, str],
        labels: dict[str, str],
        resource_version: str | None,
        annotations: dict[str, str] | None = None,
    ) -> SecretData: ...

    async def delete_secret(self, namespace: str, name: str, uid: str) -> bool: ...

    async def disown_secret(self, namespace: str, name: str, uid: str) -> bool: ...


def owner_label_value(name: str) -> str:
    """The owner's name as a label value (at most 63 characters; long names are hashed)."""
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:52].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class Held:
    """What the Secret holds: its value (None when there is no Secret) and the hints."""

    secret: str | None = field(repr=False)
    key_id_hint: uuid.UUID | None
    """The ``aigateway.dev/key-id`` annotation: shown to people, never acted on."""
    rotation_generation: int | None

    @property
    def exists(self) -> bool:
        return self.secret is not None


def parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def held_from(sec: SecretData | None) -> Held:
    """What ``sec`` holds (``secret`` None when there is no Secret, "" when it has no value)."""
    if sec is None:
        return Held(None, None, None)
    raw = sec.data.get(SECRET_DATA_KEY, b"")
    try:
        secret = raw.decode().strip()  # the gateway trims the file too
    except UnicodeDecodeError:
        secret = ""
    generation: int | None = None
    with contextlib.suppress(ValueError):
        generation = int(sec.annotations.get(GATEWAY_KEY_ROTATION_ANNOTATION, ""))
    return Held(
        secret=secret,
        key_id_hint=parse_uuid(sec.annotations.get(GATEWAY_KEY_ID_ANNOTATION)),
        rotation_generation=generation,
    )
