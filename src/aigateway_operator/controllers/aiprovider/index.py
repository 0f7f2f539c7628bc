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

from collections import defaultdict
from dataclasses import dataclass, field

from aigateway_operator.controllers.aiprovider.reading import ProviderReading


@dataclass(frozen=True)
class NameClaim:
    """One object claiming a provider name."""

    created: str
    uid: str
    namespace: str
    name: str
    deleting: bool = False
    """Being deleted: its claim ends once its finalizer has released the row."""


@dataclass(frozen=True)
class _Entry:
    namespace: str
    name: str
    provider_name: str | None
    secrets: frozenset[str]
    claim: NameClaim


@dataclass
class ProviderIndex:
    _by_uid: dict[str, _Entry] = field(default_factory=dict)
    _by_secret: defaultdict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    _by_name: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

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
            secrets=reading.secret_names,
            claim=NameClaim(
                created=ident.created, uid=uid, namespace=namespace, name=name, deleting=deleting
            ),
        )
        self._by_uid[uid] = entry
        for secret in entry.secrets:
            self._by_secret[(namespace, secret)].add(uid)
        if entry.provider_name is not None:
            self._by_name[entry.provider_name].add(uid)

    def remove(self, uid: str) -> None:
        entry = self._by_uid.pop(uid, None)
        if entry is None:
            return
        for secret in entry.secrets:
            key = (entry.namespace, secret)
            self._by_secret[key].discard(uid)
            if not self._by_secret[key]:
                del self._by_secret[key]
        if entry.provider_name is not None:
            self._by_name[entry.provider_name].discard(uid)
            if not self._by_name[entry.provider_name]:
                del self._by_name[entry.provider_name]

    def referencing(self, namespace: str, secret: str) -> list[str]:
        """Uids of the AIProviders in ``namespace`` that reference the Secret."""
        return sorted(self._by_secret.get((namespace, secret), ()))

    def has(self, namespace: str, name: str) -> bool:
        """Whether an AIProvider ``namespace/name`` is known (seen and not deleted)."""
        return any(e.namespace == namespace and e.name == name for e in self._by_uid.values())

    def provider_name(self, uid: str) -> str | None:
        """The Coder provider name object ``uid`` claims, if it is known."""
        entry = self._by_uid.get(uid)
        return entry.provider_name if entry else None

    def claims(self, provider_name: str) -> list[NameClaim]:
        return [self._by_uid[u].claim for u in self._by_name.get(provider_name, ())]
