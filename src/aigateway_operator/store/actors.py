"""Who in Kubernetes made each generation of an object's spec: ``aigateway_operator.actors``.

The operator's validating webhook sees every create and spec update of its objects with the
requester's identity (``userInfo``); a pass that writes to Coder later sees only the object.
The webhook records the requester here, keyed by the object's uid, the *new* generation and
a digest of the admitted spec; the pass looks it up for the generation it applies. The two
may run on different replicas: the database carries it across. Tenants cannot write this
table (an annotation on the object would be forgeable by whoever may edit the object).

- **What is kept**: the user name and (at most 20) groups of the request; never a token,
  the request's ``extra`` or its body. Only real requests (never ``dryRun``) that the webhook
  allowed.
- **The digest** tells a request that made a generation from one admitted but never stored
  (an update that lost a resourceVersion conflict, a later webhook that denied it): both get
  the same generation, only the stored one has the spec the pass sees. Several records per
  generation are kept; the lookup picks the one whose digest matches.
- **Pruning**: recording a generation drops the records of that uid older than the newest
  :data:`KEEP_GENERATIONS`; releasing an object's rows drops all of its uid's records; and
  records older than :data:`STALE_AFTER` of uids with no ownership record (objects deleted
  while the operator was away, or that never got a row) go with the next recording.

Plain strings only: the store knows nothing of Kubernetes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from aigateway_operator.store.models import Actor
from aigateway_operator.store.operator_schema import ACTORS
from aigateway_operator.store.ownership import uid_has_record

__all__ = ["KEEP_GENERATIONS", "STALE_AFTER", "forget", "lookup", "record"]

#: Generations of one object whose requester is kept (the pass applies the newest).
KEEP_GENERATIONS = 3
#: Records of uids without an ownership record are dropped once this old.
STALE_AFTER = "30 days"

_UPSERT = (
    f"INSERT INTO {ACTORS} (object_uid, generation, spec_digest, kind, namespace, name, "  # noqa: S608
    "actor, actor_groups) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (object_uid, generation, spec_digest) DO UPDATE SET "
    "kind = EXCLUDED.kind, namespace = EXCLUDED.namespace, name = EXCLUDED.name, "
    "actor = EXCLUDED.actor, actor_groups = EXCLUDED.actor_groups, recorded_at = now()"
)
_PRUNE_OLD_GENERATIONS = f"DELETE FROM {ACTORS} WHERE object_uid = %s AND generation <= %s"  # noqa: S608
_PRUNE_STALE = (
    f"DELETE FROM {ACTORS} a WHERE a.recorded_at < now() - %s::interval "  # noqa: S608
    f"AND NOT {uid_has_record('a.object_uid')}"
)


async def record(
    conn: AsyncConnection[Any],
    *,
    object_uid: str,
    generation: int,
    spec_digest: str,
    kind: str,
    namespace: str,
    name: str,
    actor: Actor,
) -> None:
    """Record ``actor`` as the requester of ``generation`` of object ``object_uid``; prune."""
    async with conn.transaction():
        await conn.execute(
            _UPSERT,
            (
                object_uid,
                generation,
                spec_digest,
                kind,
                namespace,
                name,
                actor.name,
                list(actor.groups),
            ),
        )
        await conn.execute(_PRUNE_OLD_GENERATIONS, (object_uid, generation - KEEP_GENERATIONS))
        await conn.execute(_PRUNE_STALE, (STALE_AFTER,))


async def lookup(
    conn: AsyncConnection[Any], object_uid: str, generation: int, spec_digest: str
) -> Actor:
    """The requester of ``generation`` whose admitted spec had ``spec_digest``; else
    :meth:`Actor.unknown` saying why."""
    cur = await conn.execute(
        f"SELECT actor, actor_groups, spec_digest FROM {ACTORS} "  # noqa: S608
        "WHERE object_uid = %s AND generation = %s ORDER BY recorded_at DESC",
        (object_uid, generation),
    )
    rows: Sequence[tuple[Any, ...]] = await cur.fetchall()
    await conn.rollback()
    for actor, groups, digest in rows:
        if digest == spec_digest:
            return Actor.admitted(str(actor), tuple(str(g) for g in groups or ()))
    if rows:
        return Actor.unknown(
            f"the admission records of generation {generation} are of another spec "
            "(a request admitted but not stored)"
        )
    return Actor.unknown(f"no admission record for generation {generation}")


async def forget(conn: AsyncConnection[Any], object_uid: str) -> None:
    """Drop every record of ``object_uid`` (its rows were released); in the caller's
    transaction."""
    if object_uid:
        await conn.execute(f"DELETE FROM {ACTORS} WHERE object_uid = %s", (object_uid,))  # noqa: S608
