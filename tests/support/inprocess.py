"""The operator in-process: kopf's ``operator()`` on a thread of the test process, with our
registry, against the real API server and a real Postgres 15 database (envtest style).

Because it runs in the test's process, a test can look inside it: the log records it emits
(``caplog``), its metrics, and the calls it makes (``monkeypatch`` a store method to count
them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigateway_operator.config import Settings
from aigateway_operator.operator import main
from tests.support.operator import fresh_database
from tools.devenv.coder_schema import prepare_coder_database

__all__ = ["InProcess", "inprocess_settings", "k8s_ref_name", "open_sockets", "running"]


def open_sockets(loop: asyncio.AbstractEventLoop) -> list[str]:
    """The socket transports of ``loop`` whose socket is not closed (the selector loop's
    table of them)."""
    table = getattr(loop, "_transports", {})
    return [
        f"{t!r} to {t.get_extra_info('peername')}"
        for t in list(table.values())
        if t.get_extra_info("socket").fileno() != -1
    ]


class InProcess:
    """The operator on a thread with its own event loop; stopped through kopf's stop flag.

    Stopping fails if the operator's loop ended with a connection open, and collects garbage
    at once: anything unclosed it dropped warns (an error under ``filterwarnings = error``) in
    the test that stopped it, never in whatever test happens to run next."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_flag = threading.Event()
        self.result: list[int] = []
        self.left_open: list[str] = []
        self.thread = threading.Thread(target=self._run, name="operator-under-test")

    def _run(self) -> None:
        with asyncio.Runner() as runner:
            loop = runner.get_loop()
            self.result.append(
                runner.run(main(self.settings, stop_flag=self.stop_flag, configure_logging=False))
            )
            # What main() left open: a socket still saying goodbye when main() returns.
            self.left_open = open_sockets(loop)
        # And what the loop's own teardown (cancelling leftover tasks) left open.
        self.left_open += open_sockets(loop)

    def start(self) -> InProcess:
        self.thread.start()
        return self

    def stop(self) -> int:
        self.stop_flag.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the operator did not stop"
        assert self.left_open == [], "the operator's loop ended with connections open"
        gc.collect()
        return self.result[0]


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[InProcess]:
    """The operator running for the ``with`` block; stopped after it (exit code 0, nothing
    left open) unless the test stopped it itself."""
    op = InProcess(settings).start()
    try:
        yield op
    finally:
        if op.thread.is_alive():
            assert op.stop() == 0


def inprocess_settings(
    kubeconfig: Path,
    postgres: Any,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> Settings:
    """Settings of an in-process operator watching ``namespace`` with a fresh database."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    values: dict[str, Any] = {
        "database_url": fresh_database(postgres),
        "encryption_keys": base64.b64encode(secrets.token_bytes(32)).decode(),
        "namespaces": namespace,
        "health_port": 0,
        "metrics_port": 0,
        "drift_debounce_s": 0.1,
    }
    values.update(overrides)
    settings = Settings(**values)
    # coderd has the operator's primary key registered (tools/devenv/coder_schema.py).
    prepare_coder_database(settings.require_database_url(), settings.encryption_key_bytes()[:1])
    return settings


def k8s_ref_name(record: Any) -> str | None:
    """The object a log record of ours is about (``controllers.shared.log_ref``), if any."""
    ref = getattr(record, "k8s_ref", None)
    return str(ref.get("name")) if isinstance(ref, dict) else None
