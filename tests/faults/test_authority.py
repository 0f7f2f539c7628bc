"""Authority (#23): a Secret's value goes only where its owner allowed it, and a forged status
changes nothing. Tenants are real ServiceAccounts acting with their own TokenRequest tokens
(``tests/support/tenancy.py``): an **AIProvider-only** user, who may not read Secrets but may
edit AIProviders and write their status (a status writer).

- A Secret opted in for the AIProvider ``team`` only (no hosts): the tenant re-points the
  provider's ``baseURL`` at a host of its own. The key never reaches a row with that URL;
  the status says ``SecretNotFound``, word for word what a missing Secret gets.
- A Secret opted in with ``*`` (the README's example, no hosts): the tenant's own AIProvider
  with its own ``baseURL`` gets the same answer; at the type's default endpoint it works.
- A status writer sets ``observedGeneration`` ahead, then changes the spec: under ``Revert``
  the write is audited as the spec's (``unknown``: no admission webhook here, with the
  reason), never ``aigateway-operator (drift revert)``, and no ``DriftReverted`` is posted;
  under ``Report`` the spec change is written, not reported as ``Drifted``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from tests.support.operator import (
    OperatorProcess,
    condition,
    custom,
    get_obj,
    make_secret,
    wait_condition,
)
from tests.support.tenancy import (
    GROUP,
    VERSION,
    db_rows,
    key_count,
    provider_row,
    providers_only,
    wait_schema,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults

P = "aiproviders"
KEY = "sk-authority-KKKKKKKKKKKKKKKKKKKKKKKK-000k"
ATTACKER = "https://attacker.example/v1"
ALLOWED_AIPROVIDERS = "aigateway.dev/allowed-aiproviders"
ALLOWED_HOSTS = "aigateway.dev/allowed-hosts"


def started(factory: Callable[..., OperatorProcess]) -> OperatorProcess:
    op = factory()
    wait_schema(op.database_url)
    return op


def as_admin(k8s_api: client.ApiClient, ns: str, name: str, spec: dict[str, Any]) -> None:
    """The platform team (who may read the Secret) makes the provider that uses it."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": spec,
    }
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, ns, P, body)


def openai(secret: str, **extra: Any) -> dict[str, Any]:
    return {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": secret, "key": "k"}}], **extra}


def rows_sent_to(dsn: str, host: str) -> list[tuple[Any, ...]]:
    """Every provider row (live or not) whose base URL names ``host``, with its key count."""
    return db_rows(
        dsn,
        "SELECT p.name, p.base_url, count(k.id) FROM ai_providers p "
        "LEFT JOIN ai_provider_keys k ON k.provider_id = p.id "
        "WHERE p.base_url ILIKE %s GROUP BY p.name, p.base_url",
        (f"%{host}%",),
    )


def not_found_message(obj: dict[str, Any]) -> str:
    found = condition(obj, "SecretsResolved")
    assert found is not None
    return str(found["message"])


def test_repointing_a_named_providers_base_url_never_carries_its_key_away(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = started(operator_factory)
    author = providers_only(k8s_api, namespace)
    make_secret(k8s_api, namespace, "team-keys", {"k": KEY},
                annotations={ALLOWED_AIPROVIDERS: "team"})  # fmt: skip
    assert not author.can_read_secret("team-keys"), "the author is denied get secrets"
    as_admin(k8s_api, namespace, "team", openai("team-keys"))
    ready = wait_condition(k8s_api, namespace, P, "team", "Ready")
    row = provider_row(op.database_url, "team")
    assert row is not None
    assert row[2] == "https://api.openai.com/v1/"

    # The tenant, allowed AIProviders only, points the named provider at its own host.
    author.patch(P, "team", {"spec": {"baseURL": ATTACKER}})
    refused = wait_condition(k8s_api, namespace, P, "team", "SecretsResolved", "False",
                             "SecretNotFound")  # fmt: skip
    assert refused["metadata"]["generation"] == ready["metadata"]["generation"] + 1
    # The words a missing Secret gets, nothing more.
    as_admin(k8s_api, namespace, "missing", openai("no-such-secret", baseURL=ATTACKER))
    missing = wait_condition(k8s_api, namespace, P, "missing", "SecretsResolved", "False",
                             "SecretNotFound")  # fmt: skip
    assert not_found_message(refused).replace("team-keys", "no-such-secret") == (
        not_found_message(missing)
    )
    assert rows_sent_to(op.database_url, "attacker.example") == []
    assert provider_row(op.database_url, "team") == row, "the row keeps its own endpoint"
    assert key_count(op.database_url, row[0]) == 1

    # The Secret's owner allows a host of theirs: the same tenant may point the provider there.
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "team-keys",
        namespace,
        {"metadata": {"annotations": {ALLOWED_HOSTS: "llm.internal:8443"}}},
    )
    author.patch(P, "team", {"spec": {"baseURL": "https://llm.internal:8443/v1"}})
    wait_condition(k8s_api, namespace, P, "team", "Ready")
    moved = provider_row(op.database_url, "team")
    assert moved is not None
    assert moved[2] == "https://llm.internal:8443/v1"
    assert key_count(op.database_url, moved[0]) == 1
    assert rows_sent_to(op.database_url, "attacker.example") == []


def test_a_secret_open_to_every_provider_goes_only_to_the_types_own_endpoint(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = started(operator_factory)
    author = providers_only(k8s_api, namespace)
    # The README's example: every AIProvider of the namespace, no hosts named.
    make_secret(k8s_api, namespace, "shared", {"k": KEY},
                annotations={ALLOWED_AIPROVIDERS: "*"})  # fmt: skip
    assert not author.can_read_secret("shared")
    for name, spec in {
        "mine": {**openai("shared"), "type": "openai-compat", "baseURL": ATTACKER},
        "mine-openai": openai("shared", baseURL=ATTACKER),
        "mine-userinfo": openai("shared", baseURL="https://api.openai.com@attacker.example/"),
    }.items():
        author.apply(P, name, spec)
        obj = wait_condition(k8s_api, namespace, P, name, "SecretsResolved", "False",
                             "SecretNotFound")  # fmt: skip
        assert "providerID" not in obj.get("status", {}), name
    assert rows_sent_to(op.database_url, "attacker.example") == []
    # At the type's own default endpoint the opted-in Secret is used.
    author.apply(P, "at-home", openai("shared"))
    wait_condition(k8s_api, namespace, P, "at-home", "Ready")
    home = provider_row(op.database_url, "at-home")
    assert home is not None
    assert home[2] == "https://api.openai.com/v1/"
    assert key_count(op.database_url, home[0]) == 1


def _events(k8s_api: client.ApiClient, ns: str, name: str) -> list[str]:
    listed = client.CoreV1Api(k8s_api).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}"
    )
    return [e.reason for e in listed.items]


def _last_write_actor(dsn: str, name: str) -> dict[str, Any] | None:
    rows = db_rows(
        dsn,
        "SELECT additional_fields FROM audit_logs WHERE resource_type = 'ai_provider' "
        "AND resource_target = %s AND action = 'write' ORDER BY \"time\" DESC LIMIT 1",
        (name,),
    )
    return dict(rows[0][0]["kubernetes"]) if rows else None


@pytest.mark.parametrize("policy", ["Revert", "Report"])
def test_a_forged_observed_generation_neither_disguises_nor_stops_a_spec_change(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
    policy: str,
) -> None:
    op = started(operator_factory)
    writer = providers_only(k8s_api, namespace, sa="status-writer")
    make_secret(k8s_api, namespace, "keys", {"k": KEY})
    as_admin(k8s_api, namespace, "p", openai("keys", displayName="Before", driftPolicy=policy))
    obj = wait_condition(k8s_api, namespace, P, "p", "Ready")
    generation = obj["metadata"]["generation"]

    # The status writer claims the next generation was already applied ...
    forged = [{**c, "observedGeneration": generation + 1} for c in obj["status"]["conditions"]]
    writer.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, P, "p",
        {"status": {"observedGeneration": generation + 1, "conditions": forged}},
    )  # fmt: skip
    wait_for(
        lambda: (
            get_obj(k8s_api, namespace, P, "p")["status"].get("observedGeneration")
            == generation + 1
        ),
        30,
        "the forged status to be stored",
    )
    # ... then changes the spec.
    writer.patch(P, "p", {"spec": {"displayName": "After"}})

    def written() -> bool:
        row = provider_row(op.database_url, "p")
        return row is not None and row[3] == "After"

    wait_for(written, 60, "the spec change to reach Coder's row")
    wait_for(lambda: "Updated" in _events(k8s_api, namespace, "p"), 60, "the Updated Event")
    reasons = _events(k8s_api, namespace, "p")
    assert "DriftReverted" not in reasons
    assert "Drifted" not in reasons
    actor = _last_write_actor(op.database_url, "p")
    assert actor is not None
    assert actor["actor_source"] != "operator"
    assert (actor["actor"], actor["actor_source"]) == ("unknown", "unknown")
    assert "admission webhook is off" in actor["actor_reason"]
    assert actor["generation"] == generation + 1
