"""One AIGatewayCoderdKey, one pass: Secret <-> ai_gateway_keys row -> rotation -> status.

No kopf here: the handler passes plain values in and turns the :class:`KeyOutcome` into a
status patch, Events and (for transient failures) a retry. Every trigger (create, edit,
Secret change, timer, restart) runs the same level-triggered pass.

**Crash safety.** The plaintext exists only in memory and in the Secret, and the Secret is
always written *before* the row, carrying the new key's id in an annotation (never the
secret) plus, during a rotation, the id of the key it replaces. So the Secret is a journal of
intent: a Secret whose key id differs from ``status.keyID`` is a pass that did not finish,
and the next pass completes it with the store's replayable ``create_gateway_key(..., secret=)``.
A crash can therefore leave a Secret without a row (completed later), never a row whose
plaintext nobody has. A row that exists without a matching Secret (Secret deleted, or its
value no longer hashing to the row) is replaced by a freshly issued key.

**Rotation without downtime.** Gateways authenticate by hash, and the name index is unique:
the old row is renamed (``<name>-retiring-<n>``), the new key is inserted under the plain
name, and the old row is deleted once a gateway has used the new key or ``gracePeriod`` has
passed. ``status.rotation`` records the previous key id, so a restart finishes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aigateway_operator.api.aiprovider import (
    API_GROUP,
    API_VERSION,
    DeletionPolicy,
    InvalidSpecError,
    InvalidStatusError,
)
from aigateway_operator.api.common import ConditionType, Reason
from aigateway_operator.api.gatewaykey import (
    KIND,
    SECRET_DATA_KEY,
    GatewayKeySpec,
    GatewayKeyStatus,
    RotationStatus,
)
from aigateway_operator.kube import KubeError, SecretData
from aigateway_operator.reconcile.provider import Event
from aigateway_operator.reconcile.runtime import Runtime
from aigateway_operator.status.conditions import ConditionState, next_status
from aigateway_operator.store import (
    GatewayKeyConflict,
    GatewayKeyInfo,
    InvalidName,
    NameTaken,
    OwnerRef,
    StoreError,
    StoreUnavailable,
    generate_gateway_secret,
    retiring_name,
)

__all__ = [
    "FORCE_DELETE_ANNOTATION",
    "IN_USE_WINDOW",
    "KEY_ID_ANNOTATION",
    "OWNER_LABEL",
    "PREVIOUS_KEY_ANNOTATION",
    "KeyObject",
    "KeyOutcome",
    "KeySecrets",
    "finalize",
    "owner_label_value",
    "reconcile",
]

#: A key is "in use" while its last heartbeat is this recent (coderd beats every 60 s).
IN_USE_WINDOW = timedelta(minutes=3)
KEY_ID_ANNOTATION = "aigateway.dev/key-id"
PREVIOUS_KEY_ANNOTATION = "aigateway.dev/previous-key-id"
ROTATION_ANNOTATION = "aigateway.dev/rotation-generation"
FORCE_DELETE_ANNOTATION = "aigateway.dev/force-delete"
#: On every Secret we own: the Secret watch filters on it (value: the owner's name).
OWNER_LABEL = "aigateway.dev/gateway-key"
MANAGED_BY = {"app.kubernetes.io/managed-by": "aigateway-operator"}

RETRY_DATABASE = 10.0
RETRY_KUBE = 5.0
RETIRING_ATTEMPTS = 5
PREFIX_LENGTH = 11
_SECRET_RE = re.compile(r"cgw_[0-9A-Za-z]{39}")
_READY_DEPENDENCIES = (ConditionType.ISSUED, ConditionType.SECRET_IN_SYNC)
_ORDER = (ConditionType.ISSUED, ConditionType.SECRET_IN_SYNC, ConditionType.IN_USE)
_READY_MESSAGE = "The key is issued in Coder and delivered to its Secret"


class KeySecrets(Protocol):
    """What this pipeline needs from the Kubernetes client (``kube.Kube`` implements it)."""

    async def read_secret(self, namespace: str, name: str) -> SecretData | None: ...

    async def write_owned_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        owner: dict[str, str],
        labels: dict[str, str],
        resource_version: str | None,
        annotations: dict[str, str] | None = None,
    ) -> SecretData: ...

    async def delete_secret(self, namespace: str, name: str, uid: str) -> bool: ...

    async def disown_secret(self, namespace: str, name: str, uid: str) -> bool: ...


@dataclass(frozen=True)
class KeyObject:
    """The Kubernetes object being reconciled, as plain values."""

    namespace: str
    name: str
    uid: str
    generation: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def owner(self) -> OwnerRef:
        return OwnerRef(
            uid=self.uid,
            kind=KIND,
            namespace=self.namespace,
            name=self.name,
            generation=self.generation,
        )

    def owner_reference(self) -> dict[str, str]:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
        }


@dataclass
class KeyOutcome:
    """What the handler should do: patch status, post events, maybe retry later."""

    status_patch: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    retry_message: str = ""
    done: bool = True
    """For deletion: whether the finalizer may be released."""
    secrets_written: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, name, resourceVersion) of Secrets this pass wrote: not news to the watch."""
    conditions: tuple[tuple[str, str], ...] = ()
    """Final ``(type, status)`` pairs, for metrics."""


def owner_label_value(name: str) -> str:
    """The owner's name as a label value (at most 63 characters; long names are hashed)."""
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:52].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class _Held:
    """What the Secret holds (all of it optional: it may be missing or edited by hand)."""

    key_id: uuid.UUID | None
    secret: str = field(repr=False)
    previous_id: uuid.UUID | None
    rotation_generation: int | None

    @property
    def usable(self) -> bool:
        return self.key_id is not None and bool(_SECRET_RE.fullmatch(self.secret))


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _held(sec: SecretData | None) -> _Held:
    if sec is None:
        return _Held(None, "", None, None)
    raw = sec.data.get(SECRET_DATA_KEY, b"")
    try:
        secret = raw.decode().strip()  # the gateway trims the file too
    except UnicodeDecodeError:
        secret = ""
    generation: int | None = None
    with contextlib.suppress(ValueError):
        generation = int(sec.annotations.get(ROTATION_ANNOTATION, ""))
    return _Held(
        key_id=_uuid(sec.annotations.get(KEY_ID_ANNOTATION)),
        secret=secret,
        previous_id=_uuid(sec.annotations.get(PREVIOUS_KEY_ANNOTATION)),
        rotation_generation=generation,
    )


def _seconds(when: datetime | None) -> datetime | None:
    return when.astimezone(UTC).replace(microsecond=0) if when is not None else None


@dataclass
class _State:
    """The key as this pass leaves it (starts from status, updated step by step)."""

    key_id: uuid.UUID | None
    prefix: str | None
    created_at: datetime | None
    generation: int | None
    previous_id: uuid.UUID | None
    previous_prefix: str | None
    retire_after: datetime | None
    last_rotated_at: datetime | None
    info: GatewayKeyInfo | None = None

    @classmethod
    def from_status(cls, status: GatewayKeyStatus) -> _State:
        rot = status.rotation or RotationStatus()
        return cls(
            key_id=_uuid(status.key_id),
            prefix=status.key_prefix,
            created_at=status.created_at,
            generation=rot.generation,
            previous_id=_uuid(rot.previous_key_id),
            previous_prefix=rot.previous_key_prefix,
            retire_after=rot.retire_after,
            last_rotated_at=rot.last_rotated_at,
        )

    def clear_previous(self) -> None:
        self.previous_id = self.previous_prefix = self.retire_after = None


@dataclass
class _Pass:
    """Mutable scratch state of one pass."""

    rt: Runtime
    kube: KeySecrets
    obj: KeyObject
    current: GatewayKeyStatus
    conditions: list[ConditionState] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    retry_message: str = ""
    written: list[tuple[str, str, str]] = field(default_factory=list)

    def retry(self, delay: float, message: str) -> None:
        if self.retry_after is None or delay < self.retry_after:
            self.retry_after = delay
            self.retry_message = message

    def warn(self, reason: str, message: str) -> None:
        self.events.append(Event("Warning", reason, message[:1000]))

    def note(self, reason: str, message: str) -> None:
        self.events.append(Event("Normal", reason, message[:1000]))

    def condition_changed(self, type_: str, reason: str) -> bool:
        prev = self.current.condition(type_)
        return prev is None or prev.reason != reason


class _Stop(Exception):
    """End the pass early; the conditions explaining why are already recorded."""


def _parse_status(body: Mapping[str, Any] | None) -> GatewayKeyStatus:
    try:
        return GatewayKeyStatus.from_body(body)
    except InvalidStatusError:
        return GatewayKeyStatus()


# --- the pass -------------------------------------------------------------------------------


async def reconcile(
    rt: Runtime,
    kube: KeySecrets,
    obj: KeyObject,
    spec_body: Mapping[str, Any] | None,
    status_body: Mapping[str, Any] | None,
) -> KeyOutcome:
    """Make sure the key exists in Coder, its Secret holds it, and rotation is on schedule."""
    current = _parse_status(status_body)
    p = _Pass(rt, kube, obj, current)
    try:
        spec = GatewayKeySpec.from_body(spec_body)
        name = spec.effective_key_name(obj.name)
        secret_name = spec.effective_secret_name(obj.name)
    except InvalidSpecError as exc:
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.INVALID_SPEC, str(exc)[:1000])
        )
        return _finish(p, current)
    if current.key_name and current.key_name != name:
        message = (
            f"spec.keyName is immutable: this object's key is named {current.key_name!r} in "
            "Coder; create a new AIGatewayCoderdKey for another name"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.INVALID_SPEC, message)
        )
        return _finish(p, current)

    state = _State.from_status(current)
    try:
        await _converge(p, spec, name, secret_name, state)
    except _Stop:
        return _finish(p, current)
    except StoreUnavailable as exc:
        message = f"Coder's database is unavailable: {exc}"[:1000]
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.DATABASE_UNAVAILABLE, message)
        )
        p.retry(RETRY_DATABASE, message)
        return _finish(p, current)
    except StoreError as exc:
        message = str(exc)[:1000]
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.RECONCILE_ERROR, message)
        )
        p.retry(RETRY_DATABASE, message)
        return _finish(p, current)
    except KubeError as exc:
        message = str(exc)[:1000]
        p.conditions.append(
            ConditionState.false(ConditionType.SECRET_IN_SYNC, Reason.SECRET_WRITE_FAILED, message)
        )
        p.retry(1.0 if exc.status == 409 else RETRY_KUBE, message)
        return _finish(p, current)
    return _finish(p, _status(p, name, secret_name, state))


async def _converge(
    p: _Pass, spec: GatewayKeySpec, name: str, secret_name: str, state: _State
) -> None:
    rt, obj = p.rt, p.obj
    sec = await p.kube.read_secret(obj.namespace, secret_name)
    if sec is not None and obj.uid not in sec.owner_uids:
        message = (
            f"Secret {secret_name!r} exists and is not owned by this {KIND}; refusing to "
            "overwrite it. Delete that Secret or set another spec.secretName"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.SECRET_IN_SYNC, Reason.SECRET_NOT_OWNED, message)
        )
        if state.key_id is None:
            p.conditions.append(
                ConditionState.false(
                    ConditionType.ISSUED, Reason.SECRET_NOT_OWNED, "No key issued: " + message
                )
            )
        if p.condition_changed(ConditionType.SECRET_IN_SYNC, Reason.SECRET_NOT_OWNED):
            p.warn(Reason.SECRET_NOT_OWNED, message)
        raise _Stop

    held = _held(sec)
    moved = p.current.secret_name not in (None, secret_name)
    fresh = False
    if held.usable and held.key_id != state.key_id:
        # A pass that wrote the Secret but did not finish (crash, outage): complete it.
        try:
            await _complete(p, name, held, state, rotation_generation=spec.rotation.generation)
        except GatewayKeyConflict:
            await _issue(
                p, spec, name, secret_name, sec, state, Reason.SECRET_TAMPERED,
                f"Secret {secret_name!r} holds a key that does not match Coder's row",
            )  # fmt: skip
        fresh = True
    elif held.key_id is not None and held.usable:
        info = await rt.store.get_gateway_key(held.key_id)
        if info is None:
            await _issue(
                p, spec, name, secret_name, sec, state, Reason.KEY_REVOKED,
                "the key was deleted from Coder outside the operator",
            )  # fmt: skip
            fresh = True
        elif not await _matches(p, info, held):
            await _issue(
                p, spec, name, secret_name, sec, state, Reason.SECRET_TAMPERED,
                f"Secret {secret_name!r} was modified and no longer holds the issued key",
            )  # fmt: skip
            fresh = True
        else:
            state.info = info
    else:
        if sec is None and state.key_id is None:
            reason, why = Reason.ISSUED, ""
        elif sec is None and moved:
            reason, why = Reason.ISSUED, f"spec.secretName changed to {secret_name!r}"
        elif sec is None:
            reason, why = Reason.SECRET_LOST, f"Secret {secret_name!r} was deleted"
        else:
            reason = Reason.SECRET_TAMPERED
            why = f"Secret {secret_name!r} was modified and no longer holds a valid key"
        await _issue(p, spec, name, secret_name, sec, state, reason, why)
        fresh = True

    if moved and p.current.secret_name:
        await _remove_old_secret(p, p.current.secret_name)
    if not fresh:
        await _rotate_if_due(p, spec, name, secret_name, state)
    await _retire_previous(p, spec, state)
    _report(p, name, secret_name, state)


async def _matches(p: _Pass, info: GatewayKeyInfo, held: _Held) -> bool:
    """Whether the Secret's value is the row's secret (prefix, then the hash by replay)."""
    if info.secret_prefix != held.secret[:PREFIX_LENGTH]:
        return False
    try:
        # With the same id, name and secret this is a read: the store compares the hash.
        await p.rt.store.create_gateway_key(info.id, info.name, p.obj.owner(), secret=held.secret)
    except GatewayKeyConflict:
        return False
    return True


async def _issue(
    p: _Pass,
    spec: GatewayKeySpec,
    name: str,
    secret_name: str,
    sec: SecretData | None,
    state: _State,
    reason: str,
    why: str,
    *,
    replaces: uuid.UUID | None = None,
) -> None:
    """Draw a new key, write it to the Secret first, then to Coder.

    ``replaces`` (rotation) is renamed and kept until retirement; every other key this object
    held is deleted once the Secret points at the new one.
    """
    held_id = _held(sec).key_id
    taken = await p.rt.store.get_gateway_key_by_name(name)
    known = {state.key_id, state.previous_id, held_id, replaces} - {None}
    if taken is not None and taken.id not in known:
        message = (
            f"spec.keyName {name!r}: Coder already has an AI Gateway key of that name that "
            f"this {KIND} did not create; nothing was changed. Delete it in Coder or choose "
            "another spec.keyName"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.NAME_CONFLICT, message)
        )
        if p.condition_changed(ConditionType.ISSUED, Reason.NAME_CONFLICT):
            p.warn(Reason.NAME_CONFLICT, message)
        raise _Stop

    key_id = uuid.uuid4()
    secret = generate_gateway_secret()
    annotations = {
        KEY_ID_ANNOTATION: str(key_id),
        ROTATION_ANNOTATION: str(spec.rotation.generation),
    }
    if replaces is not None:
        annotations[PREVIOUS_KEY_ANNOTATION] = str(replaces)
    obj = p.obj
    written = await p.kube.write_owned_secret(
        obj.namespace,
        secret_name,
        {SECRET_DATA_KEY: secret.encode()},
        obj.owner_reference(),
        {OWNER_LABEL: owner_label_value(obj.name), **MANAGED_BY},
        sec.resource_version if sec is not None else None,
        annotations,
    )
    p.written.append((obj.namespace, secret_name, written.resource_version))
    held = _Held(key_id, secret, replaces, spec.rotation.generation)
    old_prefix = state.prefix
    await _complete(p, name, held, state, rotation_generation=spec.rotation.generation)
    new_prefix = secret[:PREFIX_LENGTH]
    if replaces is not None:
        return  # the caller reports the rotation
    if reason == Reason.ISSUED:
        text = f"Issued Coder AI Gateway key {name!r} (prefix {new_prefix}) into Secret"
        p.note(Reason.ISSUED, f"{text} {secret_name!r}" + (f" ({why})" if why else ""))
    else:
        p.warn(
            reason,
            f"{why}; issued a new key (prefix {new_prefix}) into Secret {secret_name!r}"
            + (f" and deleted the old key (prefix {old_prefix}) from Coder" if old_prefix else ""),
        )


async def _complete(
    p: _Pass, name: str, held: _Held, state: _State, *, rotation_generation: int
) -> None:
    """Bring Coder's rows in line with what the Secret holds (idempotent, replayable)."""
    store, owner = p.rt.store, p.obj.owner()
    key_id = held.key_id
    assert key_id is not None  # noqa: S101 - callers pass usable secrets only
    keep = {key_id, held.previous_id} - {None}
    for stale in (state.key_id, state.previous_id):
        if stale is not None and stale not in keep:
            await store.delete_gateway_key(stale, owner)
    previous: GatewayKeyInfo | None = None
    if held.previous_id is not None:
        previous = await store.get_gateway_key(held.previous_id)
        if previous is not None and previous.name.lower() == name.lower():
            previous = await _rename_retiring(p, previous, name)
    try:
        issued = await store.create_gateway_key(key_id, name, owner, secret=held.secret)
    except NameTaken:
        message = (
            f"spec.keyName {name!r}: Coder already has an AI Gateway key of that name that "
            f"this {KIND} did not create; nothing was overwritten"
        )
        p.conditions.append(
            ConditionState.false(ConditionType.ISSUED, Reason.NAME_CONFLICT, message)
        )
        if p.condition_changed(ConditionType.ISSUED, Reason.NAME_CONFLICT):
            p.warn(Reason.NAME_CONFLICT, message)
        raise _Stop from None
    now = p.rt.clock()
    is_rotation = previous is not None and state.previous_id != previous.id
    state.key_id = key_id
    state.prefix = issued.secret_prefix
    state.created_at = issued.created_at
    state.generation = (
        held.rotation_generation if held.rotation_generation is not None else rotation_generation
    )
    state.info = await store.get_gateway_key(key_id)
    if previous is None:
        state.clear_previous()
    elif is_rotation:
        state.previous_id = previous.id
        state.previous_prefix = previous.secret_prefix
        state.retire_after = None  # set by _retire_previous from the spec's grace period
        state.last_rotated_at = now


async def _rename_retiring(p: _Pass, previous: GatewayKeyInfo, name: str) -> GatewayKeyInfo:
    """Free the plain name for the new key; the old one keeps authenticating by hash."""
    for n in range(1, RETIRING_ATTEMPTS + 1):
        try:
            return await p.rt.store.rename_gateway_key(
                previous.id, retiring_name(name, n), p.obj.owner()
            )
        except NameTaken:
            continue
    raise InvalidName("AI Gateway key", name, "no free retiring name for the previous key")


async def _rotate_if_due(
    p: _Pass, spec: GatewayKeySpec, name: str, secret_name: str, state: _State
) -> None:
    now = p.rt.clock()
    if state.generation is None:
        state.generation = spec.rotation.generation
    interval = spec.rotation.interval
    by_generation = spec.rotation.generation != state.generation
    by_schedule = (
        interval is not None and state.created_at is not None and now >= state.created_at + interval
    )
    if not (by_generation or by_schedule) or state.key_id is None:
        return
    if state.previous_id is not None:
        # Two rotations in a row: the key before last has had its chance.
        await p.rt.store.delete_gateway_key(state.previous_id, p.obj.owner())
        p.note(
            Reason.KEY_RETIRED,
            f"Deleted the key before last (prefix {state.previous_prefix}) early: "
            "a new rotation started",
        )
        state.clear_previous()
    sec = await p.kube.read_secret(p.obj.namespace, secret_name)
    old_prefix = state.prefix
    await _issue(p, spec, name, secret_name, sec, state, Reason.ROTATED, "", replaces=state.key_id)
    why = "spec.rotation.generation was bumped" if by_generation else "spec.rotation.every elapsed"
    p.note(
        Reason.ROTATED,
        f"Rotated Coder AI Gateway key {name!r} ({why}): new prefix {state.prefix}; the "
        f"previous key (prefix {old_prefix}) keeps working until a gateway uses the new one "
        f"or spec.rotation.gracePeriod ({spec.rotation.grace_period}) passes",
    )


def _set_retire_after(p: _Pass, spec: GatewayKeySpec, state: _State) -> None:
    if state.previous_id is not None and state.retire_after is None:
        state.retire_after = _seconds(p.rt.clock() + spec.rotation.grace)


async def _retire_previous(p: _Pass, spec: GatewayKeySpec, state: _State) -> None:
    """Delete the previous key once a gateway used the new one or the grace period ended."""
    if state.previous_id is None:
        return
    _set_retire_after(p, spec, state)
    previous = await p.rt.store.get_gateway_key(state.previous_id)
    if previous is None:
        state.clear_previous()
        return
    info = state.info
    heartbeat = info.last_heartbeat_at if info is not None else None
    seen = heartbeat is not None and state.created_at is not None and heartbeat >= state.created_at
    expired = state.retire_after is not None and p.rt.clock() >= state.retire_after
    if not (seen or expired):
        return
    await p.rt.store.delete_gateway_key(previous.id, p.obj.owner())
    why = "a gateway used the new key" if seen else "spec.rotation.gracePeriod passed"
    p.note(
        Reason.KEY_RETIRED,
        f"Deleted the previous key (prefix {previous.secret_prefix}) from Coder: {why}",
    )
    state.clear_previous()


async def _remove_old_secret(p: _Pass, old_name: str) -> None:
    old = await p.kube.read_secret(p.obj.namespace, old_name)
    if old is not None and p.obj.uid in old.owner_uids:
        await p.kube.delete_secret(p.obj.namespace, old_name, old.uid)
        p.note("SecretMoved", f"Deleted Secret {old_name!r}: spec.secretName changed")


def _report(p: _Pass, name: str, secret_name: str, state: _State) -> None:
    """Issued, SecretInSync and InUse for a key that is in place."""
    if state.previous_id is not None:
        when = state.retire_after.isoformat() if state.retire_after else "soon"
        p.conditions.append(
            ConditionState.true(
                ConditionType.ISSUED,
                Reason.ROTATING,
                f"Key {name!r} (prefix {state.prefix}) is issued; the previous key (prefix "
                f"{state.previous_prefix}) is deleted once a gateway uses the new one, at the "
                f"latest at {when}",
            )
        )
    else:
        p.conditions.append(
            ConditionState.true(
                ConditionType.ISSUED,
                Reason.ISSUED,
                f"Key {name!r} (prefix {state.prefix}) is issued in Coder",
            )
        )
    p.conditions.append(
        ConditionState.true(
            ConditionType.SECRET_IN_SYNC,
            Reason.IN_SYNC,
            f"Secret {secret_name!r} holds the current key under data key {SECRET_DATA_KEY!r}",
        )
    )
    heartbeat = state.info.last_heartbeat_at if state.info is not None else None
    p.conditions.append(_in_use(heartbeat, p.rt.clock()))


def _in_use(heartbeat: datetime | None, now: datetime) -> ConditionState:
    if heartbeat is None:
        return ConditionState.false(
            ConditionType.IN_USE, Reason.NEVER_CONNECTED, "No gateway has used this key yet"
        )
    if now - heartbeat <= IN_USE_WINDOW:
        return ConditionState.true(
            ConditionType.IN_USE,
            Reason.HEARTBEAT_RECENT,
            "A gateway used this key within the last 3 minutes",
        )
    return ConditionState.false(
        ConditionType.IN_USE,
        Reason.HEARTBEAT_STALE,
        "No gateway has used this key for more than 3 minutes",
    )


def _status(p: _Pass, name: str, secret_name: str, state: _State) -> GatewayKeyStatus:
    heartbeat = state.info.last_heartbeat_at if state.info is not None else None
    return GatewayKeyStatus(
        key_id=str(state.key_id) if state.key_id else None,
        key_name=name,
        key_prefix=state.prefix,
        secret_name=secret_name,
        created_at=_seconds(state.created_at),
        last_heartbeat_at=_seconds(heartbeat),
        rotation=RotationStatus(
            generation=state.generation,
            previous_key_id=str(state.previous_id) if state.previous_id else None,
            previous_key_prefix=state.previous_prefix,
            retire_after=_seconds(state.retire_after),
            last_rotated_at=_seconds(state.last_rotated_at),
        ),
    )


def _finish(p: _Pass, status: GatewayKeyStatus) -> KeyOutcome:
    patch, conditions = next_status(
        p.current,
        status,
        p.conditions,
        generation=p.obj.generation,
        clock=p.rt.clock,
        ready_dependencies=_READY_DEPENDENCIES,
        ready_message=_READY_MESSAGE,
        order=_ORDER,
    )
    return KeyOutcome(
        status_patch=patch,
        events=p.events,
        retry_after=p.retry_after,
        retry_message=p.retry_message,
        secrets_written=p.written,
        conditions=tuple((c.type, c.status.value) for c in conditions),
    )


# --- deletion -------------------------------------------------------------------------------


async def finalize(
    rt: Runtime,
    kube: KeySecrets,
    obj: KeyObject,
    spec_body: Mapping[str, Any] | None,
    status_body: Mapping[str, Any] | None,
    *,
    blocked_retry: float = 10.0,
) -> KeyOutcome:
    """Delete the key's rows (Delete) or leave them and the Secret in place (Orphan).

    A key a gateway used within the last 3 minutes is not deleted unless the object carries
    ``aigateway.dev/force-delete: "true"``: the object waits with ``DeletionBlocked``.
    """
    current = _parse_status(status_body)
    p = _Pass(rt, kube, obj, current)
    policy = DeletionPolicy.DELETE
    secret_name = current.secret_name
    with contextlib.suppress(InvalidSpecError):
        spec = GatewayKeySpec.from_body(spec_body)
        policy = spec.deletion_policy
        secret_name = spec.effective_secret_name(obj.name)
    try:
        sec = await kube.read_secret(obj.namespace, secret_name) if secret_name else None
        owned = sec if sec is not None and obj.uid in sec.owner_uids else None
        if policy is DeletionPolicy.ORPHAN:
            if owned is not None:
                # Keep the plaintext: without this the garbage collector deletes the Secret.
                await kube.disown_secret(obj.namespace, owned.name, owned.uid)
            p.note(Reason.ORPHANED, "Left the Coder AI Gateway key and its Secret in place")
            return KeyOutcome(status_patch={}, events=p.events, done=True)
        rot = current.rotation or RotationStatus()
        ids = {_uuid(current.key_id), _uuid(rot.previous_key_id)}
        if owned is not None:
            held = _held(owned)
            ids |= {held.key_id, held.previous_id}
        ids.discard(None)
        keys = [k for k in [await rt.store.get_gateway_key(i) for i in ids if i] if k]
        force = obj.annotations.get(FORCE_DELETE_ANNOTATION) == "true"
        now = rt.clock()
        busy = [
            k
            for k in keys
            if k.last_heartbeat_at is not None and now - k.last_heartbeat_at <= IN_USE_WINDOW
        ]
        if busy and not force:
            message = (
                f"Not deleting: key prefix {busy[0].secret_prefix} was used by a gateway within "
                "the last 3 minutes. Stop the gateway, or annotate the object with "
                f'{FORCE_DELETE_ANNOTATION}="true" to delete it anyway'
            )
            p.conditions.append(
                ConditionState.false(ConditionType.READY, Reason.DELETION_BLOCKED, message)
            )
            if p.condition_changed(ConditionType.READY, Reason.DELETION_BLOCKED):
                p.warn(Reason.DELETION_BLOCKED, message)
            p.retry(blocked_retry, "deletion blocked: the key is in use")
            outcome = _finish(p, current)
            outcome.done = False
            return outcome
        for key in keys:
            await rt.store.delete_gateway_key(key.id, obj.owner())
    except (StoreError, KubeError) as exc:
        message = f"waiting to delete the Coder AI Gateway key: {exc}"[:1000]
        p.conditions.append(ConditionState.false(ConditionType.READY, Reason.DELETING, message))
        p.retry(RETRY_DATABASE, message)
        outcome = _finish(p, current)
        outcome.done = False
        return outcome
    if keys:
        prefixes = ", ".join(sorted(k.secret_prefix for k in keys))
        forced = " (forced while in use)" if busy else ""
        p.note("Deleted", f"Deleted the Coder AI Gateway key(s) {prefixes}{forced}")
    return KeyOutcome(status_patch={}, events=p.events, done=True)
