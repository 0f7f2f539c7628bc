"""What ``/readyz`` says about this replica being the active one while the process stops: a
terminating pod must not look active next to its successor once it runs no pass."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from aigateway_operator.operator.app import OperatorApp

pytestmark = pytest.mark.unit


@dataclass
class Runner:
    running: bool = False

    def idle(self) -> bool:
        return not self.running


@dataclass
class Controller:
    runner: Runner

    async def watch_drift(self) -> None:
        """Started by an active replica (not under test here): waits until cancelled."""
        await asyncio.Event().wait()


def app_with(*runners: Runner) -> OperatorApp:
    app = OperatorApp.__new__(OperatorApp)
    app._providers, app._gateway_keys = (Controller(r) for r in runners)  # type: ignore[assignment]
    app._exiting = False
    app._drift_watch = None  # the drift watch (started by set_active) is not under test here
    app.active = True
    return app


def test_an_idle_replica_told_to_exit_is_no_longer_active() -> None:
    app = app_with(Runner(), Runner())
    app.exiting()
    assert app.active is False
    # A watch event still arriving while kopf stops does not make it active again.
    app.set_active(True)
    assert app.active is False


def test_a_replica_with_a_pass_running_stays_active_until_it_ends() -> None:
    busy = Runner(running=True)
    app = app_with(Runner(), busy)
    app.exiting()
    assert app.active is True, "a pass still runs: the replica is still acting"
    busy.running = False
    app.exiting()  # the next daemon to stop finds every pass ended
    assert app.active is False


async def test_pausing_by_peering_is_not_exiting() -> None:
    app = app_with(Runner(), Runner())
    app.set_active(False)
    app.set_active(True)  # peering resumed this replica
    assert app.active is True
    app.set_active(False)  # and the drift watch it started is cancelled again
    assert app._drift_watch is None
