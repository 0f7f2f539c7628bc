"""The claim rule (``store.claim``): which row a provider write for an owner takes, and the
refusals, in the order upsert, preview and the fake store meet them. Pure: no Postgres (the
same rule on Postgres and the fake: ``tests/integration/test_store_contract.py``)."""

from __future__ import annotations

import uuid

import pytest

from aigateway_operator.store import (
    NameConflict,
    NameTaken,
    OwnerRef,
    ProviderType,
    TypeMismatch,
)
from aigateway_operator.store.claim import Claim, NameHolder, claim

pytestmark = pytest.mark.unit

ME = OwnerRef("AIProvider", "team-a", "openai", instance="prod")
OTHER = ("prod", "AIProvider", "team-b", "openai")
OTHER_INSTALL = ("staging", "AIProvider", "team-a", "openai")
HOLDER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def made_in_coder(type_: str = "openai") -> NameHolder:
    return NameHolder(HOLDER_ID, type_, None)


def decide(ours_deleted: bool | None, holder: NameHolder | None, *, adopt: bool = False) -> Claim:
    return claim(
        ours_deleted=ours_deleted,
        holder=holder,
        name="openai",
        type_=ProviderType.OPENAI,
        owner=ME,
        adopt=adopt,
    )


@pytest.mark.parametrize(
    ("ours_deleted", "expected"),
    [(None, Claim.CREATE), (False, Claim.UPDATE), (True, Claim.REVIVE)],
)
def test_a_free_name_is_created_updated_or_revived(
    ours_deleted: bool | None, expected: Claim
) -> None:
    assert decide(ours_deleted, None) is expected


def test_renaming_onto_a_held_name_is_refused_naming_the_holder() -> None:
    with pytest.raises(NameTaken) as err:
        decide(False, NameHolder(HOLDER_ID, "openai", OTHER))
    assert err.value.holder == "AIProvider team-b/openai"
    assert "cannot rename" in str(err.value)


@pytest.mark.parametrize("ours_deleted", [None, True])
@pytest.mark.parametrize(
    ("recorded_for", "named"),
    [(OTHER, "AIProvider team-b/openai"), (OTHER_INSTALL, "operator instance 'staging'")],
)
def test_a_name_recorded_for_another_identity_stays_theirs_even_when_adopting(
    ours_deleted: bool | None, recorded_for: tuple[str, str, str, str], named: str
) -> None:
    with pytest.raises(NameTaken) as err:
        decide(ours_deleted, NameHolder(HOLDER_ID, "openai", recorded_for), adopt=True)
    assert type(err.value) is NameTaken  # not NameConflict (a subclass): not adoptable
    assert named in err.value.holder


def test_a_row_made_in_coder_is_a_conflict_until_adopted() -> None:
    with pytest.raises(NameConflict) as err:
        decide(None, made_in_coder())
    assert err.value.row_id == str(HOLDER_ID)
    assert decide(None, made_in_coder(), adopt=True) is Claim.ADOPT
    # The owner's soft-deleted row does not outrank a live holder: the name is the holder's.
    assert decide(True, made_in_coder(), adopt=True) is Claim.ADOPT


def test_adoption_never_changes_the_type_but_leaves_an_unknown_type_to_the_update() -> None:
    with pytest.raises(TypeMismatch):
        decide(None, made_in_coder("anthropic"), adopt=True)
    assert decide(None, made_in_coder("a-type-of-a-newer-coder"), adopt=True) is Claim.ADOPT
