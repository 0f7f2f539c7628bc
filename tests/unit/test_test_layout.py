"""Tests import shared helpers from ``tests/support/``, never from other test modules.

A helper another module needs has one home, ``tests/support/``: importing it from a test
module (``from tests.e2e.test_aiprovider import apply_provider``) or from a conftest
(``from tests.e2e.conftest import GROUP``) ties one test file to another's internals, runs
that module's imports (and collects nothing of it) wherever it is used, and lets copies drift.
Fixtures stay in conftest files, where pytest finds them without an import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def _is_test_module(dotted: str, level: int = 0) -> bool:
    """Whether ``dotted`` names a test module or a conftest (``tests.e2e.test_x``,
    ``tests.conftest``; relative or bare forms too: ``.conftest``, ``test_x``)."""
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        return False
    if level == 0 and parts[0] != "tests":
        # Bare names resolve against rootdir-inserted paths: ``import conftest``.
        parts = parts[:1]
    elif level == 0:
        parts = parts[1:]
    return any(p == "conftest" or p.startswith("test_") for p in parts)


def forbidden_imports(source: str, filename: str = "<string>") -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a test module or conftest in ``source``."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_test_module(alias.name):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            prefix = "." * node.level + base
            if _is_test_module(base, node.level):
                yield node.lineno, prefix
                continue
            if node.level == 0 and base.count(".") > 1:
                continue  # names of a module (tests.support.x), not submodules of a package
            for alias in node.names:  # from tests.e2e import test_aiprovider
                if _is_test_module(f"{base}.{alias.name}", node.level):
                    yield node.lineno, f"{prefix}{'.' if base else ''}{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0]
            if (
                name in IMPORT_FUNCTIONS
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and _is_test_module(arg.value)
            ):
                yield node.lineno, arg.value


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50, f"found only {len(files)} files under {TESTS}"
    problems = [
        f"{path.relative_to(TESTS.parent)}:{line}: imports {module}"
        for path in files
        for line, module in forbidden_imports(path.read_text(), str(path))
    ]
    assert not problems, (
        "shared helpers belong in tests/support/ (fixtures stay in conftest.py):\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize(
    "source",
    [
        "from tests.e2e.test_aiprovider import PLURAL, apply_provider",
        "from tests.unit.test_api_crd_drift import _walk",
        "from tests.e2e.conftest import (\n    GROUP,\n    VERSION,\n)",
        "from tests.conftest import repo_root",
        "import tests.e2e.test_gatewaykey",
        "import tests.e2e.test_gatewaykey as gk",
        "import tests.integration.conftest",
        "from tests.e2e import test_chart_operator",
        "from tests.faults import conftest",
        "from .conftest import GROUP",
        "from . import test_aiprovider",
        "import conftest",
        "from test_aiprovider import PLURAL",
        "def f():\n    from tests.e2e.test_aiprovider import PLURAL",
        "importlib.import_module('tests.e2e.test_aiprovider')",
    ],
)
def test_the_check_catches_every_form(source: str) -> None:
    assert list(forbidden_imports(source)), source


@pytest.mark.parametrize(
    "source",
    [
        "from tests.support.operator import GROUP, VERSION, custom",
        "from tests.support import metrics",
        "import tests.support.wait",
        "from aigateway_operator.api.aiprovider import PLURAL",
        "from tools.devenv.helm import ensure_helm",
        "import pytest",
        "pytest_plugins = ['tests.support.operator']",
    ],
)
def test_the_check_passes_support_imports(source: str) -> None:
    assert not list(forbidden_imports(source)), source


def test_the_check_names_the_line() -> None:
    source = "import os\n\nfrom tests.e2e.test_gatewaykey import rows\n"
    assert list(forbidden_imports(source)) == [(3, "tests.e2e.test_gatewaykey")]
