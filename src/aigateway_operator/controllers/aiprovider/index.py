"""In-memory index of AIProviders: which Secrets they reference, which names they claim.

Fed by kopf's ``on.event`` handler with every AIProvider event (the initial listing
included), holding names only, never data. Why not ``@kopf.index``: its values are reachable
only from inside kopf's own handlers (as the ``indices`` kwarg), while the lookups happen in
our metadata-only Secret watch, which kopf does not run; and a kopf index makes every handler
wait until all objects are indexed. A pass that runs before the listing is complete is
harmless: names are re-checked by the database (a taken name is reported, never
overwritten) and Secrets are re-read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NameClaim:
    """One object claiming a provider name."""

    created: str
    uid: str
    namespace: str
    name: str
    deleting: bool = False
    """Being deleted: its claim ends once its finalizer has released the row."""

    def sort_key(self) -> tuple[str, str]:
        return (self.created, self.uid)


def effective_name(spec: Mapping[str, Any], name: str) -> str:
    explicit = spec.get("providerName")
    return str(explicit) if explicit else name


def secret_names(spec: Mapping[str, Any]) -> set[str]:
    names = {
        str(k.get("secretKeyRef", {}).get("name"))
        for k in spec.get("apiKeys") or []
        if k.get("secretKeyRef", {}).get("name")
    }
    creds = (spec.get("bedrock") or {}).get("credentialsSecretRef") or {}
    if creds.get("name"):
        names.add(str(creds["name"]))
    return names


@dataclass(frozen=True)
class _Entry:
    namespace: str
    name: str
    provider_name: str
    secrets: frozenset[str]
    claim: NameClaim


@dataclass
class ProviderIndex:
    _by_uid: dict[str, _Entry] = field(default_factory=dict)
    _by_secret: defaultdict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    _by_name: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def update(
        self, uid: str, namespace: str, name: str, spec: Mapping[str, Any], meta: Mapping[str, Any]
    ) -> None:
        self.remove(uid)
        provider_name = effective_name(spec, name)
        entry = _Entry(
            namespace=namespace,
            name=name,
            provider_name=provider_name,
            secrets=frozenset(secret_names(spec)),
            claim=NameClaim(
                created=str(meta.get("creationTimestamp", "")),
                uid=uid,
                namespace=namespace,
                name=name,
                deleting=bool(meta.get("deletionTimestamp")),
            ),
        )
        self._by_uid[uid] = entry
        for secret in entry.secrets:
            self._by_secret[(namespace, secret)].add(uid)
        self._by_name[provider_name].add(uid)

    def remove(self, uid: str) -> None:
        entry = self._by_uid.pop(uid, None)
        if entry is None:
            return
        for secret in entry.secrets:
            key = (entry.namespace, secret)
            self._by_secret[key].discard(uid)
            if not self._by_secret[key]:
                del self._by_secret[key]
        self._by_name[entry.provider_name].discard(uid)
        if not self._by_name[entry.provider_name]:
            del self._by_name[entry.provider_name]

    def references(self, namespace: str, secret: str) -> bool:
        return (namespace, secret) in self._by_secret

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
