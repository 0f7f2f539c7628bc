"""The Coder release table: every migration number maps to exactly one release row."""

from __future__ import annotations

import pytest

from aigateway_operator.store.versions import (
    CODER_RELEASES,
    MIN_SUPPORTED_MIGRATION,
    NEWEST_KNOWN_MIGRATION,
    CoderVersion,
    release_for,
)

pytestmark = pytest.mark.unit


def test_the_table_covers_every_number_once_in_order() -> None:
    for number in range(NEWEST_KNOWN_MIGRATION + 100):
        assert sum(r.contains(number) for r in CODER_RELEASES) == 1, number
    firsts = [r.first_migration for r in CODER_RELEASES]
    assert firsts == sorted(firsts)
    assert CODER_RELEASES[-1].last_migration is None
    assert not CODER_RELEASES[-1].known


@pytest.mark.parametrize(
    ("migration", "label", "supported", "known"),
    [
        (494, "v2.33 or older", False, True),
        (505, "a development build before v2.34", False, True),
        (MIN_SUPPORTED_MIGRATION, "v2.34", True, True),
        (513, "v2.34", True, True),
        (520, "a development build before v2.35", True, True),
        (532, "v2.35", True, True),
        (539, "v2.36", True, True),
        (NEWEST_KNOWN_MIGRATION, "v2.36", True, True),
        (NEWEST_KNOWN_MIGRATION + 1, "v2.37 or later", True, False),
    ],
)
def test_release_ranges(migration: int, label: str, supported: bool, known: bool) -> None:
    v = CoderVersion.of(migration)
    assert (v.release.label, v.supported, not v.newer_than_known) == (label, supported, known)
    assert f"{migration:06d}" in v.label


def test_settings_fields_grow_with_the_release() -> None:
    v234, v235, v236 = (release_for(n).bedrock_fields for n in (506, 532, 551))
    assert "role_arn" not in v234
    assert "role_arn" in v235
    assert {"external_id", "protocol"}.isdisjoint(v235)
    assert {"external_id", "protocol"} <= v236
    assert release_for(700).bedrock_fields == v236  # newer: writes only what v2.36 knows
