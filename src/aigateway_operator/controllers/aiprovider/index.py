"""In-memory index of AIProviders: which Secrets they reference, which names they claim.

Fed by kopf's ``on.event`` handler with every AIProvider event (the initial listing
included), through the one reading of the spec (:mod:`.reading`), holding names only, never
data. A pass that runs before the listing is complete is harmless: names are re-checked by
the database (a taken name is reported, never overwritten) and Secrets are re-read.

Why not ``@kopf.index``: it would do this job. kopf hands the same live ``indices`` to
every handler, ``on.startup`` included, so the operator could keep it for the Secret watch;
and the wait for the initial listing to be indexed before handlers run is one wait at
start. The reason is a kopf bug. kopf 1.45 fills the index from inside each object's
worker, and each worker then waits until *every* object is indexed
(``operator_indexed.wait_for(True)`` in ``kopf/_core/reactor/processing.py``): with
``settings.queueing.worker_limit`` below the number of objects, the workers holding the
slots wait for objects that never get a worker, and the operator hangs at start
(kopf#1243, open: "Initial index population hung when batching.worker_limit is less than
number of resource objects to index"; the fix proposed in kopf#1218 was closed unmerged).
This operator bounds kopf's workers (``operator.lifecycle``: ``max(16, AIGW_MAX_WORKERS)``,
which keeps a burst of new objects from inflating memory for good), so a kopf index would
hang any install with more objects than that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from aigateway_operator.controllers.aiprovider.reading import ProviderReading

K = TypeVar("K")
#: The objects under one key: a bare uid while there is one (the common case: a set is
#: ~200 bytes, and there would be two per object), a set once there are more.
Uids = str | set[str]


@dataclass(frozen=True, slots=True)
class NameClaim:
    """One object claiming a provider name."""

    created: str
    uid: str
    namespace: str
    name: str
    deleting: bool = False
    """Being deleted: its claim ends once its finalizer has released the row."""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One object's entry (``__slots__``, a tuple of Secret names: one per object, so small)."""

    namespace: str
    name: str
    provider_name: str | None
    secrets: tuple[str, ...]
    claim: NameClaim


@dataclass
class ProviderIndex:
    _by_uid: dict[str, _Entry] = field(default_factory=dict)
    _by_secret: dict[tuple[str, str], Uids] = field(default_factory=dict)
    _by_name: dict[str, Uids] = field(default_factory=dict)

    def update(self, reading: ProviderReading, *, deleting: bool = False) -> None:
        """Index what the object says now (its one reading, :mod:`.reading`). An object
        whose spec cannot be acted on stays known (:meth:`has`) but claims no name."""
        ident = reading.ident
        uid, namespace, name = ident.uid, ident.namespace, ident.name
        self.remove(uid)
        entry = _Entry(
            namespace=namespace,
            name=name,
            provider_name=reading.provider_name,
            secrets=tuple(reading.secret_names),
            claim=NameClaim(
                created=ident.created, uid=uid, namespace=namespace, name=name, deleting=deleting
            ),
        )
        self._by_uid[uid] = entry
        for secret in entry.secrets:
            _add(self._by_secret, (namespace, secret), uid)
        if entry.provider_name is not None:
            _add(self._by_name, entry.provider_name, uid)

    def remove(self, uid: str) -> None:
        entry = self._by_uid.pop(uid, None)
        if entry is None:
            return
        for secret in entry.secrets:
            _discard(self._by_secret, (entry.namespace, secret), uid)
        if entry.provider_name is not None:
            _discard(self._by_name, entry.provider_name, uid)

    def referencing(self, namespace: str, secret: str) -> list[str]:
        """Uids of the AIProviders in ``namespace`` that reference the Secret."""
        return sorted(members(self._by_secret.get((namespace, secret))))

    def has(self, namespace: str, name: str) -> bool:
        """Whether an AIProvider ``namespace/name`` is known (seen and not deleted)."""
        return any(e.namespace == namespace and e.name == name for e in self._by_uid.values())

    def provider_name(self, uid: str) -> str | None:
        """The Coder provider name object ``uid`` claims, if it is known."""
        entry = self._by_uid.get(uid)
        return entry.provider_name if entry else None

    def claims(self, provider_name: str) -> list[NameClaim]:
        return [self._by_uid[u].claim for u in members(self._by_name.get(provider_name))]


def members(uids: Uids | None) -> Iterable[str]:
    """The uids of one key of the index (a key names one object, mostly: then a bare str)."""
    if uids is None:
        return ()
    return (uids,) if isinstance(uids, str) else uids


def _add(index: dict[K, Uids], key: K, uid: str) -> None:
    held = index.get(key)
    if held is None or held == uid:
        index[key] = uid
    elif isinstance(held, str):
        index[key] = {held, uid}
    else:
        held.add(uid)


def _discard(index: dict[K, Uids], key: K, uid: str) -> None:
    held = index.get(key)
    if held is None:
        return
    if isinstance(held, str):
        if held == uid:
            del index[key]
        return
    held.discard(uid)
    if len(held) == 1:
        index[key] = next(iter(held))
