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
value is not desired, and duplicates (coderd's key pool refuses them), are removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aigateway_operator.store.canonical import CanonicalProvider
from aigateway_operator.store.cipher import needs_reencrypt

__all__ = [
    "COLUMNS",
    "KeyPlan",
    "ProviderPlan",
    "StoredKeyView",
    "StoredRowView",
    "plan_keys",
    "plan_provider",
]

COLUMNS = ("type", "name", "display_name", "enabled", "base_url", "icon", "deleted")
"""Plain columns a plan may change, in the order they are reported."""


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
    settings: Mapping[str, Any] | None = field(repr=False)
    """The decoded settings object (None: NULL, blank, or not decodable)."""
    settings_present: bool
    """True when the column holds a non-blank value (decodable or not)."""
    settings_key_id: str | None


@dataclass(frozen=True)
class StoredKeyView:
    """One stored key row, decrypted."""

    id: uuid.UUID
    value: str = field(repr=False)
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
    removed: list[StoredKeyView] = []
    for k in stored:
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

    @property
    def changed(self) -> bool:
        """Readers would see a difference: a real write (updated_at, notify, audit)."""
        return bool(self.changes) or self.settings_changed or self.keys.changed

    @property
    def differences(self) -> list[str]:
        """The differing fields by name, as a drift check reports them."""
        out = [c for c in COLUMNS if c in self.changes]
        if self.settings_changed:
            out.append("settings")
        if self.keys.changed:
            out.append("api_keys")
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
    changes: dict[str, Any] = {}
    if stored.type != canon.type.value:
        changes["type"] = canon.type.value
    for col in ("name", "display_name", "enabled", "base_url"):
        if getattr(stored, col) != getattr(canon, col):
            changes[col] = getattr(canon, col)
    if has_icon and (stored.icon or "") != canon.icon:
        changes["icon"] = canon.icon
    if stored.deleted:
        changes["deleted"] = False
    settings_same = stored.settings == canon.settings and (
        stored.settings is not None or not stored.settings_present
    )
    reencrypt_settings = (
        settings_same
        and canon.settings is not None
        and needs_reencrypt(stored.settings_key_id, primary_digest)
    )
    return ProviderPlan(
        changes=changes,
        settings_changed=not settings_same,
        reencrypt_settings=reencrypt_settings,
        keys=plan_keys(stored_keys, canon.api_keys, primary_digest),
    )
