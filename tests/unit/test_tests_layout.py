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


# --- A unit test is named for the module it tests -----------------------------------------
#
# The rule (docs/development.md, "Tests"): ``tests/unit/test_<module>.py`` tests
# ``src/aigateway_operator/<module>.py``, its path written with ``_`` for ``/``
# (``controllers/runner.py`` -> ``test_controllers_runner.py``); a second file about the same
# module adds a topic after it (``test_controllers_gatewaykey_state_grace.py``). A unit test
# of something outside the package starts with the area it tests instead.

SRC = TESTS.parent / "src" / "aigateway_operator"
#: Areas outside the package: the chart (deploy/helm), the rest of deploy/, the wheel, the
#: README and docs, the local-environment tooling (tools/devenv), tests/support, this suite.
AREAS = ("chart", "deploy", "packaging", "readme", "devenv", "support", "tests")


def module_names() -> set[str]:
    """Every module and package of the product, as a unit test's name writes it."""
    names = set()
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add("_".join(parts))
    return names


def misnamed(files: list[str], modules: set[str]) -> list[str]:
    """The unit test files whose name starts with no module's name and no area's."""
    prefixes = sorted(modules | set(AREAS), key=len, reverse=True)
    return [
        f
        for f in files
        if not any(
            f.removeprefix("test_").removesuffix(".py") == p
            or f.removeprefix("test_").startswith(p + "_")
            for p in prefixes
        )
    ]


def test_the_naming_rule_accepts_a_module_with_a_topic_and_refuses_a_made_up_name() -> None:
    modules = {"controllers_runner", "store", "store_plan", "kube"}
    assert misnamed(
        [
            "test_controllers_runner.py",
            "test_store_plan_digest.py",
            "test_kube.py",
            "test_chart_crds.py",
            "test_runner.py",  # not a module's full path
            "test_controllers_runnerx.py",  # not a name boundary
        ],
        modules,
    ) == ["test_runner.py", "test_controllers_runnerx.py"]


def test_every_unit_test_is_named_for_the_module_or_area_it_tests() -> None:
    files = sorted(p.name for p in (TESTS / "unit").glob("test_*.py"))
    assert len(files) > 40, files
    wrong = misnamed(files, module_names())
    assert not wrong, (
        "name a unit test for the module it tests (test_controllers_runner.py tests "
        "controllers/runner.py; a topic may follow) or for one of the areas "
        f"{', '.join(AREAS)}: {wrong}"
    )
