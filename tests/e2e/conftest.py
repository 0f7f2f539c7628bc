"""e2e helpers; the ``operator_factory`` fixture itself lives in ``tests/support/operator.py``
(loaded for every tier by the root conftest, so fault tests use the same operator harness)."""

from tests.support.operator import (
    GROUP,
    VERSION,
    OperatorProcess,
    condition,
    custom,
    fresh_database,
    get_obj,
    make_secret,
    wait_condition,
)

__all__ = [
    "GROUP",
    "VERSION",
    "OperatorProcess",
    "condition",
    "custom",
    "fresh_database",
    "get_obj",
    "make_secret",
    "wait_condition",
]
