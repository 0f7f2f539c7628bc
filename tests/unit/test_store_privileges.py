"""deploy/postgres/grants.sql grants exactly what the store checks for (and nothing more)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aigateway_operator.store import Capabilities
from aigateway_operator.store.operator_schema import OPERATOR_SCHEMA
from aigateway_operator.store.privileges import required_grants

pytestmark = pytest.mark.unit

GRANTS = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "grants.sql"
LINE = re.compile(
    r'^GRANT (?P<privs>[A-Z, ]+) ON (?P<kind>TABLE|TYPE|SCHEMA) :"coder_schema"'
    r'(?:\.(?P<name>\w+))? TO :"role";$'
)


def granted_in_file() -> set[tuple[str, str, str]]:
    out = set()
    for line in GRANTS.read_text().splitlines():
        m = LINE.match(line)
        if m:
            for priv in m["privs"].split(","):
                out.add((priv.strip(), m["kind"].lower(), m["name"] or ""))
    return out


def test_the_file_grants_exactly_the_privileges_the_store_needs_on_coders_schema() -> None:
    caps = Capabilities(has_icon=True, has_heartbeat=True, has_audit=True)
    needed = {
        (g.privilege, g.kind, g.name)
        for g in required_grants(caps)
        if g.schema is None and g.name != OPERATOR_SCHEMA  # ours: see the next test
    }
    assert granted_in_file() == needed


def test_the_file_gives_the_operator_its_own_schema_and_nothing_to_create_in_coders() -> None:
    text = GRANTS.read_text()
    assert "CREATE SCHEMA IF NOT EXISTS aigateway_operator;" in text
    assert 'GRANT USAGE, CREATE ON SCHEMA aigateway_operator TO :"role";' in text
    grants = [line for line in text.splitlines() if line.startswith("GRANT ")]
    # Only the operator's schema gets CREATE; Coder's tables get no TRUNCATE/REFERENCES/ALL.
    assert [g for g in grants if "CREATE" in g] == [
        'GRANT USAGE, CREATE ON SCHEMA aigateway_operator TO :"role";'
    ]
    assert not [g for g in grants if re.search(r"\b(ALL|TRUNCATE|REFERENCES|TRIGGER)\b", g)]
