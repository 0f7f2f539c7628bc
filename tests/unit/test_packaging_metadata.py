"""Release metadata agrees with itself: one version for the package, the image and the chart;
one set of project URLs; the license file is the license pyproject declares; the changelog
keeps its format."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CHART = yaml.safe_load((REPO / "deploy/helm/aigateway-operator/Chart.yaml").read_text())


def test_one_version_for_package_image_and_chart() -> None:
    # pyproject takes the version from the package (dynamic), so there is one place to bump.
    assert "version" in PYPROJECT["project"]["dynamic"]
    init = (REPO / "src/aigateway_operator/__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', init, re.M)
    assert match is not None
    version = match.group(1)
    assert re.fullmatch(r"\d+\.\d+\.\d+([-.+].+)?", version)
    assert CHART["appVersion"] == version  # the image tag the chart runs by default
    assert CHART["version"] == version


def test_chart_and_package_point_at_the_same_project() -> None:
    urls = PYPROJECT["project"]["urls"]
    assert CHART["home"] == urls["Homepage"]
    assert urls["Source"] in CHART["sources"]
    assert CHART["icon"].startswith("https://")
    assert CHART["maintainers"]
    assert PYPROJECT["project"]["authors"]
    classifiers = PYPROJECT["project"]["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression


def test_license_file_is_the_declared_license() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert CHART["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in (REPO / "Dockerfile").read_text()


def test_changelog_follows_keep_a_changelog() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "https://keepachangelog.com/en/1.1.0/" in text
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions[0] == "Unreleased"
    allowed = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    sections = set(re.findall(r"^### (.+)$", text, re.M))
    assert sections <= allowed, sections - allowed
