"""The image the chart runs: built from a lock that matches what the tests ran against, as
the numeric non-root user the chart's securityContext expects. These checks read the
Dockerfile; tests/e2e/test_node_chart.py builds it (buildah) and runs it on a node."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock", REPO / "deploy" / "lock_requirements.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lock_pins_exactly_the_runtime_closure_of_the_venv() -> None:
    lock = lock_module()
    expected = lock.render(lock.closure())
    actual = (REPO / "deploy" / "requirements.lock").read_text()
    assert actual == expected, "deploy/requirements.lock is stale: run deploy/lock_requirements.py"
    pins = dict(
        line.split("==") for line in actual.splitlines() if line and not line.startswith("#")
    )
    for name in ("kopf", "kubernetes", "psycopg", "psycopg-binary", "pydantic", "boto3"):
        assert name in pins
    for tool in ("pytest", "ruff", "mypy", "moto", "hypothesis"):
        assert tool not in pins, f"{tool} is a dev tool, not a runtime dependency"


def test_dockerfile_is_pinned_non_root_and_installs_from_the_lock() -> None:
    # Every stage starts from the one BASE argument, whose default is the pinned public image
    # (a machine without a registry passes a base made locally: tools/devenv/images.py).
    assert set(re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.M)) == {"${BASE}"}
    base = re.search(r"^ARG BASE=(\S+)$", DOCKERFILE, re.M)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert re.search(r"pip install --no-deps .*-r /tmp/requirements\.lock", DOCKERFILE)
    assert "pip install ." not in DOCKERFILE  # nothing resolved at build time
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    values = yaml.safe_load((REPO / "deploy/helm/aigateway-operator/values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert users[-1] == f"{uid}:{values['podSecurityContext']['runAsGroup']}"
    assert uid != 0
    assert 'ENTRYPOINT ["python", "-m", "aigateway_operator.cli"]' in DOCKERFILE
    assert 'CMD ["run"]' in DOCKERFILE
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1 :][:2] == [
        "!deploy/requirements.lock",
        "!src/aigateway_operator/**",
    ]


def test_entrypoint_runs_the_operator_cli() -> None:
    """What the container executes (``python -m aigateway_operator.cli run``) exists."""
    proc = subprocess.run(
        [sys.executable, "-m", "aigateway_operator.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--verbose" in proc.stdout
