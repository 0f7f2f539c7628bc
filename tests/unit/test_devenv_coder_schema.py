"""Coder's schema as the local environment and the tests build it (``tools/devenv/coder_schema``):
each release's shape records a migration number the store reads back as that release."""

from __future__ import annotations

import pytest

from aigateway_operator.store.versions import release_for
from tools.devenv.coder_schema import CREATE_RELEASES, coder_ddl

pytestmark = pytest.mark.unit


def test_each_shape_records_a_number_inside_its_release() -> None:
    for label, number in CREATE_RELEASES.items():
        assert release_for(number).label == label


def test_only_releases_with_gateway_keys_get_their_table() -> None:
    assert "ai_gateway_keys" not in coder_ddl("v2.34")
    assert "CREATE TABLE IF NOT EXISTS ai_gateway_keys" in coder_ddl("v2.35")
    assert "ADD COLUMN IF NOT EXISTS icon" not in coder_ddl("v2.35")
    assert "ADD COLUMN IF NOT EXISTS icon" in coder_ddl("v2.36")
