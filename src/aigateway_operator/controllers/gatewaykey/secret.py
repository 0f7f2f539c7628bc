"""What a gateway key's Secret holds, read defensively (it may be missing or edited by hand).

The Secret is written by the operator *before* the row (crash safety, see ``reconcile``): it
carries the plaintext under data key ``key`` and, as annotations, the id of the key it holds
and, during a rotation, the id of the key it replaces. Those ids are hints: everything read
here is checked against Coder's rows before it is acted on.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from aigateway_operator.api.gatewaykey import SECRET_DATA_KEY
from aigateway_operator.api.identity import (
    GATEWAY_KEY_ID_ANNOTATION,
    GATEWAY_KEY_PREVIOUS_ID_ANNOTATION,
    GATEWAY_KEY_ROTATION_ANNOTATION,
)
from aigateway_operator.kube import SecretData

__all__ = [
    "PREFIX_LENGTH",
    "SECRET_PATTERN",
    "Held",
    "KeySecrets",
    "held_from",
    "owner_label_value",
    "parse_uuid",
]

PREFIX_LENGTH = 11
#: The shape of a key this operator issues (``store.generate_gateway_secret``).
SECRET_PATTERN = re.compile(r"cgw_[0-9A-Za-z]{39}")


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
    """What the Secret holds (all of it optional: it may be missing or edited by hand)."""

    key_id: uuid.UUID | None
    secret: str = field(repr=False)
    previous_id: uuid.UUID | None
    rotation_generation: int | None

    @property
    def usable(self) -> bool:
        """A key id and a value of the shape this operator issues."""
        return self.key_id is not None and bool(SECRET_PATTERN.fullmatch(self.secret))


def parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def held_from(sec: SecretData | None) -> Held:
    """What ``sec`` holds (nothing usable when it is missing or malformed)."""
    if sec is None:
        return Held(None, "", None, None)
    raw = sec.data.get(SECRET_DATA_KEY, b"")
    try:
        secret = raw.decode().strip()  # the gateway trims the file too
    except UnicodeDecodeError:
        secret = ""
    generation: int | None = None
    with contextlib.suppress(ValueError):
        generation = int(sec.annotations.get(GATEWAY_KEY_ROTATION_ANNOTATION, ""))
    return Held(
        key_id=parse_uuid(sec.annotations.get(GATEWAY_KEY_ID_ANNOTATION)),
        secret=secret,
        previous_id=parse_uuid(sec.annotations.get(GATEWAY_KEY_PREVIOUS_ID_ANNOTATION)),
        rotation_generation=generation,
    )
