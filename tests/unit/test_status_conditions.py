"""Condition bookkeeping and minimal status patches (pure, with a pinned clock)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigateway_operator.api import (
    AIProviderStatus,
    APIKeyStatus,
    BedrockIdentityStatus,
    ConditionStatus,
    ConditionType,
    Reason,
    SecretKeyRef,
)
from aigateway_operator.api.common import STALLED_REASONS, Condition
from aigateway_operator.controllers.aiprovider.status import parse_status
from aigateway_operator.status import (
    ConditionState,
    merge_conditions,
    status_patch,
    summarize_ready,
    utc_now,
)
from aigateway_operator.status.conditions import KSTATUS_TYPES

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


ALL_GOOD = [
    ConditionState.true(ConditionType.SECRETS_RESOLVED, Reason.RESOLVED, "2 keys"),
    ConditionState.true(ConditionType.CREDENTIALS_VALID, Reason.NOT_APPLICABLE),
    ConditionState.true(ConditionType.SYNCED, Reason.SYNCED, "written"),
]


def of(conditions: Sequence[Condition], type_: str) -> Condition:
    return next(c for c in conditions if c.type == type_)


def test_ready_true_when_all_true() -> None:
    merged = merge_conditions((), ALL_GOOD, generation=1, clock=at(T0))
    assert [c.type for c in merged] == [
        "SecretsResolved", "CredentialsValid", "Synced", "Ready", "Reconciling", "Stalled"
    ]  # fmt: skip
    ready = of(merged, "Ready")
    assert (ready.status, ready.reason) == (ConditionStatus.TRUE, Reason.READY)
    assert all(c.observed_generation == 1 and c.last_transition_time == T0 for c in merged)


def test_transition_time_kept_when_status_unchanged_and_moved_when_changed() -> None:
    first = merge_conditions((), ALL_GOOD, generation=1, clock=at(T0))
    same = merge_conditions(
        first,
        [ConditionState.true(ConditionType.SYNCED, Reason.DRIFT_REVERTED, "reverted a change")],
        generation=2,
        clock=at(T1),
    )
    synced = next(c for c in same if c.type == ConditionType.SYNCED)
    assert synced.last_transition_time == T0
    assert (synced.reason, synced.message, synced.observed_generation) == (
        Reason.DRIFT_REVERTED,
        "reverted a change",
        2,
    )
    failed = merge_conditions(
        same,
        [ConditionState.false(ConditionType.SYNCED, Reason.DATABASE_UNAVAILABLE, "pg down")],
        generation=2,
        clock=at(T1),
    )
    synced = next(c for c in failed if c.type == ConditionType.SYNCED)
    assert synced.last_transition_time == T1


def test_ready_false_copies_first_failing_reason() -> None:
    merged = merge_conditions(
        (),
        [
            ConditionState.false(
                ConditionType.SECRETS_RESOLVED, Reason.SECRET_NOT_FOUND, "Secret 'a' not found"
            ),
            ConditionState.unknown(ConditionType.CREDENTIALS_VALID, Reason.PENDING),
            ConditionState.false(ConditionType.SYNCED, Reason.NAME_CONFLICT, "exists"),
        ],
        generation=4,
        clock=at(T0),
    )
    ready = of(merged, "Ready")
    assert ready.status is ConditionStatus.FALSE
    assert ready.reason == Reason.SECRET_NOT_FOUND
    assert ready.message == "SecretsResolved: Secret 'a' not found"
    # kstatus: a missing Secret can appear, so this is Reconciling, not Stalled.
    assert of(merged, "Reconciling").status is ConditionStatus.TRUE
    assert of(merged, "Reconciling").reason == Reason.SECRET_NOT_FOUND
    assert of(merged, "Stalled").status is ConditionStatus.FALSE


@pytest.mark.parametrize("reason", sorted(STALLED_REASONS))
def test_a_state_that_needs_a_person_is_stalled_not_reconciling(reason: str) -> None:
    merged = merge_conditions(
        (),
        [*ALL_GOOD[:2], ConditionState.false(ConditionType.SYNCED, reason, "needs a person")],
        generation=3,
        clock=at(T0),
    )
    stalled, reconciling = of(merged, "Stalled"), of(merged, "Reconciling")
    assert (stalled.status, stalled.reason) == (ConditionStatus.TRUE, reason)
    assert "needs a person" in stalled.message
    assert reconciling.status is ConditionStatus.FALSE
    assert stalled.observed_generation == 3


def test_ready_is_neither_reconciling_nor_stalled() -> None:
    merged = merge_conditions((), ALL_GOOD, generation=1, clock=at(T0))
    assert of(merged, "Reconciling").status is ConditionStatus.FALSE
    assert of(merged, "Stalled").status is ConditionStatus.FALSE


def test_ready_unknown_when_a_dependency_is_missing_or_stale() -> None:
    partial = merge_conditions((), ALL_GOOD[:2], generation=1, clock=at(T0))
    assert (of(partial, "Ready").status, of(partial, "Ready").reason) == (
        ConditionStatus.UNKNOWN,
        Reason.PENDING,
    )
    assert "Synced" in of(partial, "Ready").message

    good = merge_conditions((), ALL_GOOD, generation=1, clock=at(T0))
    # Generation 2: only secrets re-evaluated so far; stale Trues do not make it Ready.
    stale = merge_conditions(good, ALL_GOOD[:1], generation=2, clock=at(T1))
    ready = of(stale, "Ready")
    assert (ready.status, ready.reason) == (ConditionStatus.UNKNOWN, Reason.PENDING)
    assert ready.last_transition_time == T1
    assert "generation 2" in ready.message


def test_explicit_ready_wins_and_unknown_types_are_kept() -> None:
    other = merge_conditions(
        (), [ConditionState.true("example.com/Custom", "Fine")], generation=1, clock=at(T0)
    )
    merged = merge_conditions(
        other,
        [*ALL_GOOD, ConditionState.false(ConditionType.READY, Reason.DELETING, "finalizing")],
        generation=1,
        clock=at(T1),
    )
    assert [c.type for c in merged] == [
        "SecretsResolved",
        "CredentialsValid",
        "Synced",
        "Ready",
        "Reconciling",
        "Stalled",
        "example.com/Custom",
    ]
    assert of(merged, "Ready").reason == Reason.DELETING
    assert of(merged, "Reconciling").status is ConditionStatus.TRUE, "deleting is in progress"


def test_clock_is_normalised_and_must_be_aware() -> None:
    plus_two = timezone(timedelta(hours=2))
    merged = merge_conditions(
        (), ALL_GOOD, generation=1, clock=at(datetime(2026, 3, 1, 14, 0, 0, 999, tzinfo=plus_two))
    )
    assert merged[0].last_transition_time == T0
    with pytest.raises(ValueError, match="aware"):
        merge_conditions((), ALL_GOOD, generation=1, clock=at(datetime(2026, 1, 1)))
    assert utc_now().microsecond == 0
    assert utc_now().tzinfo is UTC


def desired_status(clock_time: datetime = T0) -> AIProviderStatus:
    return AIProviderStatus(
        observed_generation=1,
        provider_id="0b6a4a55-7d0e-4d3a-9d86-0d2c5f3b5e11",
        key_count=1,
        conditions=merge_conditions((), ALL_GOOD, generation=1, clock=at(clock_time)),
        api_keys=(
            APIKeyStatus(
                id="k1",
                masked="sk-a...cdef",
                secret_key_ref=SecretKeyRef(name="openai", key="api-key"),
                fingerprint="fp1",
                created_at=T0,
            ),
        ),
        bedrock=None,
        last_synced_at=T0,
    )


def test_first_write_patches_everything_then_nothing() -> None:
    want = desired_status()
    first = status_patch(AIProviderStatus(), want)
    assert first == want.to_body()
    # The API server hands the status back as JSON; a quiet re-reconcile writes nothing.
    assert status_patch(AIProviderStatus.from_body(want.to_body()), want) == {}


def test_only_changed_fields_are_patched_and_others_are_left_alone() -> None:
    want = desired_status()
    current = {**want.to_body(), "kopf": {"dummy": "x"}}
    changed = want.model_copy(update={"key_count": 2})
    assert status_patch(AIProviderStatus.from_body(current), changed) == {"keyCount": 2}


def test_equal_instants_spelled_differently_are_not_a_change() -> None:
    want = desired_status()
    current = want.to_body()
    current["lastSyncedAt"] = "2026-03-01T12:00:00+00:00"
    assert status_patch(AIProviderStatus.from_body(current), want) == {}


def test_removed_fields_are_deleted_and_nested_objects_diffed() -> None:
    with_bedrock = desired_status().model_copy(
        update={
            "bedrock": BedrockIdentityStatus(
                caller_arn="arn:aws:iam::123456789012:user/a",
                assumed_role_arn="arn:aws:sts::123456789012:assumed-role/r/s",
                expiration=T1,
                last_verified_at=T0,
            )
        }
    )
    current = with_bedrock
    failed = with_bedrock.model_copy(
        update={
            "bedrock": BedrockIdentityStatus(
                caller_arn="arn:aws:iam::123456789012:user/a", last_verified_at=T1
            ),
            "provider_id": None,
            "api_keys": (),
        }
    )
    assert status_patch(current, failed) == {
        "bedrock": {
            "assumedRoleARN": None,
            "expiration": None,
            "lastVerifiedAt": "2026-03-01T12:05:00Z",
        },
        "providerID": None,
        "apiKeys": None,  # absent and [] both mean "no keys": the field is removed
    }


def test_unparseable_current_status_is_replaced() -> None:
    # A status someone wrote that does not parse is the empty status to the pass (parsed
    # once, at its start): every field the pass reports is written.
    want = desired_status()
    patch = status_patch(parse_status({"keyCount": "many"}), want)
    assert patch["keyCount"] == 1


TYPES = (ConditionType.SECRETS_RESOLVED, ConditionType.CREDENTIALS_VALID, ConditionType.SYNCED)
#: One desired condition: any status, any reason of the vocabulary, any message.
STATE = st.tuples(
    st.sampled_from(list(ConditionStatus)),
    st.sampled_from(list(Reason)),
    st.text(max_size=200),
)


def _states(drawn: list[tuple[ConditionStatus, Reason, str]]) -> list[ConditionState]:
    return [
        ConditionState(t, status, reason, message)
        for t, (status, reason, message) in zip(TYPES, drawn, strict=True)
    ]


@given(
    gen=st.integers(min_value=0, max_value=10**9),
    drawn=st.lists(STATE, min_size=3, max_size=3),
    minutes=st.integers(min_value=0, max_value=10**5),
)
def test_merging_the_same_states_twice_is_a_fixed_point(
    gen: int, drawn: list[tuple[ConditionStatus, Reason, str]], minutes: int
) -> None:
    states = _states(drawn)
    once = merge_conditions((), states, generation=gen, clock=at(T0))
    twice = merge_conditions(
        once, states, generation=gen, clock=at(T0 + timedelta(minutes=minutes))
    )
    assert once == twice
    status = AIProviderStatus(conditions=twice)
    assert status_patch(AIProviderStatus(conditions=once), status) == {}
    assert summarize_ready(twice, gen).status == of(twice, "Ready").status


@given(
    gen=st.integers(min_value=0, max_value=10**9),
    bump=st.integers(min_value=0, max_value=3),
    before=st.lists(STATE, min_size=3, max_size=3),
    after=st.lists(STATE, min_size=3, max_size=3),
)
def test_transition_time_moves_exactly_when_the_status_does(
    gen: int,
    bump: int,
    before: list[tuple[ConditionStatus, Reason, str]],
    after: list[tuple[ConditionStatus, Reason, str]],
) -> None:
    first = merge_conditions((), _states(before), generation=gen, clock=at(T0))
    second = merge_conditions(first, _states(after), generation=gen + bump, clock=at(T1))
    old = {c.type: c for c in first}
    new = {c.type: c for c in second}
    assert list(new) == [*TYPES, ConditionType.READY, *KSTATUS_TYPES]
    for t, (status, reason, message) in zip(TYPES, after, strict=True):
        c = new[t]
        # Reason, message and generation always follow the newest pass ...
        assert (c.status, c.reason, c.message) == (status, reason, message)
        assert c.observed_generation == gen + bump
        # ... the transition time only when the status changed.
        moved = old[t].status != status
        assert c.last_transition_time == (T1 if moved else T0), t
    for derived in (ConditionType.READY, *KSTATUS_TYPES):
        derived_moved = old[derived].status != new[derived].status
        assert new[derived].last_transition_time == (T1 if derived_moved else T0), derived
        assert new[derived].observed_generation == gen + bump
    # The patch from the first status to the second changes conditions only if they differ.
    patch = status_patch(AIProviderStatus(conditions=first), AIProviderStatus(conditions=second))
    assert ("conditions" in patch) == (first != second)
