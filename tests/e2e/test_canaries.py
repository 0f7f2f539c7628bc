"""Canaries at the loudest verbosity: the operator runs with ``--verbose`` (debug logging,
kopf's included) through every path a value travels (API keys created and rotated, Bedrock
static keys with a role and an external id verified against STS, a bad value reported, a
gateway key issued and rotated), and no planted value shows up in its log, the objects'
status, the Events, the metrics page or Coder's database (where values are encrypted or
hashed)."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable

import pytest
from kubernetes import client

from tests.support.gatewaykeys import PLURAL as KEYS
from tests.support.gatewaykeys import apply_key, patch_key, secret_value, wait_secret_changes
from tests.support.leaks import database_text, raw_get, strings
from tests.support.operator import GROUP, VERSION, OperatorProcess, make_secret, wait_condition
from tests.support.providers import PLURAL, apply_provider, openai_spec, provider_keys
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e


def _canary(prefix: str, n: int = 32, alphabet: str = string.ascii_letters + string.digits) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def test_no_value_leaks_at_debug_verbosity(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(
        args=("--verbose",), metrics=True, extra_env={"AIGW_HEARTBEAT_INTERVAL_S": "5"}
    )
    key_a, key_b, key_b2 = _canary("sk-cA-"), _canary("sk-cB-"), _canary("sk-cB2-")
    akid = _canary("AKIA", 16, string.ascii_uppercase + string.digits)
    aws_secret = _canary("", 38, string.ascii_letters + string.digits + "/+") + "aZ"
    bad = _canary("sk-bad-")
    make_secret(k8s_api, namespace, "llm-keys", {"a": key_a, "b": key_b})
    make_secret(
        k8s_api, namespace, "aws", {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": aws_secret}
    )
    make_secret(k8s_api, namespace, "bad-keys", {"a": bad + "\n"})
    apply_provider(k8s_api, namespace, "openai-main", openai_spec("a", "b"))
    apply_provider(
        k8s_api,
        namespace,
        "claude",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-east-1",
                "roleARN": "arn:aws:iam::210987654321:role/BedrockInvoke",
                "externalID": "coder-ext-canary",
                "credentialsSecretRef": {"name": "aws"},
            },
        },
    )
    apply_provider(k8s_api, namespace, "broken", openai_spec("a", secret="bad-keys"))
    apply_key(k8s_api, namespace, "gw", {"rotation": {"gracePeriod": "5s"}})

    obj = wait_condition(k8s_api, namespace, PLURAL, "openai-main", "Ready")
    wait_condition(k8s_api, namespace, PLURAL, "claude", "Ready")
    wait_condition(
        k8s_api, namespace, PLURAL, "broken", "SecretsResolved", "False", "InvalidSecretValue"
    )
    wait_condition(k8s_api, namespace, KEYS, "gw", "Ready")
    first_key = secret_value(k8s_api, namespace, "gw-key")
    assert first_key is not None

    # Values travel again: an API key rotated, the gateway key rotated.
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "llm-keys", namespace, {"stringData": {"b": key_b2}}
    )
    pid = obj["status"]["providerID"]
    wait_for(lambda: provider_keys(op, pid) == [key_a, key_b2], 60, "the rotated key written")
    patch_key(k8s_api, namespace, "gw", {"spec": {"rotation": {"generation": 1}}})
    second_key = wait_secret_changes(k8s_api, namespace, "gw-key", first_key, timeout=60)
    wait_condition(k8s_api, namespace, KEYS, "gw", "Issued", reason="Issued", timeout=60)

    canaries = [key_a, key_b, key_b2, akid, aws_secret, bad, first_key, second_key]
    log = op.log()
    assert "DEBUG" in log, "the operator did not log at debug level"
    objects = "".join(
        raw_get(k8s_api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}")
        for plural in (PLURAL, KEYS)
    )
    events = raw_get(k8s_api, f"/api/v1/namespaces/{namespace}/events")
    decoded = [*strings(json.loads(events))]
    for plural in (PLURAL, KEYS):
        raw = raw_get(k8s_api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}")
        decoded += strings(json.loads(raw))
    places = {
        "log": log,
        "objects": objects,
        "events": events,
        "metrics": op.metrics(),
        "database": database_text(op.database_url),
    }
    for canary in canaries:
        for needle in (canary, canary[5:25]):
            for where, text in places.items():
                assert needle not in text, f"a planted value is in the {where}"
            assert not [s for s in decoded if needle in s], "a planted value is in a string"
    # What STS answers (the role's temporary credentials, minted by the STS server, so not a
    # value the test knows) never reaches the log either: no response body, no credential
    # field, whatever botocore would print at DEBUG.
    for marker in ("SessionToken", "SecretAccessKey", "<AssumeRoleResponse", "ASIA"):
        assert marker not in log, f"{marker} is in the log"
    assert op.alive()
