"""The :class:`Store`: connection pool, start-up checks, error translation, operations."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Self, TypeVar

import psycopg
from psycopg import AsyncConnection, IsolationLevel
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aigateway_operator.config import ConfigError, Settings
from aigateway_operator.store import actors, ownership
from aigateway_operator.store.cipher import DecryptError, KeyRing
from aigateway_operator.store.dbcrypt import KeyStatus, PrimaryKeyGuard, check_key_continuity
from aigateway_operator.store.errors import (
    EncryptionKeyMismatch,
    InsufficientPrivileges,
    InvalidName,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
)
from aigateway_operator.store.gateway_keys import GatewayKeyOps
from aigateway_operator.store.models import (
    Actor,
    AppliedInputs,
    DeletePolicy,
    DeleteResult,
    DesiredProvider,
    GatewayKeyInfo,
    GatewayKeyOwnership,
    GatewayKeyRelease,
    HostnamePeers,
    IssuedGatewayKey,
    OwnerPolicy,
    OwnerRecord,
    OwnerRef,
    PendingKey,
    ProviderCheck,
    ProviderPreview,
    ProviderResult,
    RowVersion,
    StoredProvider,
    VerificationRecord,
)
from aigateway_operator.store.operator_schema import ensure_operator_schema
from aigateway_operator.store.privileges import missing_privileges
from aigateway_operator.store.providers import ProviderOps
from aigateway_operator.store.schema import (
    Capabilities,
    detect_coder_version,
    verify_schema,
)
from aigateway_operator.store.versions import NEWEST_KNOWN_MIGRATION, CoderVersion

__all__ = ["Store"]

log = logging.getLogger(__name__)
_GRANTS_HINT = "grant them as in deploy/postgres/grants.sql; nothing was written."
T = TypeVar("T")
Checkpoint = Callable[[str, AsyncConnection[Any]], Awaitable[None]]


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if s:
            text = text.replace(s, "***")
    return text


def _translate(exc: psycopg.Error, what: str, redactions: tuple[str, ...]) -> StoreError:
    """Map a psycopg error to a typed, secret-free :class:`StoreError`.

    Raw server messages are never copied: their DETAIL can echo row values. Constraint names
    (coderd's own, reference §1) say enough to act on.
    """
    state = exc.sqlstate or "?"
    constraint = getattr(getattr(exc, "diag", None), "constraint_name", None) or ""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return StoreTimeout(f"{what}: timed out waiting for a lock held by coderd or a peer")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StoreTimeout(f"{what}: statement timed out")
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return StoreTimeout(f"{what}: aborted by Postgres ({state}) to resolve a conflict")
    if isinstance(exc, psycopg.errors.ForeignKeyViolation) and constraint.endswith("key_id_fkey"):
        return EncryptionKeyMismatch(
            f"{what}: the encryption key digest is not an active dbcrypt key "
            f"({constraint}); it was probably revoked concurrently; nothing was written"
        )
    if isinstance(exc, psycopg.errors.CheckViolation) and constraint.endswith("name_check"):
        return InvalidName("row", "?", f"rejected by Coder's CHECK {constraint}")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return StoreError(f"{what}: unique constraint {constraint} violated")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        # "permission denied for table x": names the object, never a row value.
        primary = getattr(getattr(exc, "diag", None), "message_primary", None) or state
        return InsufficientPrivileges(
            [f"a privilege {what} needed ({_redact(primary, redactions)[:200]})"]
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        first = _redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "", redactions)
        return StoreUnavailable(f"{what}: Coder's Postgres is unavailable: {first[:300]}")
    return StoreError(f"{what}: unexpected database error {type(exc).__name__} (SQLSTATE {state})")


async def _read_only(conn: AsyncConnection[Any], read: Awaitable[T]) -> T:
    """``read`` (statements on ``conn``), then end its transaction: reads hold no snapshot."""
    result = await read
    await conn.rollback()
    return result


async def _in_transaction(conn: AsyncConnection[Any], write: Callable[[], Awaitable[T]]) -> T:
    """``write()`` (statements on ``conn``) in one transaction of its own."""
    async with conn.transaction():
        return await write()


async def _one_more(conn: AsyncConnection[Any], within_s: float) -> bool:
    """Whether another notify arrives on ``conn`` within ``within_s`` (psycopg buffers the
    notifies that arrive while nobody iterates, so none is lost between two calls).

    The generator runs to its own end (``stop_after`` or ``timeout``): leaving it early would
    keep the connection's lock until it is garbage-collected."""
    got = False
    async for _ in conn.notifies(timeout=within_s, stop_after=1):
        got = True
    return got


class Store:
    """Async access to Coder's AI provider and AI Gateway key tables (see package docs)."""

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        ring: KeyRing,
        caps: Capabilities,
        key_status: KeyStatus,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._ring = ring
        self._redactions = settings.redactions()
        self.capabilities = caps
        """Version-dependent schema features detected at open."""
        self.key_status = key_status
        """Result of the start-up key-continuity check (digests only)."""
        self.coder_version: CoderVersion = caps.coder
        """The Coder release read from ``schema_migrations`` at start (release range and
        migration number; ``label`` for status and logs)."""
        self._fault_hook: Checkpoint | None = None
        guard = PrimaryKeyGuard(ring)
        self._providers = ProviderOps(ring, caps, guard, settings.audit_user_id, self._checkpoint)
        self._gateway = GatewayKeyOps(caps, settings.audit_user_id)

    # --- lifecycle -----------------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings) -> Store:
        """Connect, verify the schema, check key continuity, open the pool.

        In order: read Coder's release from ``schema_migrations``; verify what that release
        has; create/migrate the operator's
        own schema; check the role's privileges; check key continuity and the plaintext
        policy. Raises :class:`SchemaMismatch` (:class:`InsufficientPrivileges` for a missing
        grant), :class:`EncryptionKeyMismatch` (:class:`PlaintextRefused` without keys),
        :class:`StoreUnavailable` or :class:`StoreError` (a missing setting), with an
        actionable, secret-free message.
        """
        try:
            dsn = settings.require_database_url()
        except ConfigError as exc:
            raise StoreError(str(exc)) from None
        ring = KeyRing(settings.encryption_key_bytes())
        kwargs = cls._connect_kwargs(settings)
        redactions = settings.redactions()
        try:
            conn = await AsyncConnection.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise _translate(exc, "connect", redactions) from None
        try:
            async with conn:
                missing = await missing_privileges(conn, None)
                if missing:
                    raise InsufficientPrivileges(missing)
                coder = await detect_coder_version(conn)
                caps = await verify_schema(conn, coder)
                await ensure_operator_schema(conn)
                missing = await missing_privileges(conn, caps)
                if missing:
                    raise InsufficientPrivileges(missing)
                key_status = await check_key_continuity(
                    conn, ring, allow_plaintext=settings.allow_plaintext
                )
        except psycopg.Error as exc:
            raise _translate(exc, "schema/key check", redactions) from None
        if coder.newer_than_known:
            log.warning(
                "%s is newer than any Coder this operator knows (up to schema migration "
                "%06d, v2.36): it writes only what it knows (columns, settings fields, enum "
                "values of v2.36); check the compatibility matrix for a newer operator",
                coder.label,
                NEWEST_KNOWN_MIGRATION,
            )
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            kwargs=kwargs,
            configure=cls._configure,
            check=AsyncConnectionPool.check_connection,
            timeout=settings.pool_timeout_s,
            reconnect_timeout=max(settings.pool_timeout_s * 6, 30.0),
            name="aigw-store",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=settings.pool_timeout_s)
        except PoolTimeout:
            await pool.close()
            raise StoreUnavailable(
                "could not open the connection pool to Coder's Postgres"
            ) from None
        log.info(
            "store open: %s icon=%s heartbeat=%s audit=%s primary_key=%s",
            coder.label,
            caps.has_icon,
            caps.has_heartbeat,
            caps.has_audit,
            key_status.primary_digest or "none (plaintext)",
        )
        return cls(settings, pool, ring, caps, key_status)

    async def close(self) -> None:
        await self._pool.close()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether a pooled connection answers ``SELECT 1`` within ``timeout_s`` (readiness)."""
        try:
            async with asyncio.timeout(timeout_s), self._pool.connection(timeout=timeout_s) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout, TimeoutError):
            return False
        return True

    async def watch_changes(
        self, debounce_s: float = 0.3, reconnect_s: float = 2.0
    ) -> AsyncIterator[str]:
        """Yield once per burst of ``ai_providers_changed`` notifies, forever.

        Yields ``"notify"`` after a burst (gathered for ``debounce_s``) and ``"reconnected"``
        after the LISTEN connection was re-established (notifies may have been missed while
        it was down, so the caller should check everything). The payload is ignored, as
        every coderd subscriber ignores it. Connection problems are retried, never raised.
        """
        dsn = self._settings.require_database_url()
        kwargs = {**self._connect_kwargs(self._settings), "autocommit": True}
        first = True
        while True:
            try:
                conn = await AsyncConnection.connect(dsn, **kwargs)
            except psycopg.Error as exc:
                log.warning(
                    "LISTEN connection failed: %s", _translate(exc, "listen", self._redactions)
                )
                await asyncio.sleep(reconnect_s)
                continue
            try:
                async with conn:
                    await conn.execute("LISTEN ai_providers_changed")
                    if not first:
                        yield "reconnected"
                    first = False
                    while True:
                        # The first notify of a burst, however long it takes ...
                        async for _ in conn.notifies(stop_after=1):
                            pass
                        # ... then the rest, until none came for debounce_s; reported once.
                        # (Each wait is a generator of its own that ends by itself: cancelling
                        # a running notifies() generator, as a wait_for timeout does, closes
                        # it for good, and the next burst would never be seen.)
                        while await _one_more(conn, debounce_s):
                            pass
                        yield "notify"
            except psycopg.Error as exc:
                log.warning(
                    "LISTEN connection lost: %s", _translate(exc, "listen", self._redactions)
                )
                await asyncio.sleep(reconnect_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    def _connect_kwargs(settings: Settings) -> dict[str, Any]:
        options = (
            f"-c statement_timeout={settings.statement_timeout_ms} "
            f"-c lock_timeout={settings.lock_timeout_ms} "
            f"-c idle_in_transaction_session_timeout={settings.idle_in_transaction_timeout_ms}"
        )
        return {
            "application_name": settings.application_name,
            "connect_timeout": settings.connect_timeout_s,
            "options": options,
            "autocommit": False,
        }

    @staticmethod
    async def _configure(conn: AsyncConnection[Any]) -> None:
        # No round trip: psycopg sends the level with each BEGIN. coderd's handlers use
        # READ COMMITTED too; our correctness rests on lock 10 and row locks, not isolation.
        await conn.set_isolation_level(IsolationLevel.READ_COMMITTED)

    async def _checkpoint(self, point: str, conn: AsyncConnection[Any]) -> None:
        """Fault-injection seam for tests (a crash between any two statements)."""
        if self._fault_hook is not None:
            await self._fault_hook(point, conn)

    async def _run(self, what: str, fn: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        try:
            async with self._pool.connection() as conn:
                return await fn(conn)
        except StoreError:
            raise
        except DecryptError as exc:
            raise EncryptionKeyMismatch(f"{what}: {exc}") from None
        except PoolTimeout:
            raise StoreUnavailable(
                f"{what}: no database connection became available within "
                f"{self._settings.pool_timeout_s:g}s"
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise await self._privilege_error(what, exc) from None
        except psycopg.Error as exc:
            raise _translate(exc, what, self._redactions) from None

    async def _privilege_error(
        self, what: str, exc: psycopg.errors.InsufficientPrivilege
    ) -> StoreError:
        """Name exactly which grant is missing: ask Postgres which of the privileges the
        store's statements need (``privileges.required_grants``) the role lacks now."""
        generic = _translate(exc, what, self._redactions)
        try:
            async with self._pool.connection() as conn:
                missing = await missing_privileges(conn, self.capabilities)
        except (psycopg.Error, PoolTimeout):
            return generic
        if not missing:
            return generic
        return InsufficientPrivileges(missing, hint=f"{what} failed; {_GRANTS_HINT}")

    # --- checks ----------------------------------------------------------------------------------

    async def check_schema(self) -> Capabilities:
        """Re-run the schema verification (e.g. for a readiness probe)."""
        return await self._run("check schema", verify_schema)

    @property
    def primary_key_digest(self) -> str | None:
        """Digest new values are encrypted with (None: plaintext mode)."""
        return self._ring.primary_digest

    # --- providers -------------------------------------------------------------------------------

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
        """Make the provider recorded for ``owner`` match ``desired`` (see ``providers``).

        ``adopt``: take over a live provider of the same name and type that no object of any
        operator install owns (made in Coder's UI). ``policy`` is recorded with the row: what
        :meth:`collect` does with it once the object is gone. ``revive=False``: raise
        :class:`RevivalUnconfirmed` instead of bringing a soft-deleted row back.
        ``applied``: what this write applies (the object's generation, spec and Secret
        versions), recorded with the ownership record in the same transaction
        (:meth:`applied_inputs` reads it back); not recorded for a row left alone.
        """
        return await self._run(
            f"upsert AI provider {desired.name!r}",
            lambda conn: self._providers.upsert(
                conn, desired, owner, adopt, policy, revive, applied
            ),
        )

    async def provider_verification(self, owner: OwnerRef) -> VerificationRecord | None:
        """The operator's record of its last STS verification of ``owner``'s provider."""
        return await self._run(
            "read the STS verification record",
            lambda conn: _read_only(conn, ownership.verification(conn, owner)),
        )

    async def record_provider_verification(
        self, owner: OwnerRef, record: VerificationRecord
    ) -> bool:
        """Record an STS verification with ``owner``'s provider row (False: no row)."""
        return await self._run(
            "record the STS verification",
            lambda conn: _in_transaction(
                conn, lambda: ownership.record_verification(conn, owner, record)
            ),
        )

    async def applied_inputs(self, owner: OwnerRef) -> AppliedInputs | None:
        """What the operator's last write to ``owner``'s provider row applied (None: no
        record yet). The operator's own word on "already applied": never the object's status."""
        return await self._run(
            "read the applied generation",
            lambda conn: _read_only(conn, ownership.applied(conn, owner)),
        )

    async def delete_provider(
        self, owner: OwnerRef, policy: DeletePolicy = DeletePolicy.SOFT_DELETE
    ) -> DeleteResult:
        """Soft-delete (default) or release the provider owned by ``owner``. Idempotent."""
        return await self._run(
            "delete AI provider", lambda conn: self._providers.delete(conn, owner, policy)
        )

    async def check_provider(
        self, desired: DesiredProvider, owner: OwnerRef
    ) -> ProviderCheck | None:
        """Typed drift check of our row against ``desired`` (None: no row); read-only.

        Compares what readers see, key rows included (count, order, decrypted value); reports
        settings coderd cannot decode and key rows that do not decrypt, and rows this
        operator does not understand (``left_alone``), without ever raising for them.
        """
        return await self._run(
            "compare AI provider", lambda conn: self._providers.check(conn, desired, owner)
        )

    async def preview_provider(
        self, desired: DesiredProvider, owner: OwnerRef, *, adopt: bool = False
    ) -> ProviderPreview:
        """What :meth:`upsert_provider` would do now; read-only (no lock 10, no row locks).

        Raises what the upsert would raise for the name (:class:`NameTaken` naming the
        holder, :class:`NameConflict` for a row made in Coder, :class:`TypeMismatch`) and for
        the desired state (:class:`InvalidProvider`, :class:`NotSupportedByCoder`). Key
        values appear only masked. For admission: the plan shown before an apply.
        """
        return await self._run(
            f"preview AI provider {desired.name!r}",
            lambda conn: self._providers.preview(conn, desired, owner, adopt),
        )

    async def gateway_key_name_holder(self, owner: OwnerRef, name: str) -> str | None:
        """Who holds the live gateway key row named ``name`` when it is not ``owner``'s
        (``AIGatewayCoderdKey ns/name``, ``operator instance 'x'``, or a key made in Coder);
        None when the name is free or ``owner``'s own. Read-only."""
        return await self._run(
            f"read AI Gateway key name {name!r}",
            lambda conn: self._gateway.name_holder(conn, owner, name),
        )

    async def provider_row_versions(
        self, row_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, RowVersion]:
        """:class:`RowVersion` per provider row (missing rows left out): cheap drift detection
        that also sees key rows added, deleted or rewritten. Compare with the ``version`` of
        the last :class:`ProviderResult`."""
        return await self._run(
            "read AI provider versions", lambda conn: self._providers.row_versions(conn, row_ids)
        )

    async def hostname_peers(self, provider_id: uuid.UUID) -> HostnamePeers | None:
        """Other live, enabled providers with this provider's base-URL hostname (coderd's
        duplicate-hostname warning: its AI Bridge proxy serves only the first in name order)."""
        return await self._run(
            "read AI provider hostnames",
            lambda conn: self._providers.hostname_peers(conn, provider_id),
        )

    async def get_provider(self, owner: OwnerRef) -> StoredProvider | None:
        """The provider recorded for ``owner`` (including a soft-deleted one), decrypted."""
        return await self._run("read AI provider", lambda conn: self._providers.get(conn, owner))

    # --- ownership -------------------------------------------------------------------------------

    async def owner_records(self, instance: str) -> list[OwnerRecord]:
        """Every ownership record of operator install ``instance`` (the garbage collector
        compares them with the objects that exist)."""
        return await self._run(
            "read ownership records", lambda conn: ownership.records(conn, instance)
        )

    async def collect_provider(self, owner: OwnerRef) -> DeleteResult:
        """The object that owned this provider is gone (deleted without our finalizer, or
        while no operator ran): apply the deletion policy recorded with the row.

        With ``owner.uid`` set (the deleted object's uid), a record last written for another
        object of the same identity (re-created since) is that object's and stays."""

        async def run(conn: AsyncConnection[Any]) -> DeleteResult:
            recorded = await ownership.recorded_policy(conn, owner)
            if recorded is None:  # nothing recorded (deleted already): no lock, no write
                return DeleteResult(None, "absent", notified=False)
            policy, object_uid = recorded
            if owner.uid and object_uid and object_uid != owner.uid:
                return DeleteResult(None, "absent", notified=False)
            if policy is DeletePolicy.RELEASE:  # Orphan: the row and its record stay
                return DeleteResult(None, "absent", notified=False)
            return await self._providers.delete(conn, owner, policy)

        return await self._run("collect AI provider", run)

    # --- who in Kubernetes made a change (admission records) -------------------------------------

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
        """Record ``actor`` (user name and groups only) as the requester whose admitted
        request made ``generation`` of object ``object_uid`` with a spec of ``spec_digest``;
        older records of that object are pruned (see ``actors``). One short transaction."""
        await self._run(
            f"record the requester of {kind} {namespace}/{name}",
            lambda conn: actors.record(
                conn,
                object_uid=object_uid,
                generation=generation,
                spec_digest=spec_digest,
                kind=kind,
                namespace=namespace,
                name=name,
                actor=actor,
            ),
        )

    async def admission_actor(self, object_uid: str, generation: int, spec_digest: str) -> Actor:
        """Who made ``generation`` of ``object_uid`` with that spec (``source='admission'``),
        or ``Actor.unknown`` saying why not (no record; records of another spec). Read-only."""
        return await self._run(
            "read the requester of a change",
            lambda conn: actors.lookup(conn, object_uid, generation, spec_digest),
        )

    # --- gateway keys ----------------------------------------------------------------------------
    # Every row written is recorded in ``aigateway_operator.owners`` under the owner's identity
    # (OwnerRef.key); every change acts only on rows recorded for it (see ``gateway_keys``).

    async def gateway_key_state(self, owner: OwnerRef) -> GatewayKeyOwnership:
        """What the records hold for ``owner`` (current, previous, pending), joined with
        Coder's rows; a recorded row deleted in Coder shows as recorded-but-missing."""
        return await self._run(
            "read AI Gateway key ownership", lambda conn: self._gateway.state(conn, owner)
        )

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
        """Journal a key about to be delivered: record it as ``owner``'s pending key (sha256
        and prefix only), replacing an older pending one. Writes nothing in Coder's tables.
        ``rotation_generation``: the ``spec.rotation.generation`` it is issued for, kept with
        its record once it is current (``GatewayKeyOwnership.current_rotation_generation``).

        Refuses (:class:`NameTaken`, naming the holder) when ``name`` is held by a row not
        recorded for ``owner``; replaying the same call returns the same record.
        """
        return await self._run(
            f"journal AI Gateway key {name!r}",
            lambda conn: self._gateway.begin(
                conn,
                owner,
                key_id,
                name,
                secret,
                rotating=rotating,
                deletion_policy=deletion_policy,
                rotation_generation=rotation_generation,
            ),
        )

    async def complete_gateway_key(
        self, owner: OwnerRef, key_id: uuid.UUID, name: str, secret: str
    ) -> IssuedGatewayKey:
        """Insert ``owner``'s pending key ``key_id`` under ``name``, only if ``secret`` hashes to
        the journaled hash (else :class:`GatewayKeyConflict`).

        A rotating pending key keeps the current row as the previous one (renamed
        ``retiring_name(name, n)``; an older previous is deleted first); otherwise the
        current row is deleted. Replayable: the same call after its commit returns the row
        with ``created=False``. A name held by a row not recorded for ``owner`` raises
        :class:`NameTaken` naming the holder.
        """
        return await self._run(
            f"create AI Gateway key {name!r}",
            lambda conn: self._gateway.complete(conn, owner, key_id, name, secret),
        )

    async def discard_pending(self, owner: OwnerRef) -> bool:
        """Forget ``owner``'s pending key (its plaintext never reached the Secret)."""
        return await self._run(
            "discard pending AI Gateway key",
            lambda conn: self._gateway.discard_pending(conn, owner),
        )

    async def retire_previous(
        self, owner: OwnerRef, unless_used_within: timedelta | None = None
    ) -> GatewayKeyInfo | None:
        """Delete ``owner``'s previous key (row and record); the deleted row, or None.

        With ``unless_used_within``, a previous key whose ``last_heartbeat_at`` is that recent
        (the database's clock, checked under the row's lock) is kept: None.
        """
        return await self._run(
            "retire AI Gateway key",
            lambda conn: self._gateway.retire_previous(conn, owner, unless_used_within),
        )

    async def gateway_key_matches(self, owner: OwnerRef, secret: str) -> bool:
        """Whether ``secret`` hashes to ``owner``'s current row."""
        return await self._run(
            "compare AI Gateway key", lambda conn: self._gateway.matches(conn, owner, secret)
        )

    async def release_gateway_keys(
        self, owner: OwnerRef, policy: OwnerPolicy = "Delete"
    ) -> GatewayKeyRelease:
        """The owner is gone: ``Delete`` deletes every recorded row and record; ``Orphan``
        forgets the records and leaves the rows in Coder. Idempotent."""
        return await self._run(
            "release AI Gateway keys", lambda conn: self._gateway.release(conn, owner, policy)
        )

    async def collect_gateway_keys(self, owner: OwnerRef) -> GatewayKeyRelease:
        """The AIGatewayCoderdKey is gone (deleted without our finalizer, or while no operator
        ran): apply the deletion policy recorded with its rows (see ``collect``)."""
        return await self._run(
            "collect AI Gateway keys", lambda conn: self._gateway.collect(conn, owner)
        )

    async def record_deletion_policy(self, owner: OwnerRef, policy: OwnerPolicy) -> int:
        """Keep the policy recorded with ``owner``'s records equal to its spec (the garbage
        collector applies it when the object is gone); the number of records changed."""
        return await self._run(
            "record AI Gateway key deletion policy",
            lambda conn: self._gateway.record_deletion_policy(conn, owner, policy),
        )
