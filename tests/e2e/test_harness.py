"""The operator harness can fail: an operator that exits on its own, a log that is not
there (processes, no services: an operator with a wrong configuration exits at once)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.support.operator import OperatorProcess, UnexpectedExit, kill_storm

pytestmark = pytest.mark.e2e


def _exits_at_once(tmp_path: Path) -> OperatorProcess:
    """An operator whose configuration is wrong: it exits with code 2 at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    env["AIGW_DATABASE_URL"] = "not a connection string"
    return OperatorProcess(
        env=env, log_path=tmp_path / "op.log", database_url="", encryption_key=b""
    )


def test_an_exit_nobody_caused_fails_stop_kill_and_start(tmp_path: Path) -> None:
    op = _exits_at_once(tmp_path)
    with pytest.raises(FileNotFoundError):
        op.log()  # never started: no log, not an empty one
    op.start()
    assert op.proc is not None
    op.proc.wait(60)
    with pytest.raises(UnexpectedExit, match="exited on its own with code 2"):
        op.kill()
    assert "configuration error" in op.log()
    op.start()
    op.proc.wait(60)
    with pytest.raises(UnexpectedExit):
        op.stop()
    op.start()
    op.proc.wait(60)
    with pytest.raises(UnexpectedExit):
        op.start()


def test_an_expected_exit_is_awaited_and_a_storm_reports_every_crash(tmp_path: Path) -> None:
    op = _exits_at_once(tmp_path)
    op.start()
    assert op.wait_exit(60) == 2
    assert op.stop() == 2  # accounted for: nothing to report
    op.start()
    # Each run dies on its own before the storm's kill: every one is reported.
    crashes = kill_storm(op, 2, random.Random(0), up_s=(30.0, 30.0), start_timeout=60)
    assert len(crashes) == 2
    assert all("exited on its own with code 2" in c for c in crashes)
    assert op.wait_exit(60) == 2
