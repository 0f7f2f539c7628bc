"""A diff-base storage that stores nothing: what kopf lacks for level-triggered operators.

kopf keeps a copy of each object's spec ("the essence") in a ``last-handled-configuration``
annotation so that its ``on.create/update/resume`` handlers can be given a diff. Our passes
are level-triggered and need no diff; the only change-type handler we register is
``on.delete``. But as soon as one change-type handler exists for a kind, kopf builds the
essence of every event (a deep copy of the body) and *writes* it to the object after every
create and spec change: one more PATCH per new object, its watch echo, and a copy of the
spec on every object, for a diff nobody reads.

This storage tells kopf there is no previous essence and stores none. kopf then treats every
non-deletion event as a create with no handler for it (nothing runs, nothing is written),
and a deletion as a deletion (our ``on.delete`` runs). Custom storages are a documented kopf
extension point (``settings.persistence.diffbase_storage``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

__all__ = ["NoDiffBase"]


class NoDiffBase(kopf.DiffBaseStorage):
    """No essence is built, fetched or stored."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None
