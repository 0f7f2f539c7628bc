"""The product holds the operator only: the dev environment (``tools/devenv``) is not in the
wheel, and no product module imports it, even where the repository makes it importable.

The wheel is built offline with the declared backend (hatchling, in the test dependencies),
as ``pip wheel`` would build it for a release; the image copies the same directory
(``src/aigateway_operator``) and its build context admits nothing else of the repository.
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import aigateway_operator

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--wheel-dir", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (path,) = out.glob("aigateway_operator-*.whl")
    return path


def test_wheel_holds_the_operator_package_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"aigateway_operator-{aigateway_operator.__version__}.dist-info/"
    assert "aigateway_operator/cli.py" in names
    assert [n for n in names if not n.startswith(("aigateway_operator/", dist_info))] == []
    assert [n for n in names if "devenv" in n or n.startswith("tools/")] == []


def test_wheel_metadata_names_one_command_and_the_source_version(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        dist_info = next(n.split("/")[0] for n in zf.namelist() if ".dist-info/" in n)
        meta = email.message_from_bytes(zf.read(f"{dist_info}/METADATA"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert meta["Version"] == aigateway_operator.__version__
    scripts = [line for line in entry_points.splitlines() if "=" in line]
    assert scripts == ["aigateway-operator = aigateway_operator.cli:main"]


def test_no_product_module_imports_the_tools_at_runtime() -> None:
    """Every module of the package imported, from the repository root where ``tools`` *is*
    importable: import-linter sees static imports, this sees dynamic ones too."""
    probe = (
        "import importlib, json, pkgutil, sys\n"
        "import aigateway_operator, aigateway_operator.cli\n"
        "for m in pkgutil.walk_packages(aigateway_operator.__path__, 'aigateway_operator.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert "aigateway_operator.operator.handlers" in loaded  # the probe really walked the package
    assert [
        m for m in loaded if m == "tools" or m.startswith(("tools.", "aigateway_operator.devenv"))
    ] == []


def test_image_copies_the_operator_and_its_locks_only() -> None:
    """Docker cannot run here: the Dockerfile's COPY sources and the build context
    (``.dockerignore`` ignores everything, then re-admits) are what can reach the image: the
    package (built into a wheel with its metadata files), the two hashed locks, never tools/,
    tests/ or bench/."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = sorted(
        src
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M)
        for src in line.split()[:-1]
    )
    assert copies == [
        "LICENSE",
        "deploy/build-requirements.lock",
        "deploy/requirements.lock",
        "pyproject.toml",
        "src/aigateway_operator",
    ]
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and r[0] != "#"]
    assert rules[0] == "*"
    admitted = sorted(r for r in rules if r.startswith("!"))
    assert not [r for r in admitted if "tools" in r or "tests" in r or "bench" in r]
    assert "!src/aigateway_operator/**" in admitted or "!src/aigateway_operator" in admitted
