"""`make demo` (the README's first command: `python -m tools.devenv demo`) runs end to end, with
the operator as pods of the chart on the local node, and cleans up after itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import processes_mentioning
from tools.devenv.demo import OPENAI_A, OPENAI_B, OPENAI_B2

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A temp dir of this test's own, short (Postgres's socket path must fit in 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="aigw-t-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(900)  # the first run in a session may build the image
def test_demo_runs_and_shows_only_masked_values(private_tmp: Path) -> None:
    # Everything the demo makes on disk goes under a temp dir of this test's own, so what
    # it leaves behind (directories, and processes that mention them) is found for sure.
    tmp = private_tmp
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [sys.executable, "-m", "tools.devenv", "demo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "aip/openai" in out
    assert "aip/claude-bedrock" in out
    assert "cgwkey/gateway-eu" in out
    assert out.count(" True   Ready") == 3
    # The operator runs as the chart's two pods on the node, both Ready, none restarted.
    running = re.compile(r"^\s*aigw-aigateway-operator-\S+\s+1/1\s+Running\s+0\s+\S+\s+aigw-node$")
    assert len([line for line in out.splitlines() if running.match(line)]) >= 2, out[-3000:]
    assert "MB unpacked" in out
    assert "ai_providers_changed received" in out
    assert "sk-d...cccc" in out  # the rotated key reached the database (masked)
    for value in (OPENAI_A, OPENAI_B, OPENAI_B2):
        assert value not in out
    # Cleaned up: no directory left, and no process (control plane, Postgres, STS, the
    # operator) that mentions one in its command line or environment.
    assert sorted(p.name for p in tmp.iterdir()) == []
    assert processes_mentioning(str(tmp), environ=True) == []
