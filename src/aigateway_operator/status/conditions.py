"""Pure condition bookkeeping and status diffing.

Two promises to users rest on this module:

* ``lastTransitionTime`` means what Kubernetes says it means: it moves only when a
  condition's *status* changes, not when its reason or message is refreshed. Without that,
  ``kubectl get -w`` and alerts on "False for 10 minutes" are useless.
* A reconcile that finds nothing new writes nothing. Every status write is an etcd write and a
  watch event for every client (kopf-notes A11); an operator restart over 1,000 healthy
  objects must not cause 1,000 patches. :func:`status_patch` returns only what differs.

No I/O and no wall clock: the caller injects ``clock``, so tests pin time exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigateway_operator.api.common import (
    STALLED_REASONS,
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    StatusModel,
)

__all__ = [
    "READY_DEPENDENCIES",
    "Clock",
    "ConditionState",
    "merge_conditions",
    "status_patch",
    "summarize_ready",
    "utc_now",
]

Clock = Callable[[], datetime]

#: The conditions ``Ready`` summarises by default (an AIProvider's), in the order their
#: failures are reported. Other kinds pass their own ``ready_dependencies``.
READY_DEPENDENCIES: tuple[ConditionType, ...] = (
    ConditionType.SECRETS_RESOLVED,
    ConditionType.CREDENTIALS_VALID,
    ConditionType.SYNCED,
)
DEFAULT_READY_MESSAGE = "Provider is in sync with Coder"


def utc_now() -> datetime:
    """The production clock: aware UTC, whole seconds (metav1.Time's precision)."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class ConditionState:
    """A condition as a reconcile pass computes it, before bookkeeping is added.

    Reconcile code says *what* is true; :func:`merge_conditions` decides timestamps and
    generations, so no caller can get them subtly wrong.
    """

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""

    @classmethod
    def true(cls, type_: str, reason: str, message: str = "") -> ConditionState:
        return cls(type_, ConditionStatus.TRUE, reason, message)

    @classmethod
    def false(cls, type_: str, reason: str, message: str = "") -> ConditionState:
        return cls(type_, ConditionStatus.FALSE, reason, message)

    @classmethod
    def unknown(cls, type_: str, reason: str, message: str = "") -> ConditionState:
        return cls(type_, ConditionStatus.UNKNOWN, reason, message)


def _now(clock: Clock) -> datetime:
    now = clock()
    if now.tzinfo is None:
        raise ValueError("clock must return an aware datetime")
    return now.astimezone(UTC).replace(microsecond=0)


def _apply(
    current: Condition | None, desired: ConditionState, generation: int | None, now: datetime
) -> Condition:
    keep_time = current is not None and current.status == desired.status
    return Condition(
        type=desired.type,
        status=desired.status,
        reason=desired.reason,
        message=desired.message,
        last_transition_time=current.last_transition_time if current and keep_time else now,
        observed_generation=generation,
    )


def summarize_ready(
    conditions: Iterable[Condition],
    generation: int | None = None,
    *,
    dependencies: Sequence[str] = READY_DEPENDENCIES,
    message: str = DEFAULT_READY_MESSAGE,
) -> ConditionState:
    """``Ready`` from ``dependencies`` (default :data:`READY_DEPENDENCIES`).

    False if any dependency is False for the current generation (the first one's reason and
    message are copied, so ``kubectl get`` shows *why*); otherwise Unknown if any is missing,
    Unknown, or was last computed for an older generation (a stale True proves nothing about
    the new spec); otherwise True.
    """
    by_type = {c.type: c for c in conditions}
    first_unknown: ConditionState | None = None
    for dep in dependencies:
        cond = by_type.get(dep)
        if cond is None:
            state = ConditionState.unknown(
                ConditionType.READY, Reason.PENDING, f"{dep} has not been evaluated yet"
            )
        elif (
            generation is not None
            and cond.observed_generation is not None
            and cond.observed_generation < generation
        ):
            state = ConditionState.unknown(
                ConditionType.READY,
                Reason.PENDING,
                f"{dep} has not been evaluated for generation {generation} yet",
            )
        elif cond.status is ConditionStatus.FALSE:
            return ConditionState.false(ConditionType.READY, cond.reason, f"{dep}: {cond.message}")
        elif cond.status is ConditionStatus.UNKNOWN:
            state = ConditionState.unknown(
                ConditionType.READY, cond.reason, f"{dep}: {cond.message}"
            )
        else:
            continue
        first_unknown = first_unknown or state
    if first_unknown is not None:
        return first_unknown
    return ConditionState.true(ConditionType.READY, Reason.READY, message)


KSTATUS_TYPES = (ConditionType.RECONCILING, ConditionType.STALLED)


def kstatus(ready: Condition) -> tuple[ConditionState, ConditionState]:
    """``Reconciling`` and ``Stalled`` as kstatus defines them, from ``Ready``: Ready=True is
    neither; not Ready for a reason in :data:`STALLED_REASONS` is Stalled (a person must
    act); any other not-Ready state (deleting included) is Reconciling (it fixes itself or
    is in progress). Both always present, so the list's shape never changes."""
    if ready.status == ConditionStatus.TRUE:
        return (
            ConditionState.false(ConditionType.RECONCILING, Reason.RECONCILED, "Ready"),
            ConditionState.false(ConditionType.STALLED, Reason.RECONCILED, "Ready"),
        )
    why = f"{ready.reason}: {ready.message}" if ready.message else str(ready.reason)
    if ready.reason in STALLED_REASONS:
        return (
            ConditionState.false(ConditionType.RECONCILING, ready.reason, why),
            ConditionState.true(ConditionType.STALLED, ready.reason, why),
        )
    return (
        ConditionState.true(ConditionType.RECONCILING, ready.reason, why),
        ConditionState.false(ConditionType.STALLED, Reason.PROGRESSING, "Not stalled"),
    )


def merge_conditions(
    current: Sequence[Condition],
    desired: Iterable[ConditionState],
    *,
    generation: int | None,
    clock: Clock = utc_now,
    ready_dependencies: Sequence[str] = READY_DEPENDENCIES,
    ready_message: str = DEFAULT_READY_MESSAGE,
    order: Sequence[str] = (),
) -> tuple[Condition, ...]:
    """Fold ``desired`` into ``current`` and recompute ``Ready``.

    * A desired condition whose status equals the current one keeps its
      ``lastTransitionTime``; reason and message are refreshed either way.
    * Every desired condition gets ``observedGeneration = generation``.
    * Conditions not in ``desired`` are kept unchanged (their older ``observedGeneration``
      shows they were not re-evaluated).
    * ``Ready`` is computed by :func:`summarize_ready` over ``ready_dependencies`` unless
      ``desired`` sets it explicitly (for example ``Deleting``).
    * Known types (``ready_dependencies``, then ``order``, then ``Ready``) come first in that
      fixed order, then any others in their current order, so the list is stable and diffs
      are meaningful.
    """
    now = _now(clock)
    merged: dict[str, Condition] = {c.type: c for c in current}
    wanted = list(desired)
    for state in wanted:
        merged[state.type] = _apply(merged.get(state.type), state, generation, now)
    if not any(s.type == ConditionType.READY for s in wanted):
        ready = summarize_ready(
            merged.values(), generation, dependencies=ready_dependencies, message=ready_message
        )
        merged[ConditionType.READY] = _apply(
            merged.get(ConditionType.READY), ready, generation, now
        )
    for state in kstatus(merged[ConditionType.READY]):
        merged[state.type] = _apply(merged.get(state.type), state, generation, now)
    fixed = dict.fromkeys([*ready_dependencies, *order, ConditionType.READY, *KSTATUS_TYPES])
    known = [merged.pop(t) for t in fixed if t in merged]
    return (*known, *merged.values())


def _normalise(value: Any) -> Any:
    """Absent, ``None`` and ``[]`` all mean "nothing reported"."""
    return None if value == [] else value


def _merge_patch(current: Any, desired: Any) -> Any:
    """An RFC 7386 merge patch turning ``current`` into ``desired`` (objects recurse)."""
    if isinstance(current, Mapping) and isinstance(desired, Mapping):
        patch: dict[str, Any] = {}
        for key in current.keys() - desired.keys():
            patch[key] = None
        for key, value in desired.items():
            if key not in current:
                patch[key] = value
            elif current[key] != value:
                patch[key] = _merge_patch(current[key], value)
        return patch
    return desired


def _body(status: StatusModel) -> dict[str, Any]:
    """A status as written to the API server: camelCase, absent fields omitted."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def status_patch(current: StatusModel, desired: StatusModel) -> dict[str, Any]:
    """The merge patch for ``status`` that turns ``current`` into ``desired``; ``{}`` if equal.

    Both are the kind's status model: ``current`` as the pass parsed it once from the object
    (so the same instant spelled differently by another writer is already not a change, and
    an unparseable status is the empty model), ``desired`` as the pass built it. Neither is
    validated again. Only fields the model declares are considered, so fields written by
    others (for example kopf's own bookkeeping) are never touched.
    """
    current_body = _body(current)
    desired_body = _body(desired)
    patch: dict[str, Any] = {}
    for field_name, info in type(desired).model_fields.items():
        key = info.alias or field_name
        have = _normalise(current_body.get(key))
        want = _normalise(desired_body.get(key))
        if have == want:
            continue
        patch[key] = want if have is None or want is None else _merge_patch(have, want)
    return patch


def next_status(
    current: Any,
    status: Any,
    states: Iterable[ConditionState],
    *,
    generation: int,
    clock: Clock = utc_now,
    **merge: Any,
) -> tuple[dict[str, Any], tuple[Condition, ...]]:
    """What every kind's pass ends with: fold ``states`` into ``current``'s conditions, stamp
    ``observedGeneration`` on ``status``, and return (the minimal status patch, the conditions).

    ``current`` and ``status`` are the kind's status model (with ``conditions`` and
    ``observed_generation``); ``merge`` goes to :func:`merge_conditions` (Ready's inputs).
    """
    conditions = merge_conditions(
        current.conditions, states, generation=generation, clock=clock, **merge
    )
    desired = status.model_copy(
        update={"conditions": conditions, "observed_generation": generation}
    )
    return status_patch(current, desired), conditions
