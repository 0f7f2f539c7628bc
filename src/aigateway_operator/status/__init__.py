"""Status bookkeeping: conditions with correct transition times, and minimal status patches."""

from aigateway_operator.status.conditions import (
    READY_DEPENDENCIES,
    Clock,
    ConditionState,
    merge_conditions,
    status_patch,
    summarize_ready,
    utc_now,
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
