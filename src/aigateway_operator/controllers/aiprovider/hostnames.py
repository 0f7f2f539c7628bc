"""coderd's duplicate-hostname warning, computed for the object (a warning, never a block).

Coder's AI Bridge proxy routes by base-URL hostname: it reads the enabled providers in name
order and marks every later provider with an already-seen hostname as an error (coderd's API
answers such a create/update with a response-only ``status.warnings`` entry). The operator
writes the row anyway, as coderd does, and says so on the object: the warning is appended to
the ``Synced`` condition's message and posted once as a ``DuplicateHostname`` Warning Event
(again only when the peers change).
"""

from __future__ import annotations

from uuid import UUID

from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.controllers.shared import MESSAGE_LIMIT, PassScratch
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import HostnamePeers, StoreError

__all__ = ["announce_hostname_warning", "hostname_warning", "with_hostname_warning"]

#: At most this many peer names in the message (the count says how many more).
_NAMES = 5


def describe(name: str, peers: HostnamePeers) -> str | None:
    """The warning text for provider ``name`` (None when no other provider shares its host)."""
    if not peers.names:
        return None
    shown = ", ".join(repr(n) for n in peers.names[:_NAMES])
    more = len(peers.names) - _NAMES
    first = min((name, *peers.names))
    served = "this provider" if first == name else repr(first)
    return (
        f"warning: base URL hostname {peers.hostname!r} is shared with enabled provider(s) "
        f"{shown}{f' and {more} more' if more > 0 else ''}; Coder's AI Bridge proxy serves one "
        f"provider per hostname ({served}, the first by name) and marks the others as errors "
        "(spec.baseURL; written anyway, as coderd does)"
    )


async def hostname_warning(wiring: Wiring, provider_id: UUID, name: str) -> str | None:
    """The duplicate-hostname warning for the live row ``provider_id``, or None.

    A database error here only loses the warning for this pass (the write already happened;
    the next pass computes it again), so it is not a failure of the pass."""
    try:
        peers = await wiring.store.hostname_peers(provider_id)
    except StoreError:
        return None
    return None if peers is None else describe(name, peers)


def with_hostname_warning(message: str, warning: str | None) -> str:
    """The ``Synced`` message ``message`` with ``warning`` appended."""
    return message if warning is None else f"{message}; {warning}"[:MESSAGE_LIMIT]


def announce_hostname_warning(scratch: PassScratch, warning: str | None) -> None:
    """Post the Warning Event when it is news: the object's current ``Synced`` message does
    not already carry this exact warning (so once, and again when the peers change)."""
    if warning is None:
        return
    current = next(
        (c.message for c in scratch.current_conditions if c.type == ConditionType.SYNCED), ""
    )
    if warning not in (current or ""):
        scratch.warn(Reason.DUPLICATE_HOSTNAME, warning)
