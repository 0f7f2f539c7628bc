"""What an upsert must change, and what a drift check reports: pure functions, no SQL.

``upsert`` and ``compare`` both load the stored row and its key rows (decrypted), then ask
:func:`plan_provider` what differs from the canonical desired state. The plan says which
columns change, whether the settings blob is rewritten or only re-encrypted, and what
happens to each key row (kept in place, moved, removed, or a new value inserted), so the
two callers cannot disagree about what "in sync" means. ``providers`` turns a plan into
SQL; nothing here touches a connection, a cipher or the clock.

Key plan: keep the longest prefix of the desired list that is already stored in the right
order; every later desired key gets a fresh, strictly increasing ``created_at`` (a stored
row with that value is *moved*, a missing value is *inserted*), so reading by
``(created_at, id)``, as coderd does, yields the desired failover order. Stored rows whose
value is not desired, duplicates (coderd's key pool refuses them) and rows whose ciphertext
no longer decrypts, are removed.

Coder-owned columns (``CanonicalProvider.coder_owned``, a subset of ``enabled``,
``display_name`` and ``icon``) are planned only for a row that is soft-deleted (a revive is a
creation: the desired values are written); on a live row they are neither changed nor a
difference, whatever they hold, and :attr:`ProviderPlan.coder_owned` says what they hold.

Rows the operator does not understand are left alone: a ``type`` label or a settings
``_type`` it does not know (a newer Coder's) makes the plan :attr:`ProviderPlan.left_alone`
and its callers write nothing. Settings coderd cannot decode are a difference like any
other: rewritten under Revert, reported under Report.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aigateway_operator.store.canonical import CanonicalProvider
from aigateway_operator.store.cipher import needs_reencrypt
from aigateway_operator.store.models import Difference, DifferenceKind, ProviderType
from aigateway_operator.store.settings import DecodedSettings, SettingsStatus

__all__ = [
    "COLUMNS",
    "KeyPlan",
    "ProviderPlan",
    "StoredKeyView",
    "StoredRowView",
    "coder_owned_values",
    "plan_keys",
    "plan_provider",
]

COLUMNS = ("type", "name", "display_name", "enabled", "base_url", "icon", "deleted")
"""Plain columns a plan may change, in the order they are reported."""


_KNOWN_TYPES = frozenset(t.value for t in ProviderType)


@dataclass(frozen=True)
class StoredRowView:
    """The stored provider row as the plan needs it: plain columns plus decoded settings."""

    type: str
    name: str
    display_name: str | None
    enabled: bool
    deleted: bool
    base_url: str
    icon: str | None
    settings: DecodedSettings
    """The settings decoded as coderd decodes them (``settings.decode``)."""
    settings_key_id: str | None

    @property
    def type_known(self) -> bool:
        return self.type in _KNOWN_TYPES


@dataclass(frozen=True)
class StoredKeyView:
    """One stored key row, decrypted (``value`` None: the ciphertext does not decrypt)."""

    id: uuid.UUID
    value: str | None = field(repr=False)
    key_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class KeyPlan:
    """What happens to the key rows (see the module docstring)."""

    in_place: tuple[StoredKeyView, ...]
    """Rows of the desired prefix that stay where they are."""
    tail: tuple[str, ...] = field(repr=False)
    """Desired values after the prefix, in order: each gets a new ``created_at``."""
    moved: tuple[StoredKeyView, ...]
    """Stored rows whose value is in ``tail`` (updated in place with a new ``created_at``)."""
    removed: tuple[StoredKeyView, ...]
    """Rows to delete: values no longer desired, and duplicates."""
    reencrypt: tuple[StoredKeyView, ...]
    """Rows of ``in_place`` that are not under the primary key."""
    by_value: Mapping[str, StoredKeyView] = field(repr=False)
    """Each distinct stored value's first row."""
    undecryptable: tuple[StoredKeyView, ...] = ()
    """Rows (also in ``removed``) whose ciphertext does not decrypt."""
    stored_count: int = 0

    @property
    def changed(self) -> bool:
        """Readers see another key list (a value added, removed or reordered)."""
        return bool(self.removed) or bool(self.tail)

    @property
    def reordered(self) -> bool:
        return bool(self.moved)

    @property
    def new_values(self) -> tuple[str, ...]:
        """Values of ``tail`` that no stored row holds: these are inserted."""
        return tuple(v for v in self.tail if v not in self.by_value)


def plan_keys(
    stored: Sequence[StoredKeyView], wanted: Sequence[str], primary_digest: str | None
) -> KeyPlan:
    """The key plan for ``stored`` rows (in coderd's read order) and the ``wanted`` list."""
    by_value: dict[str, StoredKeyView] = {}
    removed: list[StoredKeyView] = [k for k in stored if k.value is None]
    for k in stored:
        if k.value is None:
            continue  # undecryptable: cannot be any desired value, so it is replaced
        if k.value in by_value:
            removed.append(k)  # a duplicate written by someone else: coderd cannot use it
        else:
            by_value[k.value] = k
    position = {k.id: i for i, k in enumerate(stored)}
    prefix, last = 0, -1
    while prefix < len(wanted):
        found = by_value.get(wanted[prefix])
        if found is None or position[found.id] < last:
            break
        last = position[found.id]
        prefix += 1
    wanted_set = set(wanted)
    removed += [k for k in by_value.values() if k.value not in wanted_set]
    in_place = tuple(by_value[v] for v in wanted[:prefix])
    tail = tuple(wanted[prefix:])
    return KeyPlan(
        in_place=in_place,
        tail=tail,
        moved=tuple(by_value[v] for v in tail if v in by_value),
        removed=tuple(removed),
        reencrypt=tuple(k for k in in_place if needs_reencrypt(k.key_id, primary_digest)),
        by_value=by_value,
        undecryptable=tuple(k for k in stored if k.value is None),
        stored_count=len(stored),
    )


@dataclass(frozen=True)
class ProviderPlan:
    """Everything an upsert would change on one stored provider row."""

    changes: Mapping[str, Any]
    """Plain column -> new value, for the columns of :data:`COLUMNS` that differ."""
    settings_changed: bool
    """The settings blob must be rewritten (another value, or one coderd cannot decode)."""
    reencrypt_settings: bool
    """The settings are unchanged but not under the primary key."""
    keys: KeyPlan
    differences: tuple[Difference, ...]
    """What differs, as a drift check reports it (no values)."""
    coder_owned: Mapping[str, Any] = field(default_factory=dict)
    """Each Coder-owned column's value once the plan is applied: the stored one on a live
    row (never changed), the desired one on a revived row."""

    @property
    def left_alone(self) -> bool:
        """The row holds what this operator does not understand: write nothing."""
        return any(d.left_alone for d in self.differences)

    @property
    def changed(self) -> bool:
        """Readers would see a difference: a real write (updated_at, notify, audit)."""
        return bool(self.changes) or self.settings_changed or self.keys.changed


def _key_differences(kp: KeyPlan, wanted: Sequence[str]) -> list[Difference]:
    out = [
        Difference("api_keys", DifferenceKind.KEY_UNDECRYPTABLE, f"row {k.id} does not decrypt")
        for k in kp.undecryptable
    ]
    if kp.changed and (kp.stored_count != len(wanted) or not kp.undecryptable):
        if kp.stored_count != len(wanted):
            detail = f"{kp.stored_count} stored, {len(wanted)} desired"
        elif set(kp.by_value) == set(wanted) and len(kp.by_value) == len(wanted):
            detail = "order"
        else:
            detail = "a value differs"
        out.append(Difference("api_keys", DifferenceKind.KEYS, detail))
    return out


def coder_owned_values(
    row: StoredRowView | CanonicalProvider, columns: Collection[str], *, has_icon: bool
) -> dict[str, Any]:
    """The values of the Coder-owned ``columns`` in ``row`` (a stored row or the desired
    state), as readers see them: ``icon`` NULL reads as ``''``, and is left out where the
    column does not exist."""
    out: dict[str, Any] = {}
    for col in sorted(columns):
        if col == "icon":
            if has_icon:
                out[col] = row.icon or ""
        else:
            out[col] = getattr(row, col)
    return out


def plan_provider(
    stored: StoredRowView,
    stored_keys: Sequence[StoredKeyView],
    canon: CanonicalProvider,
    *,
    has_icon: bool,
    primary_digest: str | None,
) -> ProviderPlan:
    """Compare a stored row (decrypted) with the canonical desired state.

    ``canon`` must already carry the stored ``external_id`` (``with_stored_external_id``).
    """
    differences: list[Difference] = []
    if not stored.type_known:
        differences.append(
            Difference(
                "type",
                DifferenceKind.UNKNOWN_TYPE,
                f"{stored.type!r} is a provider type this operator does not know; left alone",
            )
        )
    if stored.settings.status is SettingsStatus.UNKNOWN_TYPE:
        differences.append(
            Difference(
                "settings",
                DifferenceKind.UNKNOWN_SETTINGS_TYPE,
                f"{stored.settings.reason}; left alone",
            )
        )
    changes: dict[str, Any] = {}
    if stored.type != canon.type.value:
        changes["type"] = canon.type.value
    # Coder-owned columns of a live row are Coder's: not planned, not a difference. A
    # soft-deleted row is revived as if created, with every desired value.
    owned = frozenset() if stored.deleted else canon.coder_owned
    for col in ("name", "display_name", "enabled", "base_url"):
        if col not in owned and getattr(stored, col) != getattr(canon, col):
            changes[col] = getattr(canon, col)
    if has_icon and "icon" not in owned and (stored.icon or "") != canon.icon:
        changes["icon"] = canon.icon
    if stored.deleted:
        changes["deleted"] = False
    differences += [
        Difference(c, DifferenceKind.COLUMN)
        for c in COLUMNS
        if c in changes and not (c == "type" and not stored.type_known)
    ]

    status = stored.settings.status
    stored_view = stored.settings.view
    settings_same = (status is SettingsStatus.EMPTY and canon.settings is None) or (
        status is SettingsStatus.BEDROCK and stored_view == canon.settings
    )
    if status is SettingsStatus.UNDECODABLE:
        differences.append(
            Difference(
                "settings",
                DifferenceKind.SETTINGS_UNDECODABLE,
                f"undecodable by coderd: {stored.settings.reason}",
            )
        )
    elif not settings_same and status is not SettingsStatus.UNKNOWN_TYPE:
        differences.append(Difference("settings", DifferenceKind.SETTINGS))
    reencrypt_settings = (
        settings_same
        and canon.settings is not None
        and needs_reencrypt(stored.settings_key_id, primary_digest)
    )
    kp = plan_keys(stored_keys, canon.api_keys, primary_digest)
    differences += _key_differences(kp, canon.api_keys)
    return ProviderPlan(
        changes=changes,
        settings_changed=not settings_same,
        reencrypt_settings=reencrypt_settings,
        keys=kp,
        differences=tuple(differences),
        coder_owned=coder_owned_values(
            canon if stored.deleted else stored, canon.coder_owned, has_icon=has_icon
        ),
    )
