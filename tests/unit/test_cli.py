"""The product's command line: ``run`` and ``--version``, nothing of the dev environment."""

from __future__ import annotations

import importlib.metadata

import pytest

import aigateway_operator
from aigateway_operator import cli

pytestmark = pytest.mark.unit


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    expected = importlib.metadata.version("aigateway-operator")
    assert capsys.readouterr().out == f"aigateway-operator {expected}\n"


def test_dunder_version_agrees_with_the_distribution_metadata() -> None:
    """One version: hatchling reads ``__version__`` into the metadata (a stale editable
    install, built before ``__version__`` changed, fails here: ``make setup`` reinstalls)."""
    assert aigateway_operator.__version__ == importlib.metadata.version("aigateway-operator")


def test_version_without_distribution_metadata_is_dunder_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image copies the package into site-packages without a dist-info directory."""

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.version() == aigateway_operator.__version__


@pytest.mark.parametrize("argv", [["dev", "up"], ["demo"], ["dev", "build"]])
def test_the_dev_environment_commands_are_gone(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """They moved to ``python -m tools.devenv``; the product keeps ``run`` only."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
