"""coderd-compatible field encryption (dbcrypt): AES-256-GCM, key digests and a key ring.

Values are stored exactly as coderd's ``enterprise/dbcrypt`` stores them (reference §2):
standard base64 (with padding) of ``nonce(12) || ciphertext || tag(16)``, no additional data,
no version marker. The ``*_key_id`` column next to each value holds the *digest* of the key
that encrypted it: the first 7 hex characters of ``sha256(b"aes256gcm" + key)``. A NULL or
empty key id means "plaintext", which coderd reads fine even when it has keys.

The :class:`KeyRing` mirrors ``CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS``: the first key encrypts,
every key decrypts. Raw key bytes live only inside the AES objects; ``repr`` shows digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aigateway_operator.store.errors import StoreError, UnknownKeyReference

__all__ = [
    "CIPHER_NAME",
    "DBCRYPT_TEST_VALUE",
    "NONCE_SIZE",
    "Cipher",
    "DecryptError",
    "KeyRing",
    "key_digest",
    "needs_reencrypt",
]

CIPHER_NAME = b"aes256gcm"
"""coderd's ``cipherAES256GCM`` constant; part of the digest input."""

NONCE_SIZE = 12
KEY_SIZE = 32
TAG_SIZE = 16

DBCRYPT_TEST_VALUE = b"coder"
"""Plaintext of ``dbcrypt_keys.test``: decrypting it proves we hold the key behind a digest."""


class DecryptError(StoreError):
    """A stored value could not be decrypted (malformed base64, too short, or wrong key)."""


def key_digest(key: bytes) -> str:
    """coderd's key id: first 7 hex chars of ``sha256(b"aes256gcm" + key)``."""
    return hashlib.sha256(CIPHER_NAME + key).hexdigest()[:7]


def needs_reencrypt(key_id: str | None, primary_digest: str | None) -> bool:
    """True when a value stored under ``key_id`` is not under the primary key.

    With no primary key nothing is re-encrypted (there is nothing to encrypt with, and
    writing plaintext over ciphertext would silently *decrease* protection). A NULL or empty
    ``key_id`` (plaintext) is re-encrypted once there is a primary key.
    """
    if primary_digest is None:
        return False
    return (key_id or None) != primary_digest


class Cipher:
    """One AES-256-GCM key, identified by its digest."""

    __slots__ = ("_aead", "digest")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            # Same wording as coderd; never include the key itself.
            raise ValueError("key must be 32 bytes")
        self._aead = AESGCM(key)
        self.digest = key_digest(key)

    def __repr__(self) -> str:
        return f"Cipher(digest={self.digest!r})"

    def encrypt(self, plaintext: bytes) -> str:
        """Encrypt with a fresh random nonce; return the stored (base64) form."""
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, plaintext, None)
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str) -> bytes:
        """Decrypt the stored (base64) form; raise :class:`DecryptError` on any failure."""
        try:
            raw = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptError(f"value under key {self.digest} is not valid base64") from None
        if len(raw) < NONCE_SIZE:
            raise DecryptError("ciphertext too short")
        try:
            return self._aead.decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], None)
        except InvalidTag:
            raise DecryptError(f"value does not decrypt under key {self.digest}") from None


class KeyRing:
    """The configured keys: the first (primary) encrypts, all decrypt.

    An empty ring means "no encryption", exactly like coderd started without keys: values are
    written as plaintext with a NULL key id.
    """

    __slots__ = ("_by_digest", "primary")

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        ciphers = [Cipher(k) for k in keys]
        self._by_digest: dict[str, Cipher] = {}
        for c in ciphers:
            # A repeated key is harmless; keep the first occurrence.
            self._by_digest.setdefault(c.digest, c)
        self.primary: Cipher | None = ciphers[0] if ciphers else None

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary_digest!r}, digests={self.digests!r})"

    @property
    def primary_digest(self) -> str | None:
        return self.primary.digest if self.primary else None

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(self._by_digest)

    def get(self, digest: str) -> Cipher | None:
        return self._by_digest.get(digest)

    def encrypt_field(self, plaintext: str) -> tuple[str, str | None]:
        """Return ``(stored_value, key_id)`` the way coderd's ``encryptField`` would."""
        if self.primary is None:
            return plaintext, None
        return self.primary.encrypt(plaintext.encode("utf-8")), self.primary.digest

    def decrypt_field(self, stored: str, key_id: str | None, where: str) -> str:
        """Return the plaintext of a stored value, the way coderd's ``decryptField`` would.

        ``where`` names the row/column for error messages (never the value).
        """
        if not key_id:
            return stored
        cipher = self._by_digest.get(key_id)
        if cipher is None:
            raise UnknownKeyReference(key_id, where)
        try:
            return cipher.decrypt(stored).decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError(f"{where} decrypts to invalid UTF-8") from None
        except DecryptError as exc:
            raise DecryptError(f"{where}: {exc}") from None

    def needs_reencrypt(self, key_id: str | None) -> bool:
        """:func:`needs_reencrypt` with this ring's primary key."""
        return needs_reencrypt(key_id, self.primary_digest)
