"""The pure plan shared by upsert and compare: column diff and key plan, without Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigateway_operator.store import (
    CODER_OWNABLE,
    BedrockSettings,
    DesiredProvider,
    DifferenceKind,
    InvalidProvider,
    ProviderType,
)
from aigateway_operator.store.canonical import CanonicalProvider, canonicalize
from aigateway_operator.store.plan import (
    StoredKeyView,
    StoredRowView,
    plan_keys,
    plan_provider,
)
from aigateway_operator.store.settings import DecodedSettings, decode, encode

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PRIMARY = "abc1234"
OLD = "def5678"


def canon(**kw: Any) -> CanonicalProvider:
    base: dict[str, Any] = {"name": "p", "type": ProviderType.OPENAI}
    base.update(kw)
    return canonicalize(DesiredProvider(**base))


def stored(settings: dict[str, Any] | None) -> DecodedSettings:
    """What the store reads back for a blob written from ``settings``."""
    return decode(encode(settings))


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
        "settings": stored(c.settings),
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
    assert p.differences == ()
    assert not p.left_alone
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
    assert [str(d) for d in p.differences] == [field]
    assert [d.kind for d in p.differences] == [DifferenceKind.COLUMN]
    assert p.changed


def test_icon_is_ignored_without_the_column() -> None:
    c = canon(icon="/i.svg")
    p = plan_provider(row_like(c, icon=None), [], c, has_icon=False, primary_digest=PRIMARY)
    assert not p.changed


def test_settings_rewritten_when_different_or_undecodable() -> None:
    bed = canon(type=ProviderType.BEDROCK, bedrock=BedrockSettings(region="us-east-1"))
    other = {**(bed.settings or {}), "region": "eu-west-1"}
    p = plan_provider(
        row_like(bed, settings=stored(other)), [], bed, has_icon=True, primary_digest=None
    )
    assert p.settings_changed
    assert [str(d) for d in p.differences] == ["settings"]
    # A blob coderd cannot decode is replaced, also by NULL settings, and said so.
    plain = canon()
    for blob in ('{"_type":"bedrock","_version":true}', "not json"):
        p = plan_provider(
            row_like(plain, settings=decode(blob)), [], plain, has_icon=True, primary_digest=None
        )
        assert p.settings_changed
        assert [d.kind for d in p.differences] == [DifferenceKind.SETTINGS_UNDECODABLE]
        assert "undecodable by coderd" in str(p.differences[0])
        assert not p.left_alone


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


@pytest.mark.parametrize(
    ("override", "kind"),
    [
        ({"type": "bedrock-mantle"}, DifferenceKind.UNKNOWN_TYPE),
        (
            {"settings": decode('{"_type":"claude_platform_aws","_version":1}')},
            DifferenceKind.UNKNOWN_SETTINGS_TYPE,
        ),
    ],
)
def test_rows_this_operator_does_not_know_are_left_alone(
    override: dict[str, Any], kind: DifferenceKind
) -> None:
    c = canon(type=ProviderType.ANTHROPIC, api_keys=("k",))
    p = plan_provider(row_like(c, **override), keys("k"), c, has_icon=True, primary_digest=PRIMARY)
    assert p.left_alone
    assert kind in [d.kind for d in p.differences]
    assert all(d.left_alone for d in p.differences if d.kind is kind)
    assert "left alone" in " ".join(str(d) for d in p.differences)


@pytest.mark.parametrize(
    ("stored_values", "detail"),
    [
        (("a",), "1 stored, 2 desired"),
        (("a", "b", "c"), "3 stored, 2 desired"),
        (("a", "a"), "a value differs"),
        (("b", "a"), "order"),
        (("a", "x"), "a value differs"),
    ],
)
def test_key_differences_say_count_order_or_value_never_the_value(
    stored_values: tuple[str, ...], detail: str
) -> None:
    c = canon(api_keys=("a", "b"))
    p = plan_provider(row_like(c), keys(*stored_values), c, has_icon=True, primary_digest=None)
    assert [(d.field, d.kind, d.detail) for d in p.differences] == [
        ("api_keys", DifferenceKind.KEYS, detail)
    ]


def test_an_undecryptable_key_row_is_replaced_and_reported() -> None:
    c = canon(api_keys=("a", "b"))
    rows = keys("a", "b")
    broken = StoredKeyView(rows[1].id, None, PRIMARY, rows[1].created_at)
    p = plan_provider(row_like(c), [rows[0], broken], c, has_icon=True, primary_digest=PRIMARY)
    assert p.keys.removed == (broken,)
    assert p.keys.new_values == ("b",)
    assert [d.kind for d in p.differences] == [DifferenceKind.KEY_UNDECRYPTABLE]
    assert str(broken.id) in str(p.differences[0])
    assert not p.left_alone


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


# -- Coder-owned columns ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "override", "value"),
    [
        ("enabled", {"enabled": False}, False),
        ("display_name", {"display_name": "Renamed in Coder"}, "Renamed in Coder"),
        ("display_name", {"display_name": None}, None),
        ("icon", {"icon": "/coder.svg"}, "/coder.svg"),
    ],
)
def test_a_coder_owned_column_of_a_live_row_is_neither_written_nor_a_difference(
    column: str, override: dict[str, Any], value: object
) -> None:
    c = canon(display_name="P", icon="/i.svg", coder_owned=frozenset({column}))
    p = plan_provider(row_like(c, **override), [], c, has_icon=True, primary_digest=PRIMARY)
    assert dict(p.changes) == {}
    assert p.differences == ()
    assert not p.changed
    assert dict(p.coder_owned) == {column: value}, "what Coder holds, reported"


def test_columns_not_coder_owned_still_differ_and_are_written() -> None:
    c = canon(display_name="P", coder_owned=frozenset({"enabled"}))
    row = row_like(c, enabled=False, display_name="X", base_url="https://evil.example.com/v1")
    p = plan_provider(row, [], c, has_icon=True, primary_digest=PRIMARY)
    assert dict(p.changes) == {"display_name": "P", "base_url": "https://api.openai.com/v1/"}
    assert [str(d) for d in p.differences] == ["display_name", "base_url"]
    assert dict(p.coder_owned) == {"enabled": False}


def test_a_revived_row_is_a_creation_and_gets_the_desired_values() -> None:
    c = canon(display_name="P", icon="/i.svg", coder_owned=frozenset({"enabled", "icon"}))
    # coderd's soft delete sets enabled = false; the icon was edited before that.
    row = row_like(c, deleted=True, enabled=False, icon="/coder.svg")
    p = plan_provider(row, [], c, has_icon=True, primary_digest=PRIMARY)
    assert dict(p.changes) == {"enabled": True, "icon": "/i.svg", "deleted": False}
    assert dict(p.coder_owned) == {"enabled": True, "icon": "/i.svg"}


def test_on_creation_the_desired_values_are_the_coder_owned_ones() -> None:
    from aigateway_operator.store.plan import coder_owned_values

    c = canon(enabled=False, display_name="P", coder_owned=frozenset(CODER_OWNABLE))
    assert coder_owned_values(c, c.coder_owned, has_icon=True) == {
        "display_name": "P",
        "enabled": False,
        "icon": "",
    }
    # Where Coder has no icon column, there is no icon to report.
    assert coder_owned_values(c, c.coder_owned, has_icon=False) == {
        "display_name": "P",
        "enabled": False,
    }


def test_only_display_columns_may_be_coder_owned() -> None:
    for column in ("base_url", "api_keys", "bedrock", "type", "name", "settings"):
        with pytest.raises(InvalidProvider, match="coder_owned may name only") as info:
            canon(coder_owned=frozenset({column}))
        assert info.value.field == "coderOwnedFields"
    assert {"enabled", "display_name", "icon"} == CODER_OWNABLE


def test_keys_and_settings_are_never_coder_owned() -> None:
    """Owning every column that may be owned still leaves keys and settings to the spec."""
    bed = canon(
        type=ProviderType.BEDROCK,
        bedrock=BedrockSettings(region="us-east-1"),
        coder_owned=frozenset(CODER_OWNABLE),
    )
    other = {**(bed.settings or {}), "region": "eu-west-1"}
    p = plan_provider(
        row_like(bed, settings=stored(other), enabled=False),
        [],
        bed,
        has_icon=True,
        primary_digest=None,
    )
    assert p.settings_changed
    assert [str(d) for d in p.differences] == ["settings"]
    c = canon(api_keys=("a", "b"), coder_owned=frozenset(CODER_OWNABLE))
    p = plan_provider(row_like(c), keys("b", "a"), c, has_icon=True, primary_digest=None)
    assert [d.kind for d in p.differences] == [DifferenceKind.KEYS]
