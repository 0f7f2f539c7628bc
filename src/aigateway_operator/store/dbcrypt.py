"""Key continuity with coderd: prove our primary key is the one coderd registered.

coderd records every key it encrypts with in ``dbcrypt_keys``: the key's digest in
``active_key_digest`` and, in ``test``, the string ``coder`` encrypted under that key
(reference §2.4). Before we write anything encrypted we must show that

* our primary key's digest is an *active* row (so the ``*_key_id`` foreign keys accept it and
  coderd, which refuses to start when an active row's key is unknown to it, holds the key), and
* that row's ``test`` decrypts to ``coder`` under our key (a digest is only 28 bits; the test
  value proves it is the same key, not a colliding one).

In ``verify`` mode we never insert a key: an active row for a key coderd does not have would
stop coderd from starting. In ``create`` mode (standalone) we register the key the way coderd
does: ``number = max(number) + 1``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.cipher import DBCRYPT_TEST_VALUE, DecryptError, KeyRing
from aigateway_operator.store.errors import EncryptionKeyMismatch

__all__ = ["KeyStatus", "PrimaryKeyGuard", "check_key_continuity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyStatus:
    """The outcome of the start-up key check (digests only)."""

    primary_digest: str | None
    """Digest new values are encrypted with; None = plaintext mode."""
    decrypt_digests: tuple[str, ...]
    """Digests of every configured key (the primary first)."""
    active_digests: tuple[str, ...]
    """Active ``dbcrypt_keys`` digests, in key-number order."""
    unknown_active_digests: tuple[str, ...]
    """Active digests we hold no key for: rows under them cannot be read by us."""
    registered: bool
    """True when this start inserted our primary key (``create`` mode only)."""


def _fmt(digests: tuple[str, ...] | list[str]) -> str:
    return ", ".join(digests) if digests else "none"


async def check_key_continuity(
    conn: AsyncConnection[Any], ring: KeyRing, *, may_register: bool
) -> KeyStatus:
    """Run the start-up check; register the primary key only when ``may_register``."""
    registered = False
    async with conn.transaction():
        if may_register and ring.primary is not None:
            # Same serialisation as coderd's own insert path would need: one writer at a time.
            await conn.execute("LOCK TABLE dbcrypt_keys IN SHARE ROW EXCLUSIVE MODE")
        cur = await conn.execute(
            "SELECT number, active_key_digest, revoked_key_digest, test "
            "FROM dbcrypt_keys ORDER BY number"
        )
        rows = await cur.fetchall()
        active = [str(r[1]) for r in rows if r[1]]
        revoked = {str(r[2]) for r in rows if r[2]}
        for number, digest, _revoked, test in rows:
            cipher = ring.get(str(digest)) if digest else None
            if cipher is None:
                continue
            try:
                ok = cipher.decrypt(str(test)) == DBCRYPT_TEST_VALUE
            except DecryptError:
                ok = False
            if not ok:
                raise EncryptionKeyMismatch(
                    f"dbcrypt_keys row {number} (digest {digest}) does not decrypt with our key "
                    "of the same digest: it is a different key. Use exactly the keys coderd uses "
                    "(CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS); nothing was written"
                )
        primary = ring.primary_digest
        if primary is not None and primary not in active:
            if primary in revoked:
                raise EncryptionKeyMismatch(
                    f"primary encryption key {primary} has been revoked in dbcrypt_keys; put "
                    "coderd's current primary key first in AIGW_ENCRYPTION_KEYS"
                )
            if not may_register:
                raise EncryptionKeyMismatch(
                    f"primary encryption key {primary} is not an active key in dbcrypt_keys "
                    f"(active: {_fmt(active)}). Give the operator the same "
                    "AIGW_ENCRYPTION_KEYS as coderd's CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS, in "
                    "the same order, and start coderd first so it registers the key; "
                    "nothing was written"
                )
            number = max((int(r[0]) for r in rows), default=0) + 1
            await conn.execute(
                "INSERT INTO dbcrypt_keys (number, active_key_digest, test) VALUES (%s, %s, %s)",
                (number, primary, ring.primary.encrypt(DBCRYPT_TEST_VALUE)),  # type: ignore[union-attr]
            )
            active.append(primary)
            registered = True
    unknown = tuple(d for d in active if ring.get(d) is None)
    if primary is None:
        log.warning(
            "AIGW_ENCRYPTION_KEYS is empty: AI provider keys and settings are written to "
            "Coder's database as PLAINTEXT (NULL key ids), as coderd does without keys%s",
            f"; coderd has active keys {_fmt(unknown)}, so give the operator the same keys"
            if unknown
            else "",
        )
    elif unknown:
        log.warning(
            "dbcrypt_keys has active keys %s that the operator was not given; rows encrypted "
            "under them cannot be read or re-encrypted by the operator",
            _fmt(unknown),
        )
    return KeyStatus(
        primary_digest=primary,
        decrypt_digests=ring.digests,
        active_digests=tuple(active),
        unknown_active_digests=unknown,
        registered=registered,
    )


class PrimaryKeyGuard:
    """Per-transaction proof that the primary key is still active (fail closed on every write).

    ``FOR KEY SHARE`` keeps the row from being revoked (revocation rewrites its digest columns)
    until our transaction commits, so nothing we write can reference a key that stops being
    active mid-way. The ``test`` decryption is cached per distinct ``test`` value.
    """

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._verified_test: str | None = None

    async def ensure(self, conn: AsyncConnection[Any]) -> None:
        """Read (and lock) the primary key's row, then :meth:`check` it."""
        primary = self._ring.primary
        if primary is None:
            return
        cur = await conn.execute(
            "SELECT test FROM dbcrypt_keys WHERE active_key_digest = %s FOR KEY SHARE",
            (primary.digest,),
        )
        row = await cur.fetchone()
        self.check(str(row[0]) if row else None)

    def check(self, test: str | None) -> None:
        """Validate the ``test`` value read for the primary digest (None: no active row)."""
        primary = self._ring.primary
        if primary is None:
            return
        if test is None:
            raise EncryptionKeyMismatch(
                f"primary encryption key {primary.digest} is no longer an active key in "
                "dbcrypt_keys (rotated or revoked by coderd?); update AIGW_ENCRYPTION_KEYS to "
                "coderd's current list; nothing was written"
            )
        if test == self._verified_test:
            return
        try:
            ok = primary.decrypt(test) == DBCRYPT_TEST_VALUE
        except DecryptError:
            ok = False
        if not ok:
            raise EncryptionKeyMismatch(
                f"dbcrypt_keys digest {primary.digest} does not decrypt with our primary key "
                "(same digest, different key); nothing was written"
            )
        self._verified_test = test
