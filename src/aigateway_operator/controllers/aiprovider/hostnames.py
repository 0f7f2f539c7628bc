"""coderd's duplicate-hostname warning, computed for the object (a warning, never a block).

Coder's AI Bridge proxy routes by base-URL hostname: it reads the enabled providers in name
order and marks every later provider with an already-seen hostname as an error (coderd's API
answers such a create/update with a response-only ``status.warnings`` entry). The operator
writes the row anyway, as coderd does, and says so on the object:

* the ``Synced`` condition's message carries one fixed sentence naming the hostname while it
  is shared. It does not list the other providers: a list would change with every provider
  added on a busy host (an OpenAI host shared by hundreds of providers) and cost a status
  write on each of them, and a restart would find it stale;
* a ``DuplicateHostname`` Warning Event, posted when the sentence appears, names one or two
  of the others (and, when there is exactly one, which provider the proxy serves).

A provider's pass only sees the rows that exist when it runs, so the controller wakes the
others when a host goes from one provider to two and back (:class:`HostnameWatch`); any other
change is seen on the next pass of each object (an edit, a Secret change, the resync).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.controllers.aiprovider.part import ProviderPart
from aigateway_operator.controllers.shared import MESSAGE_LIMIT, PassOutcome, PassScratch
from aigateway_operator.controllers.wiring import Wiring
from aigateway_operator.store import HostnamePeers, StoreError

__all__ = [
    "HostnameCheck",
    "HostnameWatch",
    "announce_hostname_warning",
    "check_hostname",
    "record_hostname",
    "with_hostname_warning",
]


@dataclass(frozen=True)
class HostnameCheck:
    """What one pass found: ``peers`` is None when the row is not served (disabled, no host)."""

    name: str
    peers: HostnamePeers | None

    @property
    def shared(self) -> bool:
        return self.peers is not None and self.peers.count > 0

    @property
    def warning(self) -> str | None:
        """The fixed sentence for the ``Synced`` message while the hostname is shared."""
        if self.peers is None or not self.shared:
            return None
        return (
            f"warning: base URL hostname {self.peers.hostname!r} is shared with other enabled "
            "providers; Coder's AI Bridge proxy serves only the first of them by name and marks "
            "the others as errors (spec.baseURL; written anyway, as coderd does)"
        )

    @property
    def event(self) -> str | None:
        """The Warning Event's text: one or two of the others, and who is served if known."""
        if self.peers is None or not self.shared:
            return None
        peers = self.peers
        if peers.count == 1:  # exactly one other: who is served is known
            (peer,) = peers.names
            first = min(self.name, peer)
            served = "this provider" if first == self.name else repr(first)
            who = f"enabled provider {peer!r}; Coder's AI Bridge proxy serves {served}"
        else:
            shown = ", ".join(repr(n) for n in peers.names)
            who = (
                f"enabled providers {shown} (and maybe more); Coder's AI Bridge proxy serves "
                "only the first of them by name"
            )
        return (
            f"Base URL hostname {peers.hostname!r} is shared with {who} and marks the others "
            "as errors (spec.baseURL; written anyway, as coderd does)"
        )[:MESSAGE_LIMIT]


async def check_hostname(
    wiring: Wiring, provider_id: UUID, name: str, *, enabled: bool
) -> HostnameCheck | None:
    """The hostname check for the live row ``provider_id`` (None: not known this pass).

    A database error only loses the check for this pass (the write already happened; the
    next pass checks again), so it is not a failure of the pass."""
    if not enabled:
        return HostnameCheck(name, None)
    try:
        return HostnameCheck(name, await wiring.store.hostname_peers(provider_id))
    except StoreError:
        return None


def with_hostname_warning(message: str, check: HostnameCheck | None) -> str:
    """The ``Synced`` message ``message`` with the warning sentence appended while shared."""
    warning = check.warning if check is not None else None
    return message if warning is None else f"{message}; {warning}"[:MESSAGE_LIMIT]


def announce_hostname_warning(scratch: PassScratch, check: HostnameCheck | None) -> None:
    """Post the Warning Event when the sentence is news: the object's current ``Synced``
    message does not carry it yet (so once per time the hostname becomes shared)."""
    if check is None or check.warning is None or check.event is None:
        return
    current = next(
        (c.message for c in scratch.current_conditions if c.type == ConditionType.SYNCED), ""
    )
    if check.warning not in (current or ""):
        scratch.warn(Reason.DUPLICATE_HOSTNAME, check.event)


def record_hostname(outcome: PassOutcome, check: HostnameCheck | None) -> None:
    """Hand what the pass found to the controller (its :class:`HostnameWatch`)."""
    outcome.hostname_checked = check is not None
    outcome.hostname_peers = check.peers if check is not None else None


@dataclass(frozen=True)
class HostnameWatch:
    """Which objects to wake when a hostname goes from one provider to two, and back.

    ``claims(name)`` gives the uids of the objects claiming provider ``name``; ``part_of(uid)``
    their records' part (where what each last pass found is kept: ``ProviderPart.alone`` and
    ``sole_peer``); ``wake`` runs their passes again. Keeps nothing of its own; in memory
    only: after a restart every object has its own pass.
    """

    claims: Callable[[str], Iterable[str]]
    wake: Callable[[Iterable[str]], object]
    part_of: Callable[[str], ProviderPart | None]

    def _alone(self, uid: str) -> bool:
        part = self.part_of(uid)
        return part is not None and part.alone

    def seen(self, part: ProviderPart, check: HostnameCheck | None) -> None:
        """Record on ``part`` what its object's pass found and wake whoever it changes."""
        if check is None:
            return
        peers = check.peers
        old_sole, part.sole_peer = part.sole_peer, None
        if peers is not None and peers.count > 0:
            part.alone = False
            # Those that found themselves alone now share the hostname with this one.
            self.wake(u for n in peers.names for u in self.claims(n) if self._alone(u))
            if peers.count == 1:
                part.sole_peer = peers.names[0]
            return
        part.alone = True
        if old_sole is not None:  # the one it shared with may be alone now
            self.wake(self.claims(old_sole))

    def gone(self, part: ProviderPart) -> None:
        """The object's row is released: the one provider it shared its hostname with may be
        alone."""
        part.alone = False
        sole, part.sole_peer = part.sole_peer, None
        if sole is not None:
            self.wake(self.claims(sole))
