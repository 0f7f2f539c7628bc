"""In-memory stand-ins for the store and the Secret API, keeping their contracts, for unit
tests of both kinds' passes (the real store is tested on Postgres in tests/integration;
``tests/integration/test_store_contract.py`` runs the same claim scenarios against
:class:`FakeProviderStore` and the real store, so the fake's rules are the store's; the claim
rule itself is the store's own ``store.claim.claim``, called by both).

- :class:`FakeSecrets`: read/write/delete Secrets with resourceVersions, as the API server.
- :class:`FakeGatewayKeyStore`: ownership records per owner identity, the journal (begin,
  complete only with the journaled secret, replay), rotation, retirement, release, names
  refused naming their holder, heartbeats.
- :class:`FakeProviderStore`: upsert by owner (create, update, unchanged, adopt, revive),
  name conflicts, key-set changes, soft delete or release, row versions for drift, and
  Coder-owned columns (set on create and revive only, never a difference on a live row).
- :class:`ActorBook` (both stores): the admission records (``record_actor``,
  ``admission_actor``, the real store's lookup rule) and the actor each audited write
  carried (``audited``).
- :class:`FakeWorkloads`: Deployments and StatefulSets whose pod templates get stamped.
- :class:`Clock`: a pinned, advanceable clock.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aigateway_operator.api.identity import (
    AIPROVIDER,
    KEY_GENERATION_ANNOTATION,
    RESTART_ON_ROTATION_ANNOTATION,
)
from aigateway_operator.controllers.aiprovider.reading import ProviderReading, read_provider
from aigateway_operator.controllers.shared import ObjectIdentity
from aigateway_operator.kube import KubeError, Requester, SecretData, Workload
from aigateway_operator.masking import mask_secret
from aigateway_operator.store import (
    HOSTNAME_PEER_NAMES,
    Actor,
    AppliedInputs,
    CoderVersion,
    DeletePolicy,
    DeleteResult,
    DesiredProvider,
    Difference,
    DifferenceKind,
    GatewayKeyConflict,
    GatewayKeyInfo,
    GatewayKeyOwnership,
    GatewayKeyRelease,
    HostnamePeers,
    IssuedGatewayKey,
    KeyRef,
    NameTaken,
    OwnerPolicy,
    OwnerRef,
    PendingKey,
    ProviderCheck,
    ProviderPreview,
    ProviderResult,
    RevivalUnconfirmed,
    RowVersion,
    SecretCollision,
    StoredKey,
    StoredProvider,
    StoreError,
    StoreUnavailable,
    VerificationRecord,
    default_base_url,
    provider_row_id,
    retiring_name,
)
from aigateway_operator.store.claim import Claim, NameHolder, claim
from aigateway_operator.store.gateway_keys import describe_holder

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
#: What the fakes report as the Coder they talk to (a v2.36 schema).
CODER = CoderVersion.of(551)


@dataclass
class ActorBook:
    """``Store.record_actor`` / ``Store.admission_actor`` in memory, and what the real store
    would put in its audit rows: ``audited`` is ``(what, owner.actor)`` per audited write."""

    admitted: dict[tuple[str, int, str], Actor] = field(default_factory=dict, kw_only=True)
    audited: list[tuple[str, Actor | None]] = field(default_factory=list, kw_only=True)
    lookups: int = field(default=0, kw_only=True)

    async def record_actor(
        self,
        *,
        object_uid: str,
        generation: int,
        spec_digest: str,
        kind: str,
        namespace: str,
        name: str,
        actor: Actor,
    ) -> None:
        self._check()
        self.admitted[(object_uid, generation, spec_digest)] = actor

    async def admission_actor(self, object_uid: str, generation: int, spec_digest: str) -> Actor:
        self._check()
        self.lookups += 1
        found = self.admitted.get((object_uid, generation, spec_digest))
        if found is not None:
            return found
        if any(k[:2] == (object_uid, generation) for k in self.admitted):
            return Actor.unknown(
                f"the admission records of generation {generation} are of another spec "
                "(a request admitted but not stored)"
            )
        return Actor.unknown(f"no admission record for generation {generation}")

    def _audit(self, what: str, owner: OwnerRef) -> None:
        self.audited.append((what, owner.actor))

    def actors(self) -> list[str]:
        """The actor names of the audited writes, in order."""
        return [a.name if a is not None else "<none>" for _, a in self.audited]

    def _check(self) -> None:
        raise NotImplementedError


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Row:
    id: uuid.UUID
    name: str
    prefix: str
    hashed: bytes
    created_at: datetime
    heartbeat: datetime | None = None

    def info(self) -> GatewayKeyInfo:
        return GatewayKeyInfo(self.id, self.name, self.prefix, self.created_at, self.heartbeat)


@dataclass
class Record:
    """One ``aigateway_operator.owners`` record of a gateway key."""

    owner: OwnerRef
    role: str
    row_id: uuid.UUID
    policy: OwnerPolicy
    secret_hash: bytes | None
    prefix: str | None
    rotating: bool
    created_at: datetime
    updated_at: datetime
    rotation_generation: int | None = None


def _sha(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass
class FakeGatewayKeyStore(ActorBook):
    """The gateway-key calls of :class:`~aigateway_operator.store.Store`, in memory, with the
    same contract: records per owner identity (``OwnerRef.key``), the journal, rotation,
    retirement, release, and the same errors (holder named the same way)."""

    clock: Clock
    coder_version: CoderVersion = CODER
    rows: dict[uuid.UUID, Row] = field(default_factory=dict)
    records: dict[uuid.UUID, Record] = field(default_factory=dict)
    down: bool = False
    fail_with: StoreError | None = None
    """Raised by every call, as ``down`` raises StoreUnavailable (a refusal the real store
    makes: PlaintextRefused, InsufficientPrivileges, NotSupportedByCoder ...)."""

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        if self.fail_with is not None:
            raise self.fail_with

    def _recs(self, owner: OwnerRef) -> dict[str, Record]:
        return {r.role: r for r in self.records.values() if r.owner.key == owner.key}

    def _holder(self, owner: OwnerRef, row_id: uuid.UUID) -> str:
        rec = self.records.get(row_id)
        key = None if rec is None else rec.owner.key
        return describe_holder(owner, key)

    def _name_holder(self, name: str) -> uuid.UUID | None:
        return next((r.id for r in self.rows.values() if r.name.lower() == name.lower()), None)

    async def gateway_key_state(self, owner: OwnerRef) -> GatewayKeyOwnership:
        self._check()
        fields: dict[str, Any] = {}
        policies = {r.policy for r in self._recs(owner).values()}
        if len(policies) == 1:
            fields["deletion_policy"] = policies.pop()
        uids = {r.owner.uid for r in self._recs(owner).values()}
        if len(uids) == 1:
            fields["object_uid"] = uids.pop()
        for role, rec in self._recs(owner).items():
            row = self.rows.get(rec.row_id)
            if role == "pending":
                assert rec.secret_hash is not None
                fields["pending"] = PendingKey(
                    rec.row_id, rec.prefix or "", rec.rotating, rec.created_at, rec.secret_hash,
                    rec.rotation_generation,
                )  # fmt: skip
            elif role == "current":
                fields["current"] = row.info() if row else None
                fields["current_recorded_id"] = rec.row_id
                fields["current_rotation_generation"] = rec.rotation_generation
                fields["current_hash"] = row.hashed if row else None
            else:
                fields["previous"] = row.info() if row else None
                fields["previous_recorded_id"] = rec.row_id
                fields["previous_since"] = rec.updated_at
        if fields:
            fields["observed_at"] = self.clock.now
        return GatewayKeyOwnership(**fields)

    async def begin_gateway_key(
        self,
        owner: OwnerRef,
        key_id: uuid.UUID,
        name: str,
        secret: str,
        *,
        rotating: bool,
        deletion_policy: OwnerPolicy = "Delete",
        rotation_generation: int | None = None,
    ) -> PendingKey:
        self._check()
        assert len(secret) == 43
        recs = self._recs(owner)
        pending = recs.get("pending")
        if pending is not None and pending.row_id == key_id:
            if pending.secret_hash == _sha(secret):
                return (await self.gateway_key_state(owner)).pending  # type: ignore[return-value]
            raise GatewayKeyConflict("pending key has another secret")
        holder = self._name_holder(name)
        ours = {r.row_id for role, r in recs.items() if role != "pending"}
        if holder is not None and holder not in ours:
            raise NameTaken("AI Gateway key", name, holder=self._holder(owner, holder))
        if key_id in self.rows or key_id in self.records:
            raise GatewayKeyConflict("id in use")
        if pending is not None:
            del self.records[pending.row_id]
        now = self.clock.now
        self.records[key_id] = Record(
            owner, "pending", key_id, deletion_policy, _sha(secret), secret[:11], rotating, now,
            now, rotation_generation,
        )  # fmt: skip
        return PendingKey(key_id, secret[:11], rotating, now, _sha(secret), rotation_generation)

    async def complete_gateway_key(
        self, owner: OwnerRef, key_id: uuid.UUID, name: str, secret: str
    ) -> IssuedGatewayKey:
        self._check()
        recs = self._recs(owner)
        pending = recs.get("pending")
        hashed = _sha(secret)
        if pending is None or pending.row_id != key_id:
            cur = recs.get("current")
            row = self.rows.get(key_id)
            if cur and cur.row_id == key_id and row and row.hashed == hashed and row.name == name:
                return IssuedGatewayKey(key_id, name, secret, secret[:11], row.created_at, False)
            raise GatewayKeyConflict("not the pending key")
        if pending.secret_hash != hashed:
            raise GatewayKeyConflict("not the journaled secret")
        current, previous = recs.get("current"), recs.get("previous")
        ours = {r.row_id for r in (current, previous) if r is not None}
        holder = self._name_holder(name)
        if holder is not None and holder not in ours:
            raise NameTaken("AI Gateway key", name, holder=self._holder(owner, holder))
        if any(r.prefix == secret[:11] or r.hashed == hashed for r in self.rows.values()):
            raise SecretCollision("collides")
        current_row = self.rows.get(current.row_id) if current else None
        if pending.rotating and current is not None and current_row is not None:
            if previous is not None:
                self.rows.pop(previous.row_id, None)
                del self.records[previous.row_id]
            n = 1
            while self._name_holder(retiring_name(name, n)) is not None:
                n += 1
            current_row.name = retiring_name(name, n)
            current.role, current.updated_at = "previous", self.clock.now
        else:
            if current is not None:
                self.rows.pop(current.row_id, None)
                del self.records[current.row_id]
            if previous is not None and holder == previous.row_id:
                self.rows.pop(previous.row_id, None)
                del self.records[previous.row_id]
        self.rows[key_id] = Row(key_id, name, secret[:11], hashed, self.clock.now)
        self._audit("key created", owner)
        pending.role, pending.secret_hash, pending.rotating = "current", None, False
        pending.updated_at = self.clock.now
        return IssuedGatewayKey(key_id, name, secret, secret[:11], self.clock.now, created=True)

    async def discard_pending(self, owner: OwnerRef) -> bool:
        self._check()
        pending = self._recs(owner).get("pending")
        if pending is None:
            return False
        del self.records[pending.row_id]
        return True

    async def retire_previous(
        self, owner: OwnerRef, unless_used_within: timedelta | None = None
    ) -> GatewayKeyInfo | None:
        self._check()
        previous = self._recs(owner).get("previous")
        if previous is None:
            return None
        row = self.rows.get(previous.row_id)
        beat = row.heartbeat if row is not None else None
        if (
            unless_used_within is not None
            and beat is not None
            and beat > self.clock.now - unless_used_within
        ):
            return None
        del self.records[previous.row_id]
        row = self.rows.pop(previous.row_id, None)
        if row is not None:
            self._audit("key retired", owner)
        return row.info() if row else None

    async def gateway_key_matches(self, owner: OwnerRef, secret: str) -> bool:
        return (await self.gateway_key_state(owner)).matches(secret)

    async def release_gateway_keys(
        self, owner: OwnerRef, policy: OwnerPolicy = "Delete"
    ) -> GatewayKeyRelease:
        self._check()
        recs = self._recs(owner)
        rows = [r.row_id for role, r in recs.items() if role != "pending"]
        deleted = []
        if policy == "Delete":
            deleted = [row.info() for i in rows if (row := self.rows.pop(i, None)) is not None]
            if deleted:
                self._audit("keys deleted", owner)
        for rec in recs.values():
            del self.records[rec.row_id]
        released = tuple(rows) if policy == "Orphan" else ()
        return GatewayKeyRelease(tuple(deleted), released, len(recs))

    async def record_deletion_policy(self, owner: OwnerRef, policy: OwnerPolicy) -> int:
        self._check()
        changed = [
            r
            for r in self._recs(owner).values()
            if r.policy != policy or (owner.uid and r.owner.uid != owner.uid)
        ]
        for r in changed:
            r.policy = policy
            r.owner = owner if owner.uid else r.owner
        return len(changed)

    async def collect_gateway_keys(self, owner: OwnerRef) -> GatewayKeyRelease:
        self._check()
        recs = list(self._recs(owner).values())
        if not recs or (owner.uid and any(r.owner.uid not in ("", owner.uid) for r in recs)):
            return GatewayKeyRelease((), (), 0)
        policy: OwnerPolicy = "Orphan" if all(r.policy == "Orphan" for r in recs) else "Delete"
        return await self.release_gateway_keys(owner, policy)

    async def gateway_key_name_holder(self, owner: OwnerRef, name: str) -> str | None:
        self._check()
        row_id = self._name_holder(name)
        if row_id is None:
            return None
        rec = self.records.get(row_id)
        if rec is not None and rec.owner.key == owner.key:
            return None
        return self._holder(owner, row_id)

    def add_foreign(self, name: str, owner: OwnerRef | None = None) -> Row:
        """A live row made in Coder (no record), or recorded as ``owner``'s current key."""
        row = Row(uuid.uuid4(), name, "abcdefghijk", _sha(name), self.clock.now)
        self.rows[row.id] = row
        if owner is not None:
            now = self.clock.now
            self.records[row.id] = Record(
                owner, "current", row.id, "Delete", None, None, False, now, now
            )
        return row

    def by_name(self, name: str) -> Row:
        (row,) = [r for r in self.rows.values() if r.name == name]
        return row

    def roles(self, owner: OwnerRef) -> dict[str, uuid.UUID]:
        """role -> row id of ``owner``'s records."""
        return {role: r.row_id for role, r in self._recs(owner).items()}


@dataclass
class FakeWorkloads:
    """Deployments and StatefulSets as the restart step sees them (``list_workloads``,
    ``read_workload``, ``stamp_pod_template``): ``rollouts`` counts each template change, as
    a Deployment's generation would; ``denied`` answers every call with a 403."""

    items: dict[tuple[str, str, str], Workload] = field(default_factory=dict)
    rollouts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    denied: bool = False
    lists: int = 0

    def add(self, kind: str, namespace: str, name: str, opt_in: str | None) -> None:
        annotations = {} if opt_in is None else {RESTART_ON_ROTATION_ANNOTATION: opt_in}
        self.items[(kind, namespace, name)] = Workload(
            kind, namespace, name, str(uuid.uuid4()), annotations
        )
        self.rollouts[(kind, namespace, name)] = 0

    def stamp(self, kind: str, namespace: str, name: str) -> str | None:
        return self.items[(kind, namespace, name)].template_annotations.get(
            KEY_GENERATION_ANNOTATION
        )

    def _check(self) -> None:
        if self.denied:
            raise KubeError("listing deployments failed: HTTP 403 Forbidden", 403)

    async def list_workloads(self, namespace: str) -> list[Workload]:
        self._check()
        self.lists += 1
        return [
            replace(w, template_annotations={})
            for (_, ns, _), w in self.items.items()
            if ns == namespace
        ]

    async def read_workload(self, kind: str, namespace: str, name: str) -> Workload | None:
        self._check()
        return self.items.get((kind, namespace, name))

    async def stamp_pod_template(self, workload: Workload, annotations: dict[str, str]) -> bool:
        self._check()
        key = (workload.kind, workload.namespace, workload.name)
        current = self.items.get(key)
        if current is None or current.uid != workload.uid:
            return False
        merged = {**current.template_annotations, **annotations}
        if merged != current.template_annotations:
            self.rollouts[key] += 1
        self.items[key] = replace(current, template_annotations=merged)
        return True


@dataclass
class FakeSecrets:
    secrets: dict[tuple[str, str], SecretData] = field(default_factory=dict)
    writes: int = 0
    version: int = 0
    fail_writes: bool = False
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    """Custom objects ``get_object`` answers with, by (plural, namespace, name)."""
    readers: dict[str, set[str]] | None = None
    """User name -> the Secrets (``namespace/name``) they may get (None: everybody may get
    every Secret); what ``may_get_secret`` answers, as RBAC would."""
    reviews: list[tuple[Requester, str, str]] = field(default_factory=list)

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        return self.secrets.get((namespace, name))

    async def may_get_secret(self, requester: Requester, namespace: str, name: str) -> bool:
        self.reviews.append((requester, namespace, name))
        if self.readers is None:
            return True
        return f"{namespace}/{name}" in self.readers.get(requester.username, set())

    async def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name)) or None  # {} stands for a 404

    async def write_owned_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        owner: dict[str, str],
        labels: dict[str, str],
        resource_version: str | None,
        annotations: dict[str, str] | None = None,
    ) -> SecretData:
        if self.fail_writes:
            raise KubeError(f"writing Secret {namespace}/{name} failed: HTTP 500", 500)
        current = self.secrets.get((namespace, name))
        if (current is None) != (resource_version is None) or (
            current is not None and current.resource_version != resource_version
        ):
            raise KubeError("conflict", 409)
        self.version += 1
        self.writes += 1
        sec = SecretData(
            namespace=namespace,
            name=name,
            uid=current.uid if current else str(uuid.uuid4()),
            resource_version=str(self.version),
            data=dict(data),
            labels=dict(labels),
            owner_uids=(owner["uid"],),
            annotations=dict(annotations or {}),
        )
        self.secrets[(namespace, name)] = sec
        return sec

    async def delete_secret(self, namespace: str, name: str, uid: str) -> bool:
        return self.secrets.pop((namespace, name), None) is not None

    async def disown_secret(self, namespace: str, name: str, uid: str) -> bool:
        sec = self.secrets[(namespace, name)]
        self.secrets[(namespace, name)] = replace(sec, owner_uids=())
        return True

    def value(self, name: str = "gw-key") -> str:
        return self.secrets[("ns", name)].data["key"].decode()

    def tamper(self, value: str, name: str = "gw-key") -> None:
        sec = self.secrets[("ns", name)]
        self.version += 1
        self.secrets[("ns", name)] = replace(
            sec, data={"key": value.encode()}, resource_version=str(self.version)
        )

    def put(
        self,
        namespace: str,
        name: str,
        data: dict[str, str],
        allowed: str | None = "*",
        hosts: str | None = "*",
    ) -> SecretData:
        """Create or replace a Secret as a user would (not owned by anybody), letting the
        AIProviders ``allowed`` names use it (None: no opt-in annotation) and send its values
        to ``hosts`` (None: only the type's default endpoint)."""
        current = self.secrets.get((namespace, name))
        self.version += 1
        annotations = {} if allowed is None else {"aigateway.dev/allowed-aiproviders": allowed}
        if allowed is not None and hosts is not None:
            annotations["aigateway.dev/allowed-hosts"] = hosts
        sec = SecretData(
            namespace=namespace,
            name=name,
            uid=current.uid if current else str(uuid.uuid4()),
            resource_version=str(self.version),
            data={k: v.encode() for k, v in data.items()},
            annotations=annotations,
        )
        self.secrets[(namespace, name)] = sec
        return sec


@dataclass
class ProviderRow:
    id: uuid.UUID
    desired: DesiredProvider
    keys: list[tuple[uuid.UUID, str]]
    owner: tuple[str, str, str, str] | None
    """The identity the row is recorded for (None: made in Coder)."""
    updated_at: datetime
    deleted: bool = False
    adopted: bool = False
    policy: DeletePolicy = DeletePolicy.SOFT_DELETE
    applied: AppliedInputs | None = None
    """What the last write for its owner applied (``owners.applied_*``)."""

    def version(self) -> RowVersion:
        return RowVersion(self.updated_at, self.deleted, f"{self.id}:{self.updated_at.isoformat()}")


_FIELDS = ("type", "display_name", "enabled", "base_url", "icon", "bedrock")


def _canon(d: DesiredProvider) -> DesiredProvider:
    return replace(d, base_url=d.base_url or default_base_url(d.type, d.bedrock), api_keys=())


def _keep_owned(desired: DesiredProvider, stored: DesiredProvider) -> DesiredProvider:
    """``desired`` with the Coder-owned columns of a live row as the row holds them (the
    store's planner does the same: they are neither written nor a difference)."""
    return replace(desired, **{c: getattr(stored, c) for c in desired.coder_owned})


def _owned_values(stored: DesiredProvider, columns: frozenset[str]) -> dict[str, Any]:
    """What the store reports for the Coder-owned ``columns`` (an icon NULL reads as '')."""
    return {
        c: (getattr(stored, c) or "") if c == "icon" else getattr(stored, c)
        for c in sorted(columns)
    }


@dataclass
class FakeProviderStore(ActorBook):
    """Keeps ``upsert_provider``'s contract: one owner per row, no-op when equal, names."""

    clock: Clock
    coder_version: CoderVersion = CODER
    rows: dict[uuid.UUID, ProviderRow] = field(default_factory=dict)
    down: bool = False
    fail_with: StoreError | None = None
    """Raised by every call, as ``down`` raises StoreUnavailable (a refusal the real store
    makes: PlaintextRefused, InsufficientPrivileges, NotSupportedByCoder ...)."""
    writes: int = 0
    verifications: dict[tuple[str, str, str, str], VerificationRecord] = field(default_factory=dict)
    """``owners.verified_*`` by owner identity."""

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        if self.fail_with is not None:
            raise self.fail_with

    def _tick(self) -> datetime:
        self.clock.advance(microseconds=1)
        return self.clock.now

    def _own(self, owner: OwnerRef) -> ProviderRow | None:
        return next((r for r in self.rows.values() if r.owner == owner.key), None)

    def _live(self, name: str) -> ProviderRow | None:
        return next(
            (r for r in self.rows.values() if r.desired.name == name and not r.deleted), None
        )

    def add_foreign(self, desired: DesiredProvider) -> ProviderRow:
        """A live row made in Coder's UI (no owner)."""
        row = ProviderRow(
            uuid.uuid4(), desired, [(uuid.uuid4(), k) for k in desired.api_keys], None, self._tick()
        )
        self.rows[row.id] = row
        return row

    @staticmethod
    def _ref(key_id: uuid.UUID, value: str) -> KeyRef:
        return KeyRef(key_id, mask_secret(value), "abc1234")

    def _claim(
        self, desired: DesiredProvider, owner: OwnerRef, adopt: bool
    ) -> tuple[ProviderRow | None, str]:
        """The row a write for ``owner`` would use and how ("update", "adopt", "revive" or
        "create", with no row), after the store's refusals in the store's order; shared by
        :meth:`upsert_provider` and :meth:`preview_provider`."""
        row = self._own(owner)
        if row is None:
            # The identity's own row id (the store's rule): a row this identity created and
            # that was deleted since (its record gone with it) is taken back, not duplicated.
            row = self.rows.get(provider_row_id(owner))
            if row is not None and (not row.deleted or row.owner is not None):
                row = None
        holder = self._live(desired.name)
        if holder is row:
            holder = None  # the store's holder is another row than the owner's own
        taken = claim(  # the store's own rule, not a copy of it
            ours_deleted=None if row is None else row.deleted,
            holder=None
            if holder is None
            else NameHolder(holder.id, holder.desired.type.value, holder.owner),
            name=desired.name,
            type_=desired.type,
            owner=owner,
            adopt=adopt,
        )
        return (holder if taken is Claim.ADOPT else row), taken.value

    async def upsert_provider(
        self,
        desired: DesiredProvider,
        owner: OwnerRef,
        *,
        adopt: bool = False,
        policy: DeletePolicy = DeletePolicy.SOFT_DELETE,
        revive: bool = True,
        applied: AppliedInputs | None = None,
    ) -> ProviderResult:
        self._check()
        row, claim = self._claim(desired, owner, adopt)
        action: str
        if claim == "update":
            action = "updated"
        elif claim == "adopt":
            assert row is not None
            row.owner, row.adopted = owner.key, True
            action = "adopted"
        elif claim == "revive":
            if not revive:
                raise RevivalUnconfirmed(desired.name)
            assert row is not None
            row.owner = owner.key
            action = "revived"
        else:
            keys = [(uuid.uuid4(), k) for k in desired.api_keys]
            row_id = provider_row_id(owner)
            row = ProviderRow(row_id, desired, keys, owner.key, self._tick(), policy=policy)
            row.applied = applied if applied is not None else row.applied
            self.rows[row.id] = row
            self.writes += 1
            self._audit("created", owner)
            refs = tuple(self._ref(i, v) for i, v in keys)
            return ProviderResult(
                row.id, desired.name, "created", ("name",), refs, refs, (), (), False,
                "abc1234", False, True, True, row.updated_at, row.version(),
                coder_owned=_owned_values(desired, desired.coder_owned),
            )  # fmt: skip
        if action != "revived":  # a revive is a creation: every desired value is written
            desired = _keep_owned(desired, row.desired)
        before, after = _canon(row.desired), _canon(desired)
        changed = tuple(f for f in _FIELDS if getattr(before, f) != getattr(after, f))
        if row.desired.name != desired.name:
            changed = ("name", *changed)
        if row.deleted:
            changed = ("deleted", *changed)
        old_values = [v for _, v in row.keys]
        kept = [(i, v) for i, v in row.keys if v in desired.api_keys]
        removed = [(i, v) for i, v in row.keys if v not in desired.api_keys]
        added = [(uuid.uuid4(), v) for v in desired.api_keys if v not in old_values]
        by_value = {v: i for i, v in kept + added}
        new_keys = [(by_value[v], v) for v in desired.api_keys]
        reordered = [v for _, v in kept] != [v for v in desired.api_keys if v in old_values]
        row.policy = policy
        if applied is not None:
            row.applied = applied
        if action == "updated" and not changed and not added and not removed and not reordered:
            action = "unchanged"
        if action != "unchanged":
            row.desired, row.keys, row.deleted = desired, new_keys, False
            row.updated_at = self._tick()
            self.writes += 1
            self._audit(action, owner)
        return ProviderResult(
            row.id, desired.name, action, changed,  # type: ignore[arg-type]
            tuple(self._ref(i, v) for i, v in row.keys),
            tuple(self._ref(i, v) for i, v in added),
            tuple(self._ref(i, v) for i, v in removed),
            tuple(self._ref(i, v) for i, v in kept),
            reordered, "abc1234", False, action != "unchanged", action != "unchanged",
            row.updated_at, row.version(),
            coder_owned=_owned_values(row.desired, desired.coder_owned),
        )  # fmt: skip

    async def provider_verification(self, owner: OwnerRef) -> VerificationRecord | None:
        self._check()
        return self.verifications.get(owner.key) if self._own(owner) is not None else None

    async def record_provider_verification(
        self, owner: OwnerRef, record: VerificationRecord
    ) -> bool:
        self._check()
        if self._own(owner) is None:
            return False
        self.verifications[owner.key] = record
        return True

    async def applied_inputs(self, owner: OwnerRef) -> AppliedInputs | None:
        self._check()
        row = self._own(owner)
        return row.applied if row is not None else None

    async def _compare(self, desired: DesiredProvider, owner: OwnerRef) -> list[str] | None:
        self._check()
        row = self._own(owner)
        if row is None or row.deleted:
            return None
        before, after = _canon(row.desired), _canon(_keep_owned(desired, row.desired))
        out = [f for f in _FIELDS if getattr(before, f) != getattr(after, f)]
        if [v for _, v in row.keys] != list(desired.api_keys):
            out.append("api keys")
        return out

    async def delete_provider(
        self, owner: OwnerRef, policy: DeletePolicy = DeletePolicy.SOFT_DELETE
    ) -> DeleteResult:
        self._check()
        row = self._own(owner)
        if row is None:
            return DeleteResult(None, "absent", False)
        if policy is DeletePolicy.RELEASE:  # the row and its record stay (Orphan)
            row.policy = policy
            return DeleteResult(row.id, "released", False)
        removed = len(row.keys)
        row.deleted, row.keys, row.updated_at = True, [], self._tick()
        row.owner = None  # the record goes with the row
        self.writes += 1
        self._audit("deleted", owner)
        return DeleteResult(row.id, "deleted", True, removed)

    async def get_provider(self, owner: OwnerRef) -> StoredProvider | None:
        self._check()
        row = self._own(owner)
        if row is None:
            return None
        d = row.desired
        return StoredProvider(
            row.id, d.name, d.type, d.display_name, d.icon, d.enabled, row.deleted,
            d.base_url or "", d.bedrock, "abc1234",
            tuple(StoredKey(i, v, mask_secret(v), "abc1234", row.updated_at) for i, v in row.keys),
            row.updated_at, row.updated_at, row.adopted,
        )  # fmt: skip

    async def hostname_peers(self, provider_id: uuid.UUID) -> HostnamePeers | None:
        """The store's hostname rule with :mod:`urllib.parse` (the real one is SQL)."""
        self._check()

        def host(r: ProviderRow) -> str | None:
            if r.deleted or not r.desired.enabled:
                return None
            url = r.desired.base_url or default_base_url(r.desired.type, r.desired.bedrock)
            return urlsplit(url).hostname if url else None

        me = self.rows.get(provider_id)
        mine = host(me) if me is not None else None
        if mine is None:
            return None
        names = sorted(
            r.desired.name for r in self.rows.values() if r.id != provider_id and host(r) == mine
        )
        found = tuple(names[:HOSTNAME_PEER_NAMES])  # the real store finds any few
        return HostnamePeers(mine, found, len(found))

    async def provider_row_versions(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, RowVersion]:
        self._check()
        return {i: self.rows[i].version() for i in ids if i in self.rows}

    async def check_provider(
        self, desired: DesiredProvider, owner: OwnerRef
    ) -> ProviderCheck | None:
        found = await self._compare(desired, owner)
        row = self._own(owner)
        if found is None or row is None:
            return None
        diffs = tuple(Difference(f, DifferenceKind.COLUMN) for f in found)
        owned = _owned_values(row.desired, desired.coder_owned)
        return ProviderCheck(row.id, diffs, row.version(), coder_owned=owned)

    async def preview_provider(
        self, desired: DesiredProvider, owner: OwnerRef, *, adopt: bool = False
    ) -> ProviderPreview:
        """What :meth:`upsert_provider` would do, changing nothing (the same refusals)."""
        self._check()
        row, action = self._claim(desired, owner, adopt)
        if row is None:
            return ProviderPreview(
                "create",
                desired.name,
                desired.type.value,
                keys_added=tuple(mask_secret(k) for k in desired.api_keys),
                key_count=len(desired.api_keys),
            )
        before, after = _canon(row.desired), _canon(desired)
        columns = tuple(f for f in _FIELDS if getattr(before, f) != getattr(after, f))
        old = [v for _, v in row.keys]
        added = tuple(mask_secret(v) for v in desired.api_keys if v not in old)
        removed = tuple(mask_secret(v) for v in old if v not in desired.api_keys)
        kept = [v for v in old if v in desired.api_keys]
        reordered = kept != [v for v in desired.api_keys if v in old]
        if action == "update" and not (columns or added or removed or reordered):
            action = "unchanged"
        return ProviderPreview(
            action,  # type: ignore[arg-type]
            desired.name,
            desired.type.value,
            columns=columns,
            keys_added=added,
            keys_removed=removed,
            keys_reordered=reordered,
            key_count=len(desired.api_keys),
        )

    def by_name(self, name: str) -> ProviderRow:
        (row,) = [r for r in self.rows.values() if r.desired.name == name and not r.deleted]
        return row


def provider_reading(
    uid: str, namespace: str, name: str, spec: dict[str, Any], created: str = ""
) -> ProviderReading:
    """An AIProvider as the operator reads it from a watch event (for the index's users)."""
    return read_provider(ObjectIdentity(AIPROVIDER, namespace, name, uid, 1, created=created), spec)
