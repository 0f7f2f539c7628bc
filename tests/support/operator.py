"""End-to-end fixtures: the operator as a subprocess (as in a pod) against the real pieces.

``operator_factory`` starts ``aigateway-operator run`` with a fresh database of its own,
encryption on, the loopback STS in its AWS environment, and the admin kubeconfig; the log
is captured to a file so tests can assert that no secret ever reaches it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.support.metrics import scrape
from tests.support.wait import wait_for
from tools.devenv.coder_schema import prepare_coder_database
from tools.devenv.postgres import PostgresServer
from tools.devenv.procs import free_port
from tools.devenv.sts import StsServer

GROUP, VERSION = "aigateway.dev", "v1alpha1"
#: What the operator logs once it has opened Coder's database and starts its passes.
WORKING = "connected to Coder's database"


class UnexpectedExit(AssertionError):
    """The operator exited although the test did not stop or kill it."""


@dataclass
class OperatorProcess:
    """A running operator and what it was given.

    Every exit is accounted for: :meth:`stop` and :meth:`kill` are the exits a test causes,
    :meth:`wait_exit` the one a test expects (and then asserts on). An exit nobody caused
    (a crash on start-up, a crash loop hidden by a restart) fails the test: :meth:`stop`,
    :meth:`kill` and :meth:`start` raise :class:`UnexpectedExit` when they find the process
    already gone, and the fixture's teardown does the same for the last run.
    """

    env: dict[str, str] = field(repr=False)
    log_path: Path
    database_url: str = field(repr=False)
    encryption_key: bytes = field(repr=False)
    args: tuple[str, ...] = ()
    metrics_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    """How many times the process was started."""
    _accounted: bool = True
    """Whether the current (or last) process's exit was caused or expected by the test."""
    _run_offset: int = 0
    """Where the current run's output starts in the log."""

    def start(self) -> None:
        self._check_exit()
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self._run_offset = log.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aigateway_operator.cli", "run", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.runs += 1
        self._accounted = False

    def _check_exit(self) -> None:
        """Raise if the last process exited without the test causing or expecting it."""
        if self.proc is None or self._accounted:
            return
        code = self.proc.poll()
        if code is not None:
            self._accounted = True  # reported once
            raise UnexpectedExit(
                f"the operator exited on its own with code {code} (run {self.runs}); "
                f"see {self.log_path}"
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait for the exit; return the exit code.

        SIGTERM is a graceful stop: a working operator must exit 0 within ``timeout``.
        """
        assert self.proc is not None, "never started"
        if self._accounted:
            code = self.proc.poll()
            assert code is not None
            return code
        self._check_exit()
        self.proc.send_signal(sig)
        self._accounted = True
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"the operator did not exit within {timeout}s of signal {sig}"
            ) from None
        # A run still starting (importing, not yet connected) has no handler for SIGTERM
        # yet and dies of it (-15), with nothing to clean up; once working, it must exit 0.
        starting = code == -signal.SIGTERM and WORKING not in self.log_of_this_run()
        if sig == signal.SIGTERM and code != 0 and not starting:
            raise AssertionError(f"the operator exited with code {code} after SIGTERM")
        return code

    def kill(self) -> None:
        """SIGKILL (fails if the process had already exited on its own)."""
        self.stop(signal.SIGKILL)

    def wait_exit(self, timeout: float = 60) -> int:
        """Wait for an exit the test expects (a refusal to start); return its code."""
        assert self.proc is not None, "never started"
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the operator did not exit within {timeout}s") from None
        self._accounted = True
        return code

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the process for the block, SIGCONT after: meanwhile it runs nothing,
        writes nothing and reconnects nothing, so what the block does happens, provably,
        while the operator is between two steps."""
        assert self.alive(), "not running"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        """The whole log so far. A missing log fails (an empty one would pass every canary)."""
        if not self.log_path.exists():
            raise FileNotFoundError(f"no operator log at {self.log_path}: never started?")
        return self.log_path.read_text(errors="replace")

    def log_of_this_run(self) -> str:
        """What the current (or last) run logged."""
        with self.log_path.open("rb") as fh:
            fh.seek(self._run_offset)
            return fh.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        """The /metrics page (start the operator with ``metrics=True``)."""
        assert self.metrics_port is not None, "started without metrics=True"
        return scrape(self.metrics_port)


def kill_storm(
    op: OperatorProcess,
    kills: int,
    rng: random.Random,
    between: Callable[[int], None] = lambda _: None,
    up_s: tuple[float, float] = (0.05, 1.0),
    after: str = WORKING,
    start_timeout: float = 120,
) -> list[str]:
    """SIGKILL ``op`` ``kills`` times and start it again after each; ``between(i)`` runs
    while it is down after kill ``i``. Each kill comes a random ``up_s`` after the run
    logged ``after`` (it is working, not still importing), so the kills land among its
    passes. Returns every exit the storm did not cause (a crash on start-up, a crash
    mid-pass): the caller asserts there were none."""
    unexpected: list[str] = []
    for i in range(kills):
        deadline = time.monotonic() + start_timeout
        while op.alive() and after not in op.log_of_this_run():
            if time.monotonic() > deadline:
                raise AssertionError(f"run {op.runs} did not log {after!r} in {start_timeout}s")
            time.sleep(0.02)  # polling the log, bounded by the deadline above
        deadline = time.monotonic() + rng.uniform(*up_s)
        while time.monotonic() < deadline and op.alive():
            time.sleep(0.01)  # bounded by the random deadline: this is the fault schedule
        try:
            op.kill()
        except UnexpectedExit as exc:
            unexpected.append(f"before kill {i + 1}: {exc}")
        between(i)
        op.start()
    return unexpected


def fresh_database(postgres: PostgresServer) -> str:
    """A new database (owned by the test role) with Coder's schema, as coderd leaves it
    (``tools/devenv/coder_schema.py``; no key registered yet), and its DSN."""
    name = f"op_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.superuser_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER aigw")
    dsn = postgres.dsn.replace("/coder?", f"/{name}?")
    prepare_coder_database(dsn)
    return dsn


def operator_env(
    kubeconfig: Path, sts: StsServer, dsn: str, key: bytes, namespaces: list[str]
) -> dict[str, str]:
    """The environment of an operator process as the tests run it: this host's environment
    without AWS_/AIGW_ variables, the loopback STS, a fresh database, no fixed ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIGW_"))}
    env.update(sts.env())
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "AIGW_DATABASE_URL": dsn,
            "AIGW_ENCRYPTION_KEYS": base64.b64encode(key).decode(),
            "AIGW_HEALTH_PORT": "0",
            # Several operators share this host (pods would not): no fixed ports.
            "AIGW_METRICS_PORT": "0",
            "AIGW_DRIFT_DEBOUNCE_S": "0.1",
            "AIGW_NAMESPACES": ",".join(namespaces),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def operator_factory(
    kubeconfig: Path,
    postgres: PostgresServer,
    sts: StsServer,
    tmp_path: Path,
    namespace: str,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., OperatorProcess]]:
    """Operators watch only the test's namespace by default (``namespaces=`` to change it),
    so objects other tests left behind never reach this test's database."""
    started: list[OperatorProcess] = []

    def make(
        extra_env: dict[str, str] | None = None,
        database_url: str | None = None,
        encryption_key: bytes | None = None,
        start: bool = True,
        namespaces: list[str] | None = None,
        args: tuple[str, ...] = (),
        metrics: bool = False,
        coderd_has_key: bool = True,
    ) -> OperatorProcess:
        """``args`` go to ``aigateway-operator run`` (``--verbose``); ``metrics`` serves
        /metrics on a free port (:meth:`OperatorProcess.metrics`). ``coderd_has_key``: the
        operator's primary key is registered in ``dbcrypt_keys`` first, as coderd registers
        the key it is given (False: the operator gets a key coderd does not have)."""
        key = encryption_key or secrets.token_bytes(32)
        dsn = database_url or fresh_database(postgres)
        env = operator_env(kubeconfig, sts, dsn, key, namespaces or [namespace])
        port = free_port() if metrics else None
        if port is not None:
            env["AIGW_METRICS_PORT"] = str(port)
        env.update(extra_env or {})
        if coderd_has_key and env.get("AIGW_ENCRYPTION_KEYS"):
            primary = base64.b64decode(env["AIGW_ENCRYPTION_KEYS"].split(",")[0])
            prepare_coder_database(dsn, [primary])
        op = OperatorProcess(
            env=env,
            log_path=tmp_path / f"operator-{len(started)}.log",
            database_url=dsn,
            encryption_key=key,
            args=tuple(args),
            metrics_port=port,
        )
        if start:
            op.start()
        started.append(op)
        return op

    yield make
    problems = []
    for i, op in enumerate(started):
        if op.proc is None:
            continue
        try:
            op.stop()
        except AssertionError as exc:  # an unexpected exit, or a stop that failed
            problems.append(f"operator {i}: {exc}")
    report = getattr(request.node, "rep_call", None)
    if problems or (report is not None and report.failed):
        # The operator's log is secret-free by contract (tests assert it), so show its tail.
        for i, op in enumerate(started):
            if op.log_path.exists():
                tail = "\n".join(op.log().splitlines()[-80:])
                print(f"\n----- operator {i} log (last 80 lines) -----\n{tail}")
    if problems:
        pytest.fail("; ".join(problems))


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def get_obj(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def wait_condition(
    api: client.ApiClient,
    namespace: str,
    plural: str,
    name: str,
    type_: str,
    status: str = "True",
    reason: str | None = None,
    timeout: float = 120,  # an upper bound for loaded machines; passing runs take seconds
) -> dict[str, Any]:
    """Wait until the object's condition has this status (and reason); return the object."""

    def check() -> dict[str, Any] | None:
        obj = get_obj(api, namespace, plural, name)
        c = condition(obj, type_)
        gen = obj["metadata"].get("generation")
        if (
            c
            and c.get("status") == status
            and (reason is None or c.get("reason") == reason)
            and c.get("observedGeneration") == gen
        ):
            return obj
        return None

    return wait_for(check, timeout, f"{plural}/{name} {type_}={status} {reason or ''}")


#: What a Secret carries to let AIProviders use it (``*``: any AIProvider of its namespace)
#: and send its values to any host (``*``; without it only the type's default endpoint).
ALLOW_ALL = {"aigateway.dev/allowed-aiproviders": "*", "aigateway.dev/allowed-hosts": "*"}


def make_secret(
    api: client.ApiClient,
    namespace: str,
    name: str,
    data: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> client.V1Secret:
    """A Secret as a user makes one; by default it lets every AIProvider of its namespace
    use it (``annotations={}`` for one that does not)."""
    meta = client.V1ObjectMeta(
        name=name, annotations=ALLOW_ALL if annotations is None else annotations or None
    )
    return client.CoreV1Api(api).create_namespaced_secret(
        namespace, client.V1Secret(metadata=meta, string_data=data)
    )
