"""The operator image's cache key is what goes into the image (tools/devenv/images.py).

``image_key`` hashes the Dockerfile, .dockerignore, the two locks, the base image's reference
and the operator's wheel (built by hatchling from the files the build context admits, hashed by
its entries). A README, docs, tests, chart or tool-settings change must reuse the cached image
(a rebuild costs minutes of ``make test``); a change to anything the build reads must not,
or a cached image would differ from the image a fresh build makes.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.devenv import images
from tools.devenv.images import KEY_FILES, REPO, WHEEL_DIR, WHEEL_FILES, image_key

pytestmark = pytest.mark.unit

#: Files of the repository that are not the image's: each is copied into the scratch
#: repository so that changing it is a real change beside the image's inputs.
NOT_INPUTS = (
    "README.md",
    "CHANGELOG.md",
    "docs/development.md",
    "deploy/helm/aigateway-operator/Chart.yaml",
    "tests/unit/test_devenv_image_key.py",
)


def _copy(root: Path) -> Path:
    for name in (*KEY_FILES, *WHEEL_FILES, *NOT_INPUTS):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(
        REPO / WHEEL_DIR, root / WHEEL_DIR, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's image inputs and of a few files that are not."""
    return _copy(tmp_path / "repo")


@pytest.fixture(scope="module")
def unchanged(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The key of another, untouched copy (the key does not depend on where the copy is)."""
    return image_key(_copy(tmp_path_factory.mktemp("pristine")))


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_docs_tests_chart_readme_and_tool_settings_reuse_the_image(
    repo: Path, unchanged: str
) -> None:
    for name in NOT_INPUTS:
        _append(repo / name, "\n<!-- edited -->\n" if name.endswith(".md") else "\n# edited\n")
    pyproject = repo / "pyproject.toml"
    text = pyproject.read_text()
    assert "line-length = 100" in text
    pyproject.write_text(text.replace("line-length = 100", "line-length = 99"))  # [tool.ruff]
    # What the build context never admits, even under the package: bytecode.
    cache = repo / WHEEL_DIR / "__pycache__"
    cache.mkdir()
    (cache / "cli.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert image_key(repo) == unchanged


#: Changes to what the wheel is built from: each must give another key.
WHEEL_CHANGES: dict[str, Callable[[Path], None]] = {
    "a module's source": lambda r: _append(r / WHEEL_DIR / "cli.py", "\n# edited\n"),
    "a new module": lambda r: (r / WHEEL_DIR / "extra.py").write_text("X = 1\n"),
    "a module made executable": lambda r: (r / WHEEL_DIR / "cli.py").chmod(0o755),
    "the package's metadata": lambda r: (r / "pyproject.toml").write_text(
        (r / "pyproject.toml").read_text().replace('"kopf>=1.45,<2"', '"kopf>=1.46,<2"')
    ),
    "the license": lambda r: _append(r / "LICENSE", "\nedited\n"),
}


@pytest.mark.parametrize("change", list(WHEEL_CHANGES))
def test_a_change_to_the_wheel_rebuilds_the_image(repo: Path, unchanged: str, change: str) -> None:
    WHEEL_CHANGES[change](repo)
    assert image_key(repo) != unchanged


@pytest.mark.parametrize("name", KEY_FILES)
def test_a_change_to_the_dockerfile_or_a_lock_rebuilds_the_image(
    repo: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "wheel_digest", lambda repo: "the same wheel")
    before = image_key(repo)
    _append(repo / name, "\n# edited\n")
    assert image_key(repo) != before


def test_the_base_image_the_name_and_the_label_are_in_the_key(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "wheel_digest", lambda repo: "the same wheel")
    before = image_key(repo, extra="localhost/aigateway-operator:dev\0")
    assert image_key(repo, extra="localhost/aigateway-operator:dev\x002") != before
    assert image_key(repo, extra="localhost/aigateway-operator:other\0") != before
    monkeypatch.setattr(images, "BASE_PACKAGES", (*images.BASE_PACKAGES, "curl"))
    assert image_key(repo, extra="localhost/aigateway-operator:dev\0") != before


def test_the_build_context_admits_only_the_keyed_inputs() -> None:
    """.dockerignore shuts everything out and re-admits the keyed inputs, no more; every file
    the Dockerfile copies is one of them (otherwise a cached image could differ from a fresh
    build with the same key)."""
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and r[0] != "#"]
    assert rules[0] == "*"
    admitted = {r.removeprefix("!") for r in rules if r.startswith("!")}
    keyed = {*KEY_FILES, *WHEEL_FILES} - {"Dockerfile", ".dockerignore"}
    assert admitted == keyed | {f"{WHEEL_DIR}/**"}
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = {
        src
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M)
        for src in line.split()[:-1]
    }
    assert copied == keyed | {WHEEL_DIR}
