"""Coder's secret-masking rule, so that every masked value we show matches what coderd shows.

coderd masks provider keys (API responses, audit diffs, log lines) with ``MaskSecret``
(reference §4.4). Status fields, audit rows and log lines written by this operator must mask
the same way, otherwise a key would look different in the Coder UI and in ``kubectl``.
This module is pure: no I/O, no imports from the rest of the package.
"""

from __future__ import annotations

__all__ = ["mask_secret", "revealed_chars"]


def revealed_chars(length: int) -> int:
    """How many characters ``mask_secret`` reveals at *each* end of a value of ``length``.

    Coder's thresholds: >=20 -> 4, 10-19 -> 2, 5-9 -> 1, shorter -> 0.
    """
    if length >= 20:
        return 4
    if length >= 10:
        return 2
    if length >= 5:
        return 1
    return 0


def mask_secret(value: str) -> str:
    """Mask ``value`` exactly as coderd's ``MaskSecret`` does.

    Lengths count characters (Go counts runes; a Python ``str`` is a sequence of code
    points, which is the same thing for any valid UTF-8 input). The empty string stays empty;
    a value of at most ``2k`` characters becomes ``...``; otherwise the first and last ``k``
    characters surround ``...``.
    """
    length = len(value)
    if length == 0:
        return ""
    k = revealed_chars(length)
    if length <= 2 * k or k == 0:
        return "..."
    return f"{value[:k]}...{value[length - k :]}"
