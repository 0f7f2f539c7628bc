"""AIProviders as the operator tests drive them: create one, the spec of an OpenAI provider
reading its keys from a Secret, and what the operator wrote to Coder's database for it
(the provider rows and their keys, decrypted with the operator's encryption key)."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kubernetes import client

from aigateway_operator.store import OwnerRef, provider_row_id
from tests.support.operator import GROUP, VERSION, OperatorProcess, custom

PLURAL = "aiproviders"


def apply_provider(api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AIProvider",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def decrypt(key: bytes, value: str, key_id: str | None) -> str:
    if not key_id:
        return value
    raw = base64.b64decode(value)
    return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()


def encrypt_like_coderd(op: OperatorProcess, plaintext: str) -> str:
    """``plaintext`` sealed as coderd's dbcrypt stores it (base64 of nonce + AES-256-GCM),
    under the operator's key, written independently of the operator's cipher."""
    nonce = os.urandom(12)
    sealed = AESGCM(op.encryption_key).encrypt(nonce, plaintext.encode(), None)
    return base64.b64encode(nonce + sealed).decode()


def provider_rows(op: OperatorProcess, name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(op.database_url) as conn:
        return conn.execute(
            "SELECT id, type::text, enabled, deleted, base_url, display_name FROM ai_providers "
            "WHERE name = %s ORDER BY created_at",
            (name,),
        ).fetchall()


def provider_keys(op: OperatorProcess, provider_id: Any) -> list[str]:
    with psycopg.connect(op.database_url) as conn:
        rows = conn.execute(
            "SELECT api_key, api_key_key_id FROM ai_provider_keys WHERE provider_id = %s "
            "ORDER BY created_at, id",
            (provider_id,),
        ).fetchall()
    return [decrypt(op.encryption_key, v, k) for v, k in rows]


def openai_spec(*keys: str, secret: str = "llm-keys") -> dict[str, Any]:
    return {
        "type": "openai",
        "displayName": "OpenAI",
        "apiKeys": [{"secretKeyRef": {"name": secret, "key": k}} for k in keys],
    }


#: The sentence the Synced message carries while another enabled provider has the same base-URL
#: hostname (coderd's duplicate-hostname warning): every openai provider with the default URL.
SHARED = "is shared with other enabled providers"


def row_id_of(namespace: str, name: str, instance: str = "default") -> uuid.UUID:
    """The provider row id the operator (``AIGW_INSTANCE_ID`` ``instance``) gives the object
    ``namespace/name``: derived from its identity, so a retried create cannot make a second."""
    return provider_row_id(
        OwnerRef(kind="AIProvider", namespace=namespace, name=name, instance=instance)
    )
