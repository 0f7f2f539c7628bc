"""The validating webhook on the real API server: the operator process serves it on loopback
(kopf's WebhookServer, self-signed with ``cryptography``), kopf's managed mode registers it,
and the API server calls it for real creates, updates and ``dryRun=All`` requests.

One operator process serves the whole module (the tests run in file order; the last one
stops it to show the failure policy ``Ignore``). What a tenant sees (denials, warnings, plans)
is seen by one: a ServiceAccount holding ``edit`` in the namespace, our kinds aggregated into
it by the chart's own ClusterRoles, acting with its TokenRequest token (``as_tenant``).
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kubernetes import client

from aigateway_operator import __version__
from tests.support.admission import Answer, objects_path, request
from tests.support.leaks import database_text
from tests.support.operator import (
    GROUP,
    VERSION,
    WORKING,
    OperatorProcess,
    fresh_database,
    make_secret,
    operator_env,
    wait_condition,
)
from tests.support.tenancy import (
    actor_records,
    aggregated_roles,
    db_rows,
    editor,
    providers_only,
    token_of,
)
from tests.support.wait import wait_for
from tools.devenv.coder_schema import prepare_coder_database
from tools.devenv.postgres import PostgresServer
from tools.devenv.procs import free_port
from tools.devenv.sts import StsServer

pytestmark = pytest.mark.e2e

KEY_A = "sk-test-AAAAAAAAAAAAAAAAAAAA-0001"
KEY_B = "sk-test-BBBBBBBBBBBBBBBBBBBB-0002"
KEY_C = "sk-test-CCCCCCCCCCCCCCCCCCCC-0003"
PLAINTEXTS = (KEY_A, KEY_B, KEY_C)


@dataclass
class Served:
    op: OperatorProcess
    namespace: str
    config: str
    api: client.ApiClient


def _provider(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": spec,
    }


def _gateway_key(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIGatewayCoderdKey",
        "metadata": {"name": name},
        "spec": spec,
    }


def _openai(*keys: str, secret: str = "llm-keys", **extra: Any) -> dict[str, Any]:
    return {
        "type": "openai",
        "displayName": "OpenAI",
        "apiKeys": [{"secretKeyRef": {"name": secret, "key": k}} for k in keys],
        **extra,
    }


def _create(s: Served, plural: str, body: dict[str, Any], *, dry_run: bool = False) -> Answer:
    path = objects_path(GROUP, VERSION, s.namespace, plural)
    return request(s.api, "POST", path, body, dry_run=dry_run)


def _no_plaintext(answer: Answer) -> None:
    text = "\n".join(answer.warnings) + answer.message
    for value in PLAINTEXTS:
        assert value not in text


@pytest.fixture(scope="module")
def served(
    kubeconfig: Path, postgres: PostgresServer, sts: StsServer, k8s_api: client.ApiClient
) -> Iterator[Served]:
    """One operator with admission on (managed configuration, failure policy Ignore)."""
    core = client.CoreV1Api(k8s_api)
    namespace = f"t-adm-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    config = f"aigw-{uuid.uuid4().hex[:8]}.aigateway.dev"
    logs = Path(tempfile.mkdtemp(prefix="aigw-test-admission-"))
    key = secrets.token_bytes(32)
    dsn = fresh_database(postgres)
    prepare_coder_database(dsn, [key])  # coderd registered its key, as it does at start
    env = operator_env(kubeconfig, sts, dsn, key, [namespace])
    env.update(
        {
            "AIGW_ADMISSION": "true",
            "AIGW_ADMISSION_ADDR": "127.0.0.1",
            "AIGW_ADMISSION_HOST": "127.0.0.1",
            "AIGW_ADMISSION_PORT": str(free_port()),
            "AIGW_ADMISSION_CONFIG_NAME": config,
        }
    )
    op = OperatorProcess(
        env=env,
        log_path=logs / "operator.log",
        database_url=env["AIGW_DATABASE_URL"],
        encryption_key=key,
    )
    op.start()
    served = Served(op, namespace, config, k8s_api)
    try:
        wait_for(lambda: WORKING in op.log_of_this_run(), 120, "the operator to start")
        # Ready when the API server calls us: a held name is denied (the informer of webhook
        # configurations takes a moment after kopf's patch).
        _coder_made(op, "held-by-coder")
        probe = _provider("probe", _openai("a", providerName="held-by-coder"))
        wait_for(
            lambda: _create(served, "aiproviders", probe, dry_run=True).status == 403,
            60,
            "the API server to call the webhook",
        )
        yield served
    finally:
        try:
            op.stop()
        finally:
            reg = client.AdmissionregistrationV1Api(k8s_api)
            for delete in (
                reg.delete_validating_webhook_configuration,
                reg.delete_mutating_webhook_configuration,
            ):
                try:
                    delete(config)
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise
            core.delete_namespace(namespace)
            if op.log_path.exists():
                print("\n".join(op.log().splitlines()[-60:]))
            shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def as_tenant(served: Served, k8s_api: client.ApiClient) -> Iterator[Served]:
    """The served module as the namespace's editor sees it: every request of a test taking
    this fixture is made with the editor's own token, its rights the chart's alone."""
    with aggregated_roles(k8s_api):
        tenant = editor(k8s_api, served.namespace, sa="tenant")
        yield Served(served.op, served.namespace, served.config, tenant.api)


def _coder_made(op: OperatorProcess, name: str) -> None:
    """A provider made in Coder's UI (no ownership record)."""
    with psycopg.connect(op.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ai_providers (type, name, display_name, base_url) "
            "VALUES ('openai', %s, 'Made in the UI', 'https://api.openai.com/v1/')",
            (name,),
        )


def test_managed_configuration_has_both_kinds_with_failure_policy_ignore(served: Served) -> None:
    reg = client.AdmissionregistrationV1Api(served.api)
    cfg = reg.read_validating_webhook_configuration(served.config)
    hooks = {h.name: h for h in cfg.webhooks}
    assert set(hooks) == {
        f"validate-aiprovider.{served.config}",
        f"validate-aigatewaycoderdkey.{served.config}",
    }
    for hook in hooks.values():
        assert hook.failure_policy == "Ignore"
        assert hook.side_effects == "NoneOnDryRun"
        assert hook.client_config.url.startswith("https://127.0.0.1:")
        assert hook.client_config.ca_bundle
        assert sorted(hook.rules[0].operations) == ["CREATE", "UPDATE"]


def test_create_denied_for_a_name_held_by_a_provider_made_in_coder(as_tenant: Served) -> None:
    served = as_tenant
    make_secret(served.api, served.namespace, "llm-keys", {"a": KEY_A, "b": KEY_B, "c": KEY_C})
    body = _provider("mine", _openai("a", providerName="held-by-coder"))
    answer = _create(served, "aiproviders", body)
    assert answer.status == 403, answer
    assert "spec.providerName 'held-by-coder'" in answer.message
    assert "made in Coder, not by this operator" in answer.message
    assert "Choose another spec.providerName" in answer.message
    _no_plaintext(answer)
    # Denied means not stored.
    got = request(
        served.api, "GET", objects_path(GROUP, VERSION, served.namespace, "aiproviders", "mine")
    )
    assert got.status == 404


def test_missing_secret_is_a_warning_and_the_object_is_created(as_tenant: Served) -> None:
    served = as_tenant
    answer = _create(served, "aiproviders", _provider("waits", _openai("x", secret="later")))
    assert answer.status == 201, answer
    assert any(
        "spec.apiKeys[0].secretKeyRef: Secret 'later' was not found" in w for w in answer.warnings
    ), answer.warnings
    assert answer.plans() == [
        "plan: create provider 'waits' (type openai, keys unknown until the Secrets resolve)"
    ]


def test_dry_run_create_and_update_print_the_plan_masked(as_tenant: Served) -> None:
    served = as_tenant
    # A dry-run create: the plan, and nothing stored.
    body = _provider("openai-main", _openai("a", "b"))
    answer = _create(served, "aiproviders", body, dry_run=True)
    assert answer.status == 201, answer
    assert answer.plans() == [
        "plan: create provider 'openai-main' (type openai, 2 keys: sk-t...0001, sk-t...0002)"
    ]
    _no_plaintext(answer)

    assert _create(served, "aiproviders", body).status == 201
    wait_condition(served.api, served.namespace, "aiproviders", "openai-main", "Ready")

    # kubectl apply --dry-run=server of a changed spec: displayName and one key changed.
    patch = {"spec": {"displayName": "OpenAI (EU)", "apiKeys": _openai("a", "c")["apiKeys"]}}
    path = objects_path(GROUP, VERSION, served.namespace, "aiproviders", "openai-main")
    answer = request(
        served.api,
        "PATCH",
        path,
        patch,
        dry_run=True,
        content_type="application/merge-patch+json",
    )
    assert answer.status == 200, answer
    print("\ndry-run update warnings:\n" + "\n".join(f"Warning: {w}" for w in answer.warnings))
    assert answer.plans() == [
        "plan: update provider 'openai-main': display_name; keys: +1 (sk-t...0003), "
        "-1 (sk-t...0002)"
    ]
    _no_plaintext(answer)
    # Nothing changed in Coder.
    with psycopg.connect(served.op.database_url) as conn:
        row = conn.execute(
            "SELECT display_name FROM ai_providers WHERE name = 'openai-main'"
        ).fetchone()
    assert row == ("OpenAI",)

    # The same spec again (kubectl apply of an unchanged file): not checked, no plan.
    answer = request(
        served.api,
        "PATCH",
        path,
        {"spec": {"displayName": "OpenAI", "enabled": True}},
        dry_run=True,
        content_type="application/merge-patch+json",
    )
    assert answer.status == 200, answer
    assert answer.warnings == []
    # A spec change that changes nothing in Coder.
    answer = request(
        served.api,
        "PATCH",
        path,
        {"spec": {"deletionPolicy": "Orphan"}},
        dry_run=True,
        content_type="application/merge-patch+json",
    )
    assert answer.status == 200, answer
    assert answer.plans() == ["plan: no change to provider 'openai-main'"]


def test_name_claimed_by_another_object_is_denied(as_tenant: Served) -> None:
    served = as_tenant
    body = _provider("second", _openai("a", providerName="openai-main"))
    answer = _create(served, "aiproviders", body, dry_run=True)
    assert answer.status == 403, answer
    assert "spec.providerName 'openai-main'" in answer.message
    assert f"AIProvider {served.namespace}/openai-main" in answer.message


def test_gateway_key_plan_and_foreign_secret_denied(as_tenant: Served) -> None:
    served = as_tenant
    answer = _create(served, "aigatewaycoderdkeys", _gateway_key("gw", {}), dry_run=True)
    assert answer.status == 201, answer
    assert answer.plans() == ["plan: issue key 'gw' into Secret 'gw-key'"]

    make_secret(served.api, served.namespace, "someone-elses", {"key": "not ours"})
    body = _gateway_key("gw2", {"secretName": "someone-elses"})
    answer = _create(served, "aigatewaycoderdkeys", body, dry_run=True)
    assert answer.status == 403, answer
    assert "spec.secretName 'someone-elses'" in answer.message
    assert "not owned by this AIGatewayCoderdKey" in answer.message


def _audit_row(dsn: str, name: str, action: str) -> tuple[Any, ...] | None:
    rows = db_rows(
        dsn,
        "SELECT user_id, user_agent, additional_fields FROM audit_logs "
        "WHERE resource_type = 'ai_provider' AND resource_target = %s AND action = %s "
        'ORDER BY "time" DESC LIMIT 1',
        (name, action),
    )
    return rows[0] if rows else None


def test_the_service_account_that_made_a_change_is_named_in_coders_audit_log(
    served: Served,
) -> None:
    """A ServiceAccount allowed only AIProviders (a namespaced Role, its TokenRequest token;
    and ``get`` on the one Secret it deploys with) creates and edits a provider: Coder's audit
    rows name it; dry runs record nothing; the token is nowhere in the database."""
    ns, dsn = served.namespace, served.op.database_url
    make_secret(served.api, ns, "deployer-keys", {"k": KEY_A})
    deployer = providers_only(served.api, ns, sa="deployer", readable_secrets=["deployer-keys"])
    who = f"system:serviceaccount:{ns}:deployer"
    path = objects_path(GROUP, VERSION, ns, "aiproviders")
    body = _provider("by-deployer", _openai("k", secret="deployer-keys"))

    # A dry run (once the Role binding is in effect): the plan, nothing recorded.
    answers: list[Answer] = []

    def dry_run_admitted() -> bool:
        answers.append(request(deployer.api, "POST", path, body, dry_run=True))
        return answers[-1].status == 201

    wait_for(dry_run_admitted, 30, "the deployer's Role to allow AIProviders")
    assert answers[-1].plans(), answers[-1]
    assert actor_records(dsn, ns, "by-deployer") == []

    created = request(deployer.api, "POST", path, body)
    assert created.status == 201, created
    meta = created.body["metadata"]
    assert meta["generation"] == 1
    # The API server set the uid and generation before validating admission.
    assert actor_records(dsn, ns, "by-deployer") == [(meta["uid"], 1, who)]
    wait_for(
        lambda: _audit_row(dsn, "by-deployer", "create") is not None,
        60,
        "the audit row of the create",
    )
    user_id, agent, extra = _audit_row(dsn, "by-deployer", "create") or ()
    print("\naudit row of the create:\n" + json.dumps(
        {"user_agent": agent, "additional_fields": extra}, indent=2
    ))  # fmt: skip
    assert user_id == uuid.UUID(int=0)  # the nil user: the operator is no Coder user
    assert agent == f"aigateway-operator/{__version__} (kubernetes: {who})"
    k8s = extra["kubernetes"]
    assert (k8s["actor"], k8s["actor_source"]) == (who, "admission")
    assert (k8s["kind"], k8s["namespace"], k8s["name"]) == ("AIProvider", ns, "by-deployer")
    assert (k8s["uid"], k8s["generation"]) == (meta["uid"], 1)
    assert f"system:serviceaccounts:{ns}" in k8s["actor_groups"]

    # An edit: a dry run records nothing, the real one is generation 2 and named too.
    item = objects_path(GROUP, VERSION, ns, "aiproviders", "by-deployer")
    patch = {"spec": {"displayName": "Deployed"}}
    merge = "application/merge-patch+json"
    dry = request(deployer.api, "PATCH", item, patch, dry_run=True, content_type=merge)
    assert dry.status == 200, dry
    assert actor_records(dsn, ns, "by-deployer") == [(meta["uid"], 1, who)]
    assert request(deployer.api, "PATCH", item, patch, content_type=merge).status == 200
    assert actor_records(dsn, ns, "by-deployer")[-1] == (meta["uid"], 2, who)
    wait_for(
        lambda: _audit_row(dsn, "by-deployer", "write") is not None,
        60,
        "the audit row of the edit",
    )
    _, agent, extra = _audit_row(dsn, "by-deployer", "write") or ()
    assert agent == f"aigateway-operator/{__version__} (kubernetes: {who})"
    assert extra["kubernetes"]["generation"] == 2

    # Neither the token nor its signature is stored anywhere.
    token = token_of(deployer)
    text = database_text(dsn)
    assert token not in text
    assert token.rsplit(".", 1)[-1] not in text


def test_only_who_may_read_a_secret_may_point_a_provider_at_it(served: Served) -> None:
    """#23: a ServiceAccount allowed AIProviders but not ``get`` on a Secret (opted in with
    ``*`` for every AIProvider and every host) can neither create a provider using it nor
    re-point the baseURL of one that does: a SubjectAccessReview as the requester says no."""
    ns = served.namespace
    make_secret(served.api, ns, "team-keys", {"k": KEY_B})
    author = providers_only(served.api, ns, sa="author")
    path = objects_path(GROUP, VERSION, ns, "aiproviders")

    # The platform team (the admin, who may read it) makes the provider that uses it.
    named = _create(served, "aiproviders", _provider("team", _openai("k", secret="team-keys")))
    assert named.status == 201, named
    wait_condition(served.api, ns, "aiproviders", "team", "Ready")

    own = _provider("mine", _openai("k", secret="team-keys", type="openai-compat",
                                    baseURL="https://attacker.example/v1"))  # fmt: skip
    answers: list[Answer] = []

    def denied_create() -> bool:  # once the author's Role binding is in effect
        answers.append(request(author.api, "POST", path, own))
        return answers[-1].status == 403

    wait_for(denied_create, 30, "the author's create to reach the webhook")
    message = answers[-1].message
    assert "spec.apiKeys[0].secretKeyRef" in message, message
    assert f"system:serviceaccount:{ns}:author may not get Secret 'team-keys'" in message
    _no_plaintext(answers[-1])

    item = objects_path(GROUP, VERSION, ns, "aiproviders", "team")
    merge = "application/merge-patch+json"
    repoint = {"spec": {"baseURL": "https://attacker.example/v1"}}
    answer = request(author.api, "PATCH", item, repoint, content_type=merge)
    assert answer.status == 403, answer
    assert "may not get Secret 'team-keys'" in answer.message
    # An edit that sends no Secret anywhere new is the author's to make.
    rename = {"spec": {"displayName": "Team"}}
    assert request(author.api, "PATCH", item, rename, content_type=merge).status == 200
    rows = db_rows(served.op.database_url, "SELECT base_url FROM ai_providers WHERE name = 'team'")
    assert rows == [("https://api.openai.com/v1/",)]


def test_operator_down_with_failure_policy_ignore_admits(served: Served) -> None:
    served.op.stop()
    # kopf left the (persistent) webhooks in place: nobody answers at that URL now.
    reg = client.AdmissionregistrationV1Api(served.api)
    cfg = reg.read_validating_webhook_configuration(served.config)
    assert len(cfg.webhooks) == 2
    body = _provider("while-down", _openai("a", providerName="held-by-coder"))
    answer = _create(served, "aiproviders", body)
    assert answer.status == 201, answer
    assert not answer.plans()
