"""No credential in a log at any verbosity (issue 14): the operator's logging setup, run as
``aigateway-operator run --verbose`` runs it, caps every third-party logger that can print
requests, responses or connection parameters at WARNING, so their DEBUG lines (botocore's
signed requests and STS responses, urllib3's and the kubernetes client's requests, psycopg's
connection parameters) reach no handler. The e2e canaries (tests/e2e/test_canaries.py)
prove it for a running process; this pins the setup itself, in both log formats.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from aigateway_operator.config import LogFormat, Settings
from aigateway_operator.operator import CAPPED_LOGGERS, setup_logging
from tests.support.logs import Capture, kept_logging

pytestmark = pytest.mark.unit

#: A fake secret access key, as botocore would print it in a DEBUG line.
CANARY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY0001"
#: Loggers below the capped ones that the libraries log to (their levels are NOTSET, so the
#: cap on the parent is what stops them).
CHILDREN = (
    "botocore.endpoint",
    "botocore.auth",
    "botocore.parsers",
    "botocore.hooks",
    "botocore.credentials",
    "boto3.resources.action",
    "urllib3.connectionpool",
    "kubernetes.client.rest",
    "psycopg.pool",
    "psycopg.conninfo",
    "aiohttp.client",
)


@pytest.fixture(params=[LogFormat.TEXT, LogFormat.JSON], ids=["text", "json"])
def verbose(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[Capture]:
    """The operator's logging at its highest verbosity, and a handler on the root logger."""
    settings = Settings(
        database_url="postgresql://u:p@localhost/coder",  # type: ignore[call-arg]
        log_format=request.param,
    )
    capsys.readouterr()  # capsys first: kopf's handler streams to the sys.stderr it finds
    with kept_logging((*CAPPED_LOGGERS, *CHILDREN)):
        setup_logging(settings, verbose=True)
        capture = Capture()
        logging.getLogger().addHandler(capture)
        yield capture


def test_verbose_means_debug_for_the_operator(verbose: Capture) -> None:
    """The premise: ``--verbose`` is DEBUG, and the operator's own DEBUG lines get out."""
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("aigateway_operator.store").debug("our own debug line")
    assert [r.getMessage() for r in verbose.records] == ["our own debug line"]


@pytest.mark.parametrize("name", [*CAPPED_LOGGERS, *CHILDREN])
def test_third_party_loggers_are_capped_at_warning(verbose: Capture, name: str) -> None:
    assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING


def test_a_botocore_debug_line_with_a_credential_reaches_no_handler(
    verbose: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    """What botocore does at DEBUG: the request it sends (with the Authorization header) and
    the STS response it parses (with the temporary credentials). Neither reaches a handler,
    on the root logger (``verbose``) or kopf's (its stream is stderr); a WARNING still does."""
    for name in ("botocore.endpoint", "botocore.parsers", *CAPPED_LOGGERS):
        logging.getLogger(name).debug(
            "Response body: <SecretAccessKey>%s</SecretAccessKey>", CANARY
        )
        logging.getLogger(name).info("Sending http request: Authorization: %s", CANARY)
    assert [r.getMessage() for r in verbose.records] == []
    assert CANARY not in capsys.readouterr().err
    logging.getLogger("botocore.credentials").warning("Refreshing temporary credentials failed")
    assert [r.name for r in verbose.records] == ["botocore.credentials"]
    assert "Refreshing temporary credentials failed" in capsys.readouterr().err
