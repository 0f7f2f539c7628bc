"""Key continuity with coderd: prove our primary key is the one coderd registered.

coderd records every key it encrypts with in ``dbcrypt_keys``: the key's digest in
``active_key_digest`` and, in ``test``, the string ``coder`` encrypted under that key
(reference §2.4). Before we write anything encrypted we must show that

* our primary key's digest is an *active* row (so the ``*_key_id`` foreign keys accept it and
  coderd, which refuses to start when an active row's key is unknown to it, holds the key), and
* that row's ``test`` decrypts to ``coder`` under our key (a digest is only 28 bits; the test
  value proves it is the same key, not a colliding one).

We never insert a key: an active row for a key coderd does not have would stop coderd from
starting (the local environment and the tests register theirs the way coderd does, with
``tools/devenv/coder_schema.py``).

No plaintext by accident: without keys the store starts only when plaintext was chosen
(``AIGW_ALLOW_PLAINTEXT=true``), and even then it never writes a secret column while coderd
has an active key (:class:`PlaintextRefused`, checked again in every write transaction,
since coderd may register a key after we started). Plaintext is for a coderd that itself
runs without keys, by choice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.cipher import DBCRYPT_TEST_VALUE, DecryptError, KeyRing
from aigateway_operator.store.errors import EncryptionKeyMismatch, PlaintextRefused

__all__ = [
    "KeyStatus",
    "PrimaryKeyGuard",
    "check_key_continuity",
    "plaintext_refused",
]

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


def _fmt(digests: tuple[str, ...] | list[str]) -> str:
    return ", ".join(digests) if digests else "none"


def plaintext_refused(active: tuple[str, ...] | list[str], where: str) -> PlaintextRefused:
    """The error for a plaintext write (or start) while coderd has active keys."""
    return PlaintextRefused(
        f"{where}: no encryption keys are configured (AIGW_ENCRYPTION_KEYS or "
        f"AIGW_ENCRYPTION_KEYS_FILE) but coderd encrypts with active dbcrypt key(s) "
        f"{_fmt(active)}; give the operator coderd's CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS "
        "as AIGW_ENCRYPTION_KEYS (same order). Nothing was written in plaintext",
        active,
    )


async def check_key_continuity(
    conn: AsyncConnection[Any],
    ring: KeyRing,
    *,
    allow_plaintext: bool = False,
) -> KeyStatus:
    """Run the start-up check (reads ``dbcrypt_keys`` only).

    Without keys: refuse unless ``allow_plaintext``; with it, start but warn loudly when
    coderd has active keys (every secret write will then be refused).
    """
    async with conn.transaction():
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
            raise EncryptionKeyMismatch(
                f"primary encryption key {primary} is not an active key in dbcrypt_keys "
                f"(active: {_fmt(active)}). Give the operator the same "
                "AIGW_ENCRYPTION_KEYS as coderd's CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS, in "
                "the same order, and start coderd first so it registers the key; "
                "nothing was written"
            )
    unknown = tuple(d for d in active if ring.get(d) is None)
    if primary is None:
        if not allow_plaintext:
            if active:
                raise plaintext_refused(active, "refusing to start")
            raise PlaintextRefused(
                "refusing to start: no encryption keys are configured (AIGW_ENCRYPTION_KEYS "
                "or AIGW_ENCRYPTION_KEYS_FILE). coderd has no active dbcrypt key either, so "
                "coderd itself stores these columns in plaintext; to write API keys and "
                "settings in plaintext too, choose it with AIGW_ALLOW_PLAINTEXT=true, "
                "otherwise configure coderd's keys for both"
            )
        if active:
            log.warning(
                "AIGW_ALLOW_PLAINTEXT=true but coderd has active dbcrypt keys %s: every write "
                "of an API key or settings will be refused until the operator is given "
                "coderd's keys as AIGW_ENCRYPTION_KEYS",
                _fmt(active),
            )
        else:
            log.warning(
                "AIGW_ALLOW_PLAINTEXT=true and no encryption keys: AI provider keys and "
                "settings are written to Coder's database as PLAINTEXT (NULL key ids), as "
                "coderd without keys does"
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
    )


class PrimaryKeyGuard:
    """Per-transaction proof that the primary key is still active (fail closed on every write).

    The ``test`` value of the primary digest's row is read in the write transaction and
    checked here (cached per distinct value). The row is not locked: that would need UPDATE
    on ``dbcrypt_keys`` (``SELECT ... FOR KEY SHARE`` does), and the operator's role only
    reads that table. It needs no lock: every value we write references the digest through
    a ``*_key_id`` foreign key, whose check takes the same KEY SHARE lock on that row until
    we commit, so a revocation racing us either waits for our commit or makes our statement
    fail (``EncryptionKeyMismatch``); nothing can reference a key that stopped being active.
    """

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._verified_test: str | None = None

    async def ensure(self, conn: AsyncConnection[Any]) -> None:
        """Read the primary key's row, then :meth:`check` it."""
        primary = self._ring.primary
        if primary is None:
            return
        cur = await conn.execute(
            "SELECT test FROM dbcrypt_keys WHERE active_key_digest = %s", (primary.digest,)
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
