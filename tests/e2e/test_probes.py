"""The probes of the real process through a database outage: Postgres down before the
operator starts, then up, then down again and back. Liveness never fails (a restart fixes
no outage); startup waits for the first connection; readiness follows the database."""

from __future__ import annotations

import json
import secrets
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.operator import OperatorProcess
from tests.support.wait import wait_for
from tools.devenv.coder_schema import prepare_coder_database
from tools.devenv.postgres import PostgresServer
from tools.devenv.procs import free_port

pytestmark = pytest.mark.e2e


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A Postgres of this test's own, so it can be stopped without touching others'."""
    server = PostgresServer.start(Path(tempfile.mkdtemp(prefix="aigw-test-probes-")))
    try:
        yield server
    finally:
        server.stop()


def test_liveness_survives_database_outages_and_readiness_follows_them(
    operator_factory: Callable[..., OperatorProcess], private_postgres: PostgresServer
) -> None:
    db = private_postgres
    key = secrets.token_bytes(32)
    prepare_coder_database(db.dsn, [key])  # what coderd left there before the outage
    db.stop(remove=False)  # down before the operator starts
    port = free_port()
    op = operator_factory(
        database_url=db.dsn,
        encryption_key=key,
        coderd_has_key=False,  # registered above, while the database was up
        extra_env={"AIGW_HEALTH_PORT": str(port)},
    )

    def status(path: str) -> int:
        try:
            return probe(port, path)[0]
        except (urllib.error.URLError, ConnectionError):
            return -1  # not listening yet

    wait_for(lambda: status("/healthz") == 200, 60, "/healthz while the database is down")
    assert status("/startupz") == 503
    code, body = probe(port, "/readyz")
    assert (code, body["database"], body["started"]) == (503, "down", False)

    db.start_again()
    wait_for(lambda: status("/startupz") == 200, 120, "/startupz after the first connection")
    wait_for(lambda: status("/readyz") == 200, 60, "/readyz with the database up")

    db.stop(remove=False)  # an outage after start
    wait_for(lambda: status("/readyz") == 503, 60, "/readyz reporting the outage")
    assert status("/healthz") == 200, "liveness stays up through the outage"
    assert status("/startupz") == 200, "started stays started"
    assert op.alive()

    db.start_again()
    wait_for(lambda: status("/readyz") == 200, 60, "/readyz after the outage")
    assert op.alive()
