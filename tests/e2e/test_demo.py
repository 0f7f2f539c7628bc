"""`make demo` (the README's first command: `python -m tools.devenv demo`) runs end to end, with
the operator as pods of the chart on the local node, and cleans up after itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.devenv.demo import OPENAI_A, OPENAI_B, OPENAI_B2

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # the first run in a session may build the image
def test_demo_runs_and_shows_only_masked_values() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.devenv", "demo"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
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
    assert "tearing down the local environment" in out
