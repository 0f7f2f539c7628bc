"""Shared pieces of the kopf layer: names, the slim body the controllers keep and what in it
triggers a pass, the runtime."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from aigateway_operator.api.common import ConditionType
from aigateway_operator.reconcile.runtime import Runtime

ANNOTATION_PREFIX = "aigateway.dev"
#: kopf's storage prefix, kept apart from ours (kopf hides annotations under its own prefix).
KOPF_PREFIX = "kopf.aigateway.dev"
FINALIZER = "aigateway.dev/finalizer"
#: The finalizer name kopf is configured with and never uses (see handlers.lifecycle).
KOPF_FINALIZER = f"{KOPF_PREFIX}/unused-finalizer"
#: Every condition type of every kind (metric series to drop when an object goes).
CONDITION_TYPES = [t.value for t in ConditionType]


#: The metadata a pass reads; the rest (managedFields above all) is not kept in memory.
_META_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
    "labels",
    "ownerReferences",
)


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A watched object as the controller keeps it: what a pass reads, nothing else.

    Drops ``managedFields`` and annotations other than ours (kopf's old diff-base copy of
    the spec among them): with thousands of objects held, they would dominate memory.
    """
    meta = body.get("metadata") or {}
    kept = {k: meta[k] for k in _META_KEPT if k in meta}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k.startswith(ANNOTATION_PREFIX + "/")
    }
    if annotations:
        kept["annotations"] = annotations
    out: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": kept,
    }
    for key in ("spec", "status"):
        if key in body:
            out[key] = body[key]
    return out


def marker(body: Mapping[str, Any]) -> Hashable:
    """What needs a pass when it changes: never status, so our own writes do not echo."""
    meta = body.get("metadata", {})
    ours = tuple(
        sorted(
            (k, str(v))
            for k, v in (meta.get("annotations") or {}).items()
            if k.startswith(ANNOTATION_PREFIX + "/")
        )
    )
    return (
        meta.get("generation"),
        bool(meta.get("deletionTimestamp")),
        FINALIZER in (meta.get("finalizers") or ()),
        ours,
    )


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime
