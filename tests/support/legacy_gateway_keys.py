"""The release before ownership records (0.1.0, commit df11357), as it wrote gateway keys.

The legacy-migration tests need a database *written by that release's store calls*: these are
its ``GatewayKeyOps.create``, ``rename`` and ``delete``, copied verbatim (only the class name
and the imports differ), run against a real database by the tests. It recorded nothing in
``aigateway_operator.owners``; the objects' status held the key ids.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection

from aigateway_operator.store import audit
from aigateway_operator.store.canonical import validate_name
from aigateway_operator.store.errors import (
    GatewayKeyConflict,
    InvalidName,
    NameTaken,
    NotFound,
    SecretCollision,
)
from aigateway_operator.store.gateway_keys import (
    MAX_NAME_LENGTH,
    PREFIX_LENGTH,
    generate_gateway_secret,
    hash_secret,
)
from aigateway_operator.store.models import GatewayKeyInfo, IssuedGatewayKey, OwnerRef
from aigateway_operator.store.schema import Capabilities

__all__ = ["LegacyGatewayKeyOps"]

SECRET_ATTEMPTS = 7
_SECRET_RE = re.compile(r"[0-9A-Za-z_]{43}")
FIELDS = ("id", "name", "secret_prefix", "hashed_secret")
KIND = "AI Gateway key"


def _check_name(name: str) -> None:
    validate_name(name, KIND, MAX_NAME_LENGTH)


def _info(row: tuple[Any, ...], has_heartbeat: bool) -> GatewayKeyInfo:
    return GatewayKeyInfo(
        id=row[0],
        name=row[1],
        secret_prefix=row[2],
        created_at=row[3],
        last_heartbeat_at=row[4] if has_heartbeat else None,
    )


class LegacyGatewayKeyOps:
    """Gateway key operations; each public method is one short transaction per attempt."""

    def __init__(self, caps: Capabilities, audit_user_id: uuid.UUID) -> None:
        self._caps = caps
        self._audit_user_id = audit_user_id
        self._cols = "id, name, secret_prefix, created_at, " + (
            "last_heartbeat_at" if caps.has_heartbeat else "NULL::timestamptz"
        )

    async def _audit(
        self, conn: AsyncConnection[Any], owner: OwnerRef, entry: audit.AuditEntry
    ) -> None:
        if self._caps.has_audit:
            await audit.write_audit(
                conn,
                [entry],
                user_id=self._audit_user_id,
                request_id=uuid.uuid4(),
                owner_fields=owner.audit_fields(),
            )

    @staticmethod
    def _view(key_id: uuid.UUID, name: str, prefix: str, hashed: bytes) -> dict[str, Any]:
        return {
            "id": str(key_id),
            "name": name,
            "secret_prefix": prefix,
            "hashed_secret": audit.secret(hashed),
        }

    async def create(
        self,
        conn: AsyncConnection[Any],
        key_id: uuid.UUID,
        name: str,
        owner: OwnerRef,
        secret: str | None,
    ) -> IssuedGatewayKey:
        _check_name(name)
        self._caps.require_gateway_keys()
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise GatewayKeyConflict(
                "a caller-supplied gateway secret must be 43 characters of [0-9A-Za-z_]"
            )
        attempts = 1 if secret is not None else SECRET_ATTEMPTS
        for _ in range(attempts):
            candidate = secret if secret is not None else generate_gateway_secret()
            prefix, hashed = candidate[:PREFIX_LENGTH], hash_secret(candidate)
            try:
                async with conn.transaction():
                    cur = await conn.execute(
                        "SELECT name, hashed_secret, created_at FROM ai_gateway_keys "
                        "WHERE id = %s FOR UPDATE",
                        (key_id,),
                    )
                    existing = await cur.fetchone()
                    if existing is not None:
                        if (
                            secret is not None
                            and bytes(existing[1]) == hashed
                            and (existing[0] == name)
                        ):
                            return IssuedGatewayKey(
                                key_id, name, candidate, prefix, existing[2], created=False
                            )
                        raise GatewayKeyConflict(
                            f"{KIND} {key_id} already exists with another secret or name; "
                            "its secret cannot be recovered: delete it or use a new id"
                        )
                    cur = await conn.execute(
                        "INSERT INTO ai_gateway_keys "
                        "(id, created_at, name, secret_prefix, hashed_secret) "
                        "VALUES (%s, now(), %s, %s, %s) RETURNING created_at",
                        (key_id, name, prefix, hashed),
                    )
                    created_row = await cur.fetchone()
                    created_at: datetime = created_row[0] if created_row else datetime.now(UTC)
                    await self._audit(
                        conn,
                        owner,
                        audit.AuditEntry(
                            "ai_gateway_key", key_id, name, "create",
                            audit.diff(None, self._view(key_id, name, prefix, hashed), FIELDS),
                        ),
                    )  # fmt: skip
                    return IssuedGatewayKey(
                        key_id,
                        name,
                        candidate,
                        prefix,
                        created_at,
                        created=True,
                    )
            except psycopg.errors.UniqueViolation as exc:
                constraint = exc.diag.constraint_name
                if constraint == "ai_gateway_keys_name_idx":
                    raise NameTaken(KIND, name) from None
                if constraint == "ai_gateway_keys_pkey":
                    raise GatewayKeyConflict(
                        f"{KIND} {key_id} was created concurrently; retry to see which secret won"
                    ) from None
                if constraint in (
                    "ai_gateway_keys_secret_prefix_idx",
                    "ai_gateway_keys_hashed_secret_idx",
                ):
                    continue  # draw a new secret (or give up below for a supplied one)
                raise
        raise SecretCollision(
            f"could not issue {KIND} {name!r}: the secret prefix/hash collided with existing "
            f"keys {attempts} time(s)"
        )

    async def rename(
        self, conn: AsyncConnection[Any], key_id: uuid.UUID, new_name: str, owner: OwnerRef
    ) -> GatewayKeyInfo:
        _check_name(new_name)
        self._caps.require_gateway_keys()
        async with conn.transaction():
            cur = await conn.execute(
                f"SELECT {self._cols}, hashed_secret FROM ai_gateway_keys "  # noqa: S608
                "WHERE id = %s FOR UPDATE",
                (key_id,),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"{KIND} {key_id} does not exist")
            old_name = row[1]
            if old_name == new_name:
                return _info(row, self._caps.has_heartbeat)
            try:
                await conn.execute(
                    "UPDATE ai_gateway_keys SET name = %s WHERE id = %s", (new_name, key_id)
                )
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name == "ai_gateway_keys_name_idx":
                    raise NameTaken(KIND, new_name) from None
                raise
            except psycopg.errors.CheckViolation:
                raise InvalidName(KIND, new_name, "rejected by Coder's CHECK") from None
            hashed = bytes(row[5])
            await self._audit(
                conn,
                owner,
                audit.AuditEntry(
                    "ai_gateway_key", key_id, new_name, "write",
                    audit.diff(
                        self._view(key_id, old_name, row[2], hashed),
                        self._view(key_id, new_name, row[2], hashed),
                        FIELDS,
                    ),
                ),
            )  # fmt: skip
            return GatewayKeyInfo(key_id, new_name, row[2], row[3], row[4])

    async def delete(self, conn: AsyncConnection[Any], key_id: uuid.UUID, owner: OwnerRef) -> bool:
        self._caps.require_gateway_keys()
        async with conn.transaction():
            cur = await conn.execute(
                "DELETE FROM ai_gateway_keys WHERE id = %s "
                "RETURNING name, secret_prefix, hashed_secret",
                (key_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            await self._audit(
                conn,
                owner,
                audit.AuditEntry(
                    "ai_gateway_key", key_id, row[0], "delete",
                    audit.diff(self._view(key_id, row[0], row[1], bytes(row[2])), None, FIELDS),
                ),
            )  # fmt: skip
            return True
