"""``aigateway-operator run`` with a missing or malformed setting: one line naming the
setting on stderr, exit code 2, no traceback, and no value echoed (the real process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CANARY = "pw-CANARY-cli-0123456789"
DSN = f"postgresql://coder:{CANARY}@127.0.0.1:1/coder"
BIN = Path(sys.executable).with_name("aigateway-operator")


def run(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    return subprocess.run(
        [str(BIN), "run"], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "AIGW_DATABASE_URL"),
        ({"AIGW_DATABASE_URL": DSN, "AIGW_RESYNC_INTERVAL_S": "soon"}, "AIGW_RESYNC_INTERVAL_S"),
        ({"AIGW_DATABASE_URL": DSN, "AIGW_SECRET_ACCESS": "all"}, "AIGW_SECRET_ACCESS"),
        ({"AIGW_DATABASE_URL": DSN, "AIGW_ENCRYPTION_KEYS": CANARY}, "AIGW_ENCRYPTION_KEYS"),
        ({"AIGW_DATABASE_URL": DSN, "AIGW_DATABASE_URL_FILE": "/nonexistent/url"},
         "AIGW_DATABASE_URL"),
        ({"AIGW_DATABASE_URL": DSN, "KUBECONFIG": "/nonexistent/kubeconfig"}, "KUBECONFIG"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = run(env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("configuration error: ")
    assert named in lines[0]
    assert "Traceback" not in result.stderr
    assert CANARY not in result.stderr + result.stdout
