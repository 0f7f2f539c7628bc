"""What an AIProvider's record carries of its own (``controllers.record``): the row the drift
watch compares (:mod:`.drift`) and what the hostname check found (:mod:`.hostnames`)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aigateway_operator.store import RowVersion

__all__ = ["ProviderPart"]


@dataclass(slots=True)
class ProviderPart:
    row_id: UUID | None = None
    """The Coder row the object's passes write (kept while its daemon runs)."""
    version: RowVersion | None = None
    """The version our last pass left on that row and its key rows."""
    alone: bool = False
    """The last pass found the hostname unshared (or the row not served)."""
    sole_peer: str | None = None
    """The last pass found exactly one other provider on the hostname: its name."""
