"""Who in Kubernetes caused a write in Coder: the actor of Coder's audit rows.

Coder's audit view shows a user, a user agent and the row's additional fields. The operator
writes with the nil user (a non-human actor); who in Kubernetes caused the change goes into
``user_agent`` (``aigateway-operator/<version> (kubernetes: <actor>)``) and
``additional_fields.kubernetes`` (``actor``, ``actor_source``, ``actor_groups``,
``actor_reason``, next to the object's kind, namespace, name, uid and generation).

**Where the actor comes from.** The validating webhook sees every create and spec update
with the requester (``userInfo.username`` and groups) and, for a real (not dry-run) request it
allows, records it in the operator's own table with the object's uid, the new generation and
a digest of the admitted spec (:func:`record_requester`). A pass that writes looks it up for
the generation it applies (:func:`spec_actor`). The replica that answered and the one that
writes may differ: the database carries it across.

**Which actor a write gets** (the pass decides, by what caused the write):

- the spec's generation has not been applied yet (a create, a spec update, or a retry of
  either): the requester of that generation (``source: admission``); or ``unknown`` with a
  reason: ``no admission record for generation N`` (admitted while the webhook was off or
  unreachable under failure policy ``Ignore``, or before this release), ``the operator's
  admission webhook is off``, or records of another spec (a request admitted but not stored);
- the generation was applied and a referenced Secret changed: ``unknown`` (Secrets do not
  pass this webhook);
- the generation was applied and nothing of ours changed (a revert of an edit made in Coder,
  a revived row): :data:`DRIFT_REVERT`, the operator itself;
- gateway keys: a key repaired (Secret lost or tampered with, key deleted in Coder),
  rotated on schedule, a previous key retired, an interrupted issue completed: the operator
  (:func:`operator_actor`); a rotation by ``spec.rotation.generation`` or a first issue: the
  spec's requester;
- an object's deletion (finalizer): ``unknown`` (deletions are not sent to the webhook);
  rows collected after their object vanished: :data:`GARBAGE_COLLECTION`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aigateway_operator.api.identity import Kind
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import Actor, StoreError

__all__ = [
    "DELETED",
    "DRIFT_REVERT",
    "GARBAGE_COLLECTION",
    "SECRET_CHANGED",
    "operator_actor",
    "record_requester",
    "spec_actor",
    "spec_digest",
]

log = logging.getLogger("aigateway_operator")

DRIFT_REVERT = Actor.operator("drift revert")
GARBAGE_COLLECTION = Actor.operator("garbage collection")
SECRET_CHANGED = Actor.unknown(
    "a referenced Secret changed; Secrets do not pass the operator's admission webhook"
)
DELETED = Actor.unknown(
    "the object was deleted; deletions do not pass the operator's admission webhook"
)
ADMISSION_OFF = Actor.unknown("the operator's admission webhook is off (AIGW_ADMISSION=false)")


def operator_actor(why: str) -> Actor:
    """The operator acting on its own, e.g. ``aigateway-operator (scheduled rotation)``."""
    return Actor.operator(why)


def spec_digest(spec: object) -> str:
    """sha256 of the spec as JSON with sorted keys: the same for the admitted spec and the
    stored one the pass sees (the API server stores what validating admission saw)."""
    text = json.dumps(
        spec if isinstance(spec, Mapping) else None,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


async def spec_actor(wiring: Wiring, ident: ObjectIdentity, digest: str) -> Actor:
    """The requester of the object's current generation (whose spec, of :func:`spec_digest`
    ``digest``, the pass applies), or ``unknown`` saying why. One read; never raises (a write
    must not fail for want of it)."""
    if not wiring.settings.admission:
        return ADMISSION_OFF
    if not ident.uid or ident.generation <= 0:
        return Actor.unknown("the object has no uid or generation")
    try:
        return await wiring.store.admission_actor(ident.uid, ident.generation, digest)
    except StoreError as exc:
        log.info("the requester of this change could not be read: %s", exc, extra=ident.log)
        return Actor.unknown("the admission record could not be read")


async def record_requester(
    wiring: Wiring,
    kind: Kind,
    *,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    spec: Mapping[str, Any] | None,
    username: str,
    groups: Sequence[str],
) -> bool:
    """Record who made ``generation`` (an allowed, real request); whether it was recorded.

    Only the user name and groups are kept, never a token, ``extra`` or the request body.
    """
    if not uid or generation <= 0 or not username:
        return False
    await wiring.store.record_actor(
        object_uid=uid,
        generation=generation,
        spec_digest=spec_digest(spec),
        kind=kind.kind,
        namespace=namespace,
        name=name,
        actor=Actor.admitted(username, tuple(str(g) for g in groups)),
    )
    return True
