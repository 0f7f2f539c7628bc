"""dbcrypt compatibility: Coder's test vector, digests, round trips, key ring rules."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigateway_operator.store.cipher import Cipher, DecryptError, KeyRing, key_digest
from aigateway_operator.store.errors import UnknownKeyReference

pytestmark = pytest.mark.unit

KEY_A = b"a" * 32
VECTOR = "YhAz+lE2fFeeiVPH9voKN7UV1xSDrgcnC0LmNXmaAk1Yg0kPFO3x"


def test_coder_test_vector_decrypts() -> None:
    cipher = Cipher(KEY_A)
    assert cipher.digest == "864f702"
    assert key_digest(KEY_A) == "864f702"
    assert cipher.decrypt(VECTOR) == b"hello world"


def test_stored_layout_is_nonce_ciphertext_tag_in_standard_base64() -> None:
    stored = Cipher(KEY_A).encrypt(b"hello world")
    raw = base64.b64decode(stored, validate=True)
    assert len(raw) == 12 + 11 + 16
    assert stored == base64.standard_b64encode(raw).decode()


def test_fresh_nonce_per_encryption() -> None:
    cipher = Cipher(KEY_A)
    assert cipher.encrypt(b"x") != cipher.encrypt(b"x")


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), plaintext=st.binary(max_size=512))
def test_round_trip(key: bytes, plaintext: bytes) -> None:
    cipher = Cipher(key)
    assert cipher.decrypt(cipher.encrypt(plaintext)) == plaintext


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_key_ring_field_round_trip(text: str) -> None:
    ring = KeyRing([KEY_A, b"b" * 32])
    stored, key_id = ring.encrypt_field(text)
    assert key_id == "864f702"
    assert ring.decrypt_field(stored, key_id, "test") == text


def test_wrong_key_and_garbage_fail_with_decrypt_error() -> None:
    with pytest.raises(DecryptError):
        Cipher(b"b" * 32).decrypt(VECTOR)
    with pytest.raises(DecryptError, match="base64"):
        Cipher(KEY_A).decrypt("not base64!")
    with pytest.raises(DecryptError, match="too short"):
        Cipher(KEY_A).decrypt(base64.b64encode(b"short").decode())


def test_key_must_be_32_bytes_and_error_never_shows_it() -> None:
    with pytest.raises(ValueError, match="32 bytes") as info:
        Cipher(b"sekrit-key-material")
    assert "sekrit" not in str(info.value)


def test_key_ring_first_encrypts_all_decrypt_and_plaintext_mode() -> None:
    old, new = Cipher(KEY_A), b"n" * 32
    ring = KeyRing([new, KEY_A])
    assert ring.primary_digest == key_digest(new)
    assert ring.decrypt_field(old.encrypt(b"v"), old.digest, "row") == "v"
    assert ring.needs_reencrypt(old.digest)
    assert ring.needs_reencrypt(None)
    assert not ring.needs_reencrypt(key_digest(new))
    # NULL/empty key id means plaintext, exactly like coderd's decryptField.
    assert ring.decrypt_field("plain", None, "row") == "plain"
    assert ring.decrypt_field("plain", "", "row") == "plain"

    empty = KeyRing()
    assert empty.encrypt_field("v") == ("v", None)
    assert not empty.needs_reencrypt(old.digest)


def test_unknown_digest_names_digest_not_value() -> None:
    ring = KeyRing([b"n" * 32])
    stored = Cipher(KEY_A).encrypt(b"sk-super-secret")
    with pytest.raises(UnknownKeyReference) as info:
        ring.decrypt_field(stored, "864f702", "ai_provider_keys row 1")
    assert "864f702" in str(info.value)
    assert stored not in str(info.value)


def test_repr_shows_digests_only() -> None:
    ring = KeyRing([KEY_A])
    assert "aaaa" not in repr(ring)
    assert "864f702" in repr(ring)
