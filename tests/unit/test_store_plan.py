"""The pure plan shared by upsert and compare: column diff and key plan, without Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigateway_operator.store import BedrockSettings, DesiredProvider, ProviderType
from aigateway_operator.store.canonical import CanonicalProvider, canonicalize
from aigateway_operator.store.plan import (
    StoredKeyView,
    StoredRowView,
    plan_keys,
    plan_provider,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PRIMARY = "abc1234"
OLD = "def5678"


def canon(**kw: Any) -> CanonicalProvider:
    base: dict[str, Any] = {"name": "p", "type": ProviderType.OPENAI}
    base.update(kw)
    return canonicalize(DesiredProvider(**base))


def row_like(c: CanonicalProvider, **kw: Any) -> StoredRowView:
    """A stored row that matches ``c`` exactly, with overrides."""
    base: dict[str, Any] = {
        "type": c.type.value,
        "name": c.name,
        "display_name": c.display_name,
        "enabled": c.enabled,
        "deleted": False,
        "base_url": c.base_url,
        "icon": c.icon,
        "settings": c.settings,
        "settings_present": c.settings is not None,
        "settings_key_id": PRIMARY if c.settings is not None else None,
    }
    base.update(kw)
    return StoredRowView(**base)


def keys(*values: str, key_id: str | None = PRIMARY) -> list[StoredKeyView]:
    return [
        StoredKeyView(uuid.uuid4(), v, key_id, T0 + timedelta(microseconds=i))
        for i, v in enumerate(values)
    ]


def test_identical_row_plans_nothing() -> None:
    c = canon(api_keys=("k1", "k2"), display_name="P", icon="/i.svg")
    p = plan_provider(row_like(c), keys("k1", "k2"), c, has_icon=True, primary_digest=PRIMARY)
    assert not p.changed
    assert p.differences == []
    assert not p.reencrypt_settings
    assert p.keys.reencrypt == ()
    assert [k.value for k in p.keys.in_place] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("override", "field", "new"),
    [
        ({"type": "azure"}, "type", "openai"),
        ({"name": "old"}, "name", "p"),
        ({"display_name": "X"}, "display_name", None),
        ({"enabled": False}, "enabled", True),
        ({"base_url": "https://elsewhere/v1"}, "base_url", "https://api.openai.com/v1/"),
        ({"icon": "/other.svg"}, "icon", ""),
        ({"deleted": True}, "deleted", False),
    ],
)
def test_each_column_difference_is_planned(
    override: dict[str, Any], field: str, new: object
) -> None:
    c = canon()
    p = plan_provider(row_like(c, **override), [], c, has_icon=True, primary_digest=PRIMARY)
    assert dict(p.changes) == {field: new}
    assert p.differences == [field]
    assert p.changed


def test_icon_is_ignored_without_the_column() -> None:
    c = canon(icon="/i.svg")
    p = plan_provider(row_like(c, icon=None), [], c, has_icon=False, primary_digest=PRIMARY)
    assert not p.changed


def test_settings_rewritten_when_different_or_undecodable() -> None:
    bed = canon(type=ProviderType.BEDROCK, bedrock=BedrockSettings(region="us-east-1"))
    other = {**(bed.settings or {}), "region": "eu-west-1"}
    p = plan_provider(row_like(bed, settings=other), [], bed, has_icon=True, primary_digest=None)
    assert p.settings_changed
    assert p.differences == ["settings"]
    # A blob that decoded to nothing (garbage) is replaced, also by NULL settings.
    plain = canon()
    p = plan_provider(
        row_like(plain, settings=None, settings_present=True),
        [],
        plain,
        has_icon=True,
        primary_digest=None,
    )
    assert p.settings_changed
    assert p.differences == ["settings"]


def test_settings_under_an_old_or_no_key_are_only_reencrypted() -> None:
    bed = canon(type=ProviderType.BEDROCK, bedrock=BedrockSettings(region="us-east-1"))
    for stored_key in (OLD, None):
        p = plan_provider(
            row_like(bed, settings_key_id=stored_key),
            [],
            bed,
            has_icon=True,
            primary_digest=PRIMARY,
        )
        assert not p.changed
        assert p.reencrypt_settings
    # Without keys there is nothing to encrypt with: never plaintext over ciphertext.
    p = plan_provider(
        row_like(bed, settings_key_id=OLD), [], bed, has_icon=True, primary_digest=None
    )
    assert not p.reencrypt_settings


def test_key_plan_keeps_the_ordered_prefix_and_moves_the_rest() -> None:
    stored = keys("a", "b", "c", "d")
    kp = plan_keys(stored, ["a", "c", "b", "e"], PRIMARY)
    assert [k.value for k in kp.in_place] == ["a", "c"]
    assert kp.tail == ("b", "e")
    assert [k.value for k in kp.moved] == ["b"]
    assert kp.new_values == ("e",)
    assert [k.value for k in kp.removed] == ["d"]
    assert kp.changed
    assert kp.reordered


def test_key_plan_removes_duplicates_and_reencrypts_old_rows() -> None:
    stored = [*keys("a", key_id=OLD), *keys("a", "b", key_id=None)]
    kp = plan_keys(stored, ["a", "b"], PRIMARY)
    assert [k.value for k in kp.removed] == ["a"]
    assert kp.removed[0].id == stored[1].id  # the later duplicate goes, the first stays
    assert [k.value for k in kp.in_place] == ["a", "b"]
    assert [k.key_id for k in kp.reencrypt] == [OLD, None]  # NULL key id: plaintext row


def test_key_plan_of_an_equal_list_changes_nothing() -> None:
    kp = plan_keys(keys("a", "b"), ["a", "b"], PRIMARY)
    assert not kp.changed
    assert not kp.reordered
    assert kp.reencrypt == ()


@st.composite
def key_lists(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """(stored, wanted): stored mostly reuses wanted's values, shuffled, with extras and
    duplicates, so reorders, removals and no-ops all come up often."""
    wanted = draw(st.lists(st.sampled_from("abcdefg"), max_size=6, unique=True))
    reused = draw(st.permutations(wanted))
    kept = reused[: draw(st.integers(0, len(reused)))]
    extra = draw(st.lists(st.sampled_from("abcdefgh"), max_size=3))
    stored = draw(st.permutations(kept + extra)) if extra else kept
    return list(stored), wanted


@given(key_lists())
def test_applying_a_key_plan_yields_the_desired_order(lists: tuple[list[str], list[str]]) -> None:
    stored, wanted = lists
    rows = keys(*stored)
    kp = plan_keys(rows, wanted, PRIMARY)
    # Every stored row is exactly one of: kept in place, moved, removed.
    parts = [k.id for k in kp.in_place] + [k.id for k in kp.moved] + [k.id for k in kp.removed]
    assert sorted(parts) == sorted(k.id for k in rows)
    # Reading by created_at after the write: the prefix keeps its stamps, the tail comes after.
    assert [k.value for k in kp.in_place] + list(kp.tail) == wanted
    assert [k.value for k in kp.in_place] == wanted[: len(kp.in_place)]
    assert set(kp.new_values) == set(wanted) - set(stored)
    # "No change" exactly when readers already see the desired list.
    assert kp.changed == (stored != wanted)
