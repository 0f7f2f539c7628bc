"""Coder's MaskSecret rule (reference 4.4), by example and as a property over all lengths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigateway_operator.masking import mask_secret

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("", ""),
        ("a", "..."),
        ("abc", "..."),
        ("abcd", "..."),
        ("abcde", "a...e"),
        ("abcdefghi", "a...i"),
        ("abcdefghij", "ab...ij"),
        ("a" * 19, "aa...aa"),
        ("sk-ant-0123456789abcdef", "sk-a...cdef"),
        ("ключ-ключ-ключ-ключ-ключ", "ключ...ключ"),  # runes, not bytes
    ],
)
def test_examples(value: str, masked: str) -> None:
    assert mask_secret(value) == masked


def _reference(value: str) -> str:
    """The rule restated independently from the reference's table."""
    n = len(value)
    if n == 0:
        return ""
    k = {True: 4}.get(n >= 20) or (2 if n >= 10 else 1 if n >= 5 else 0)
    if n <= 2 * k:
        return "..."
    return value[:k] + "..." + value[-k:] if k else "..."


@given(st.text(max_size=80))
def test_matches_reference_rule_for_all_lengths(value: str) -> None:
    masked = mask_secret(value)
    assert masked == _reference(value)
    if len(value) >= 5:
        # Never reveals more than 8 characters, never the middle.
        assert len(masked) - 3 <= 8
