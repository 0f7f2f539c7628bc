"""`python -m tools.devenv up` then `down` leaves no process and no directory behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import processes_mentioning
from tools.devenv.procs import pid_alive

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The development tool's command line, run as the Makefile runs it: from the repo root."""
    return subprocess.run(
        [sys.executable, "-m", "tools.devenv", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_dev_up_then_down_leaves_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    up = _cli("up", "--env-file", str(env_file))
    assert up.returncode == 0, up.stderr[-3000:]
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in env_file.read_text().splitlines()
        if line.startswith("export ")
    )
    for var in (
        "KUBECONFIG",
        "AIGW_DATABASE_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_EC2_METADATA_DISABLED",
        "AIGW_SCHEMA",
    ):
        assert var in exports, var
    assert exports["AWS_EC2_METADATA_DISABLED"] == "true"
    assert exports["AIGW_SCHEMA"] == "create"
    state_dir = Path(exports["AIGW_DEV_STATE_DIR"])
    state = json.loads((state_dir / "state.json").read_text())
    pids = dict(state["pids"])
    pids["postgres"] = int(
        (Path(state["postgres_dir"]) / "data" / "postmaster.pid").read_text().split()[0]
    )
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "moto", "postgres"}
    assert all(pid_alive(p) for p in pids.values())

    status = _cli("status", "--env-file", str(env_file))
    assert status.returncode == 0, status.stdout
    assert "STOPPED" not in status.stdout

    down = _cli("down", "--env-file", str(env_file))
    assert down.returncode == 0, down.stderr
    alive = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    assert alive == {}
    assert not state_dir.exists()
    assert not env_file.exists()
    assert processes_mentioning(str(state_dir)) == []
    assert _cli("status", "--env-file", str(env_file)).returncode == 3
