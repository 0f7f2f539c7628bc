"""The bodies kopf keeps, without ``metadata.managedFields``: what kopf lacks for memory.

kopf keeps the last body of every object it watches (``ResourceMemory``'s daemon memory
holds the live body each daemon is handed, replaced by every watch event's object), for the
object's whole life: at 10,000 objects, 10,000 bodies. The largest part of an AIProvider's
body is ``metadata.managedFields`` (server-side apply's record of which manager owns which
field, one ``fieldsV1`` tree per manager: the creator's spec, our status with its
conditions), which neither kopf nor this operator reads. Kubernetes has no watch option to
leave it out.

The dict kopf keeps is the very ``object`` of the raw event it hands to ``on.event``
handlers; :func:`drop_managed_fields`, called first by ours, removes the field from it, so
kopf keeps each body without it. kopf still watches, keeps and hands out every body; only a
field nobody reads is not held.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["drop_managed_fields"]


def drop_managed_fields(event: Mapping[str, Any]) -> None:
    """Remove ``metadata.managedFields`` from a raw watch event's object, in place."""
    obj = event.get("object")
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
