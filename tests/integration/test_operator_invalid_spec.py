"""An AIProvider whose ``metadata.name`` is no Coder provider name and that has no
``spec.providerName``, on the running operator (in-process, real API server and Postgres).

The CRD's root rule rejects such an object today; one stored before that rule existed (or
applied where the CRD lacks it) still reaches the operator. This test takes the rule out of
the CRD for its duration to store one, as an older CRD would have. The operator must say
``Synced=False, InvalidSpec`` naming the fields, write nothing, log no traceback, and not
retry (the pass once raised here: a traceback and exponential-backoff retries).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from aigateway_operator.api.identity import AIPROVIDER
from aigateway_operator.config import Settings
from tests.support.inprocess import InProcess, inprocess_settings, k8s_ref_name, running
from tests.support.operator import condition, get_obj, make_secret, wait_condition
from tests.support.paths import repo_root
from tests.support.wait import wait_for
from tools.devenv.crds import apply_crds

pytestmark = pytest.mark.integration

KEY = "sk-invalid-name-AAAAAAAAAAAAAAAA-0001"
PLURAL = AIPROVIDER.plural
CRD = f"{PLURAL}.{AIPROVIDER.group}"
BAD_NAME = "team.openai"  # a valid object name, not a valid Coder provider name


@pytest.fixture
def settings(
    kubeconfig: Path, postgres: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    return inprocess_settings(kubeconfig, postgres, namespace, monkeypatch)


@pytest.fixture
def operator(settings: Settings) -> Iterator[InProcess]:
    with running(settings) as op:
        yield op


@pytest.fixture
def crd_without_name_rule(k8s_api: client.ApiClient, kubeconfig: Path) -> Iterator[None]:
    """The AIProvider CRD as it was before its ``metadata.name`` rule; put back afterwards."""
    ext = client.ApiextensionsV1Api(k8s_api)
    crd = k8s_api.sanitize_for_serialization(ext.read_custom_resource_definition(CRD))
    relaxed = copy.deepcopy(crd)
    for version in relaxed["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        rules = schema.get("x-kubernetes-validations") or []
        schema["x-kubernetes-validations"] = [
            r for r in rules if "metadata.name" not in r["rule"]
        ] or None
    ext.replace_custom_resource_definition(CRD, relaxed)
    try:
        yield
    finally:
        apply_crds(kubeconfig, repo_root() / "crds")


def body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": AIPROVIDER.api_version,
        "kind": AIPROVIDER.kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def provider_names(settings: Settings) -> list[str]:
    with psycopg.connect(settings.require_database_url(), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM ai_providers ORDER BY name")]


def test_an_invalid_metadata_name_is_reported_once_without_a_traceback(
    crd_without_name_rule: None,
    operator: InProcess,
    settings: Settings,
    k8s_api: client.ApiClient,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aigateway_operator")
    objects = client.CustomObjectsApi(k8s_api)
    spec = {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "llm", "key": "a"}}]}
    make_secret(k8s_api, namespace, "llm", {"a": KEY})

    def stored() -> bool:  # the API server applies the relaxed CRD a moment later
        try:
            objects.create_namespaced_custom_object(
                AIPROVIDER.group, AIPROVIDER.version, namespace, PLURAL, body(BAD_NAME, spec)
            )
        except client.ApiException as exc:
            if exc.status == 422:
                return False
            raise
        return True

    wait_for(stored, 30, f"AIProvider {BAD_NAME} stored without the name rule")

    def synced() -> dict[str, Any] | None:
        return condition(get_obj(k8s_api, namespace, PLURAL, BAD_NAME), "Synced")

    found = wait_for(synced, 60, "a Synced condition on the invalid object")
    assert (found["status"], found["reason"]) == ("False", "InvalidSpec")
    assert found["message"].startswith("metadata.name must be a valid Coder provider name")
    assert "spec.providerName" in found["message"]
    ready = condition(get_obj(k8s_api, namespace, PLURAL, BAD_NAME), "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")

    # A valid provider after it: the operator went on working (and time went by in which a
    # retrying pass would have run again: its first retry was due after 2 s).
    objects.create_namespaced_custom_object(
        AIPROVIDER.group, AIPROVIDER.version, namespace, PLURAL, body("after", spec)
    )
    wait_condition(k8s_api, namespace, PLURAL, "after", "Ready", timeout=60)
    assert provider_names(settings) == ["after"]  # nothing written for the invalid one

    mine = [r for r in caplog.records if k8s_ref_name(r) == BAD_NAME]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in mine if r.levelno >= logging.ERROR]
    passes = [r for r in mine if "pass done" in r.getMessage()]
    assert len(passes) == 1, [r.getMessage() for r in mine]

    # Its deletion reads the same spec: released, the finalizer removed.
    objects.delete_namespaced_custom_object(
        AIPROVIDER.group, AIPROVIDER.version, namespace, PLURAL, BAD_NAME
    )

    def gone() -> bool:
        try:
            get_obj(k8s_api, namespace, PLURAL, BAD_NAME)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, 60, f"AIProvider {BAD_NAME} released by its finalizer")
