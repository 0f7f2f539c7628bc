"""The tiers of a run: their order, and each test's durations (a pytest plugin, loaded by
the root conftest).

**Order.** The tiers run in the order of :data:`TIERS`, the unit tier first: a unit failure
shows in the first minute of ``make test``, not after the node tests. Within a tier the
collection order is kept.

**Durations.** ``--durations-file PATH`` (``scripts/pytest.sh`` passes
``.test-results/durations.txt``, so every ``make test`` writes it) records each test's setup,
call and teardown seconds, its outcome and tier, slowest first, with the totals per tier at
the top. Setup is where the
shared environments start (the first test to ask for the node pays for it), so it is shown
apart from the test's own time. The file is rewritten at the end of each run that asks for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["TIERS", "pytest_collection_modifyitems", "tier_of"]

#: The tiers in the order a run executes them.
TIERS = ("unit", "integration", "e2e", "faults")


def tier_of(item: pytest.Item) -> str:
    """The tier marker of ``item`` (the first of :data:`TIERS` it carries), else ``other``."""
    for tier in TIERS:
        if item.get_closest_marker(tier) is not None:
            return tier
    return "other"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {tier: i for i, tier in enumerate(TIERS)}
    items.sort(key=lambda item: rank.get(tier_of(item), len(TIERS)))  # stable: keeps file order


@dataclass
class _Entry:
    tier: str
    phases: dict[str, float] = field(default_factory=dict)
    outcome: str = "passed"

    @property
    def total(self) -> float:
        return sum(self.phases.values())


class DurationsFile:
    def __init__(self, path: Path, args: list[str]) -> None:
        self.path = path
        self.args = args
        self.entries: dict[str, _Entry] = {}
        self.tiers: dict[str, str] = {}
        self.started = time.time()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.tiers = {item.nodeid: tier_of(item) for item in items}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.entries.setdefault(
            report.nodeid, _Entry(tier=self.tiers.get(report.nodeid, "other"))
        )
        entry.phases[report.when] = report.duration
        if report.failed:
            entry.outcome = "error" if report.when != "call" else "failed"
        elif report.skipped and entry.outcome == "passed":
            entry.outcome = "skipped"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        wall = time.time() - self.started
        entries = sorted(self.entries.items(), key=lambda kv: kv[1].total, reverse=True)
        lines = [
            "# Per-test durations of the last run (setup + call + teardown), slowest first.",
            f"# pytest {' '.join(self.args)}",
            f"# finished {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {len(entries)} tests; "
            f"{wall:.1f} s wall clock",
        ]
        for tier in (*TIERS, "other"):
            of_tier = [e for _, e in entries if e.tier == tier]
            if of_tier:
                lines.append(
                    f"# {tier:<12} {len(of_tier):>5} tests {sum(e.total for e in of_tier):>9.1f} s"
                )
        lines.append(
            f"{'total_s':>9} {'setup_s':>9} {'call_s':>9} {'teardown_s':>10}  "
            f"{'outcome':<8} {'tier':<12} test"
        )
        for nodeid, e in entries:
            p = e.phases
            lines.append(
                f"{e.total:>9.2f} {p.get('setup', 0.0):>9.2f} {p.get('call', 0.0):>9.2f} "
                f"{p.get('teardown', 0.0):>10.2f}  {e.outcome:<8} {e.tier:<12} {nodeid}"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(self.path)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_line(f"per-test durations: {self.path}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--durations-file",
        metavar="PATH",
        default=None,
        help="write every test's setup/call/teardown seconds there, slowest first",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--durations-file")
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(
            DurationsFile(Path(path).resolve(), list(config.invocation_params.args)),
            "aigw-durations-file",
        )
