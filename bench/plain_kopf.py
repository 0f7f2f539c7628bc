"""The third contestant of ``bench_operator.py``: a plain kopf operator, as a platform engineer
would write it in an afternoon from kopf's documentation.

- ``@kopf.on.create/update/resume`` for AIProvider, one handler: read the referenced Secrets
  with the ``kubernetes`` client, write Coder's rows with the operator's own store (so both
  contestants write exactly the same rows: encrypted, audited, notified, under lock 10),
  and put the result into status through kopf's ``patch`` (conditions included, so the
  benchmark's watcher sees ``Ready``);
- ``@kopf.on.delete`` soft-deletes the row;
- ``@kopf.index`` maps Secrets to the AIProviders that reference them, and a Secret
  ``@kopf.on.event`` handler re-triggers those objects by patching an annotation on them;
- kopf's default storages (diff-base and progress annotations on the object), kopf's
  default finalizer, kopf's default worker settings.

Run: ``kopf run --standalone --namespace NS bench/plain_kopf.py`` with ``AIGW_DATABASE_URL``
and ``AIGW_ENCRYPTION_KEYS`` in the environment (``bench/common.py PlainKopf``).
It is a benchmark contestant, not a second product: nothing imports it.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client, config

from aigateway_operator.config import Settings
from aigateway_operator.store import DesiredProvider, OwnerRef, ProviderType, Store

GROUP, VERSION, PLURAL = "aigateway.dev", "v1alpha1", "aiproviders"
STATE: dict[str, Any] = {}


@kopf.on.startup()
async def startup(**_: Any) -> None:
    config.load_kube_config()
    STATE["core"] = client.CoreV1Api()
    STATE["custom"] = client.CustomObjectsApi()
    STATE["store"] = await Store.open(Settings())


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    await STATE["store"].close()


@kopf.index(GROUP, VERSION, PLURAL)
def by_secret(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, str]:
    return {(namespace, k["secretKeyRef"]["name"]): name for k in spec.get("apiKeys", [])}


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def reconcile(
    spec: kopf.Spec,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    uid: str,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    keys = []
    for ref in spec.get("apiKeys", []):
        secret = await asyncio.to_thread(
            STATE["core"].read_namespaced_secret, ref["secretKeyRef"]["name"], namespace
        )
        keys.append(base64.b64decode(secret.data[ref["secretKeyRef"]["key"]]).decode())
    desired = DesiredProvider(
        name=spec.get("providerName") or name,
        type=ProviderType(spec["type"]),
        display_name=spec.get("displayName"),
        api_keys=tuple(keys),
    )
    owner = OwnerRef(uid=uid, kind="AIProvider", namespace=namespace, name=name)
    result = await STATE["store"].upsert_provider(desired, owner)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    generation = meta.get("generation")
    patch.status["observedGeneration"] = generation
    patch.status["providerID"] = str(result.provider_id)
    patch.status["keyCount"] = len(result.keys)
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "synced",
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }
    ]


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete(namespace: str, name: str, uid: str, **_: Any) -> None:
    await STATE["store"].delete_provider(
        OwnerRef(uid=uid, kind="AIProvider", namespace=namespace, name=name)
    )


@kopf.on.event("", "v1", "secrets")
async def secret_changed(
    type: str | None,
    namespace: str,
    name: str,
    meta: kopf.Meta,
    by_secret: kopf.Index[Any, str],
    **_: Any,
) -> None:
    if type is None:  # the initial listing: every provider resumes anyway
        return
    for provider in by_secret.get((namespace, name), []):
        await asyncio.to_thread(
            STATE["custom"].patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            provider,
            {"metadata": {"annotations": {"plain.example/secret-rv": meta["resourceVersion"]}}},
        )
