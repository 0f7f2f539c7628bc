"""Deleting an AIProvider: soft-delete its Coder row as coderd does (``Delete``) or leave it
in place (``Orphan``). A database outage keeps the object, and its finalizer, until it works.
"""

from __future__ import annotations

from dataclasses import replace

from aigateway_operator.api.aiprovider import DeletionPolicy
from aigateway_operator.api.common import ConditionType, EventReason, Reason
from aigateway_operator.controllers.actors import DELETED
from aigateway_operator.controllers.aiprovider.reading import read_provider
from aigateway_operator.controllers.aiprovider.status import carry, finish, parse_status
from aigateway_operator.controllers.shared import (
    MESSAGE_LIMIT,
    RETRY_DATABASE,
    ObjectIdentity,
    PassOutcome,
    PassScratch,
    database_error_kind,
)
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.status.conditions import ConditionState
from aigateway_operator.store import DeletePolicy, StoreError

__all__ = ["finalize"]


async def finalize(
    wiring: Wiring, ident: ObjectIdentity, spec_body: object, status_body: object
) -> PassOutcome:
    """Release the object's Coder row per ``spec.deletionPolicy``; ``done`` when released."""
    current = parse_status(status_body)
    # A spec that does not parse releases as the default policy says (Delete).
    spec = read_provider(ident, spec_body).spec
    policy = spec.deletion_policy if spec is not None else DeletionPolicy.DELETE
    scratch = PassScratch(current_conditions=tuple(current.conditions))
    store_policy = (
        DeletePolicy.RELEASE if policy is DeletionPolicy.ORPHAN else DeletePolicy.SOFT_DELETE
    )
    try:
        owner = replace(ident.owner(wiring.settings.instance_id), actor=DELETED)
        result = await wiring.store.delete_provider(owner, store_policy)
    except StoreError as exc:
        message = f"waiting to delete the Coder provider: {exc}"[:MESSAGE_LIMIT]
        scratch.set(
            ConditionState.false(ConditionType.SYNCED, Reason.DATABASE_UNAVAILABLE, message)
        )
        scratch.set(ConditionState.false(ConditionType.READY, Reason.DELETING, message))
        scratch.database_error = database_error_kind(exc)
        scratch.retry(RETRY_DATABASE, message)
        outcome = finish(wiring, ident, current, scratch, carry(current))
        outcome.done = False
        return outcome
    if result.action == "deleted":
        scratch.note(
            EventReason.DELETED,
            f"Soft-deleted the Coder AI provider and removed {result.keys_removed} key(s)",
        )
    elif result.action == "released":
        scratch.note(EventReason.ORPHANED, "Left the Coder AI provider in place (Orphan)")
    return PassOutcome(status_patch={}, events=scratch.events, done=True)
