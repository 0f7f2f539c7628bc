"""``make test`` runs the unit tier first and leaves every test's durations in a file
(tests/support/tiers.py), checked on a small suite of its own run by a real pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import repo_root

pytestmark = pytest.mark.unit

SUITE = {
    "pytest.ini": (
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    unit: u\n    integration: i\n    e2e: e\n    faults: f\n"
    ),
    # Collected first (alphabetically) but the last tier: it must run last.
    "test_a_faults.py": "import pytest\n\n@pytest.mark.faults\ndef test_fault():\n    pass\n",
    "test_b_e2e.py": "import pytest\n\n@pytest.mark.e2e\ndef test_end_to_end():\n    pass\n",
    "test_c_integration.py": (
        "import pytest\n\npytestmark = pytest.mark.integration\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('setup fails')\n\n"
        "def test_wired(broken):\n    pass\n"
    ),
    "test_d_unit.py": (
        "import pytest\n\npytestmark = pytest.mark.unit\n\n"
        "def test_one():\n    pass\n\n"
        "def test_two():\n    assert 1 == 2\n\n"
        "@pytest.mark.skip(reason='x')\ndef test_three():\n    pass\n"
    ),
}


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    for name, text in SUITE.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.tiers", "-p", "no:cacheprovider",
         "-v", *args, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_the_unit_tier_runs_first_then_integration_e2e_faults(tmp_path: Path) -> None:
    proc = _run(tmp_path)
    ran = re.findall(r"^test_\w+\.py::(\w+) (?:PASSED|FAILED|SKIPPED|ERROR)", proc.stdout, re.M)
    assert ran == ["test_one", "test_two", "test_three", "test_wired", "test_end_to_end",
                   "test_fault"], proc.stdout  # fmt: skip


def test_every_test_has_its_durations_tier_and_outcome_in_the_file(tmp_path: Path) -> None:
    out = tmp_path / "results" / "durations.txt"
    proc = _run(tmp_path, f"--durations-file={out}")
    assert proc.returncode == 1, proc.stdout  # one failed, one error
    lines = out.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    assert any(line.split()[1:3] == ["unit", "3"] for line in header), header
    rows = [line.split() for line in lines if not line.startswith("#")][1:]
    found = {row[-1].split("::")[1]: (row[4], row[5]) for row in rows}
    assert found == {
        "test_one": ("passed", "unit"),
        "test_two": ("failed", "unit"),
        "test_three": ("skipped", "unit"),
        "test_wired": ("error", "integration"),
        "test_end_to_end": ("passed", "e2e"),
        "test_fault": ("passed", "faults"),
    }
    totals = [float(row[0]) for row in rows]
    assert totals == sorted(totals, reverse=True)
    for row in rows:  # total = setup + call + teardown
        assert abs(float(row[0]) - sum(float(x) for x in row[1:4])) < 0.02, row
