"""What an AIGatewayCoderdKey's record carries of its own (``controllers.record``): the Secret
our last pass wrote (to tell its watch echo from someone else's edit) and when the opted-in
workloads were last found stamped (:mod:`.restart`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["KeyPart"]


@dataclass(slots=True)
class KeyPart:
    secret: tuple[str, str] | None = None
    """(name, resourceVersion) of the Secret our last write left, in the object's namespace."""
    scanned: tuple[str, datetime] | None = None
    """(key id, when) the object's opted-in workloads were last found stamped for."""
