"""verify_bedrock_identity against moto's STS/IAM on loopback, selected only via AWS_* env.

Two servers: the session's permissive ``sts`` (any credentials work; good for the IRSA and
no-credentials paths) and a module-scoped one with IAM enforcement, where trust policies and
identity policies decide AssumeRole as they do on AWS. moto enforces after the first
``INITIAL_NO_AUTH_ACTION_COUNT`` requests, which we spend exactly on setting up the IAM user
and roles (see moto's IAM docs on INITIAL_NO_AUTH_ACTION_COUNT).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from kubernetes import client

from aigateway_operator.api import Reason
from aigateway_operator.validation.aws import (
    SESSION_NAME,
    StaticCredentials,
    Verdict,
    scrub,
    verify_bedrock_identity,
)
from tests.support.rbac import sa_token
from tools.devenv.sts import DEFAULT_REGION, StsServer

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's default account
#: Setup calls made against the enforcing server before enforcement starts; see ``iam``.
SETUP_CALLS = 7


@dataclass(frozen=True)
class IamWorld:
    server: StsServer
    user_arn: str
    credentials: StaticCredentials
    trusting_role: str
    untrusting_role: str
    external_id_role: str
    external_id: str


def _clear_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS identity anywhere: no env keys, empty shared files, no instance metadata."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", DEFAULT_REGION)


def _point_at(monkeypatch: pytest.MonkeyPatch, server: StsServer) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", server.endpoint)


def _trust(principal_arn: str, external_id: str | None = None) -> str:
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal_arn},
        "Action": "sts:AssumeRole",
    }
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture(scope="module")
def iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamWorld]:
    """An enforcing moto server with a user, its keys, and three roles.

    Exactly :data:`SETUP_CALLS` requests are made here; every later request is
    authenticated and authorised by moto.
    """
    server = StsServer.start(
        tmp_path_factory.mktemp("sts-iam"),
        extra_env={"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)},
    )
    try:
        admin = boto3.client(
            "iam",
            endpoint_url=server.endpoint,
            region_name=DEFAULT_REGION,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        user = admin.create_user(UserName="aigw-operator")["User"]  # 1
        admin.put_user_policy(  # 2: the user may try to assume any role
            UserName="aigw-operator",
            PolicyName="assume-any",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
                }
            ),
        )
        key = admin.create_access_key(UserName="aigw-operator")["AccessKey"]  # 3
        other = admin.create_user(UserName="someone-else")["User"]  # 4
        trusting = admin.create_role(  # 5
            RoleName="bedrock-trusting", AssumeRolePolicyDocument=_trust(user["Arn"])
        )["Role"]
        untrusting = admin.create_role(  # 6: trusts another principal only
            RoleName="bedrock-untrusting", AssumeRolePolicyDocument=_trust(other["Arn"])
        )["Role"]
        external_id = "tenant-7f3a"
        with_external_id = admin.create_role(  # 7
            RoleName="bedrock-external-id",
            AssumeRolePolicyDocument=_trust(user["Arn"], external_id),
        )["Role"]
        yield IamWorld(
            server=server,
            user_arn=user["Arn"],
            credentials=StaticCredentials(key["AccessKeyId"], key["SecretAccessKey"]),
            trusting_role=trusting["Arn"],
            untrusting_role=untrusting["Arn"],
            external_id_role=with_external_id["Arn"],
            external_id=external_id,
        )
    finally:
        server.stop()


@pytest.fixture
def enforcing_env(iam: IamWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> IamWorld:
    """Only the enforcing endpoint in the environment; credentials come from the spec."""
    _clear_aws_env(monkeypatch, tmp_path)
    _point_at(monkeypatch, iam.server)
    return iam


def assert_secret_free(verdict: Verdict, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in verdict.message
        assert secret not in repr(verdict)


def test_enforcement_is_on(enforcing_env: IamWorld) -> None:
    """Guards the setup-call count: a key moto does not know must be refused now."""
    verdict = verify_bedrock_identity(
        DEFAULT_REGION,
        None,
        None,
        StaticCredentials("AKIAUNKNOWNKEY000000", "x" * 40),
    )
    assert verdict.reason is Reason.NO_BASE_IDENTITY, verdict
    assert "InvalidClientTokenId" in verdict.message
    assert "AKIAUNKNOWNKEY000000" not in verdict.message


def test_static_keys_assume_trusting_role(enforcing_env: IamWorld) -> None:
    world = enforcing_env
    before = datetime.now(UTC)
    verdict = verify_bedrock_identity(DEFAULT_REGION, world.trusting_role, None, world.credentials)
    assert verdict.ok, verdict.message
    assert verdict.reason is Reason.VERIFIED
    assert verdict.caller_arn == world.user_arn
    assert verdict.account_id == ACCOUNT
    assert verdict.assumed_role_arn == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/bedrock-trusting/{SESSION_NAME}"
    )
    assert verdict.expiration is not None
    assert verdict.expiration > before
    assert not verdict.retryable
    status = verdict.to_status(before)
    assert status.assumed_role_arn == verdict.assumed_role_arn
    assert_secret_free(
        verdict, world.credentials.secret_access_key, world.credentials.access_key_id
    )


def test_static_keys_without_role_verify_the_base_identity(enforcing_env: IamWorld) -> None:
    verdict = verify_bedrock_identity(None, None, None, enforcing_env.credentials)
    assert verdict.ok, verdict.message
    assert verdict.caller_arn == enforcing_env.user_arn
    assert verdict.assumed_role_arn is None


def test_untrusted_caller_is_access_denied(enforcing_env: IamWorld) -> None:
    world = enforcing_env
    verdict = verify_bedrock_identity(
        DEFAULT_REGION, world.untrusting_role, None, world.credentials
    )
    assert not verdict.ok
    assert verdict.reason is Reason.ACCESS_DENIED, verdict.message
    assert not verdict.retryable
    assert verdict.caller_arn == world.user_arn
    assert "AssumeRole" in verdict.message
    assert "trust policy" in verdict.message
    assert_secret_free(
        verdict, world.credentials.secret_access_key, world.credentials.access_key_id
    )


def test_external_id_is_passed(enforcing_env: IamWorld) -> None:
    world = enforcing_env
    ok = verify_bedrock_identity(
        DEFAULT_REGION, world.external_id_role, world.external_id, world.credentials
    )
    assert ok.ok, ok.message
    # moto ignores a condition whose key is absent from the request (AWS would deny), so a
    # missing ExternalId cannot be tested here; a wrong one is denied only if it was sent.
    wrong = verify_bedrock_identity(
        DEFAULT_REGION, world.external_id_role, "some-other-id", world.credentials
    )
    assert wrong.reason is Reason.ACCESS_DENIED
    assert "externalID" in wrong.message


def test_wrong_secret_is_no_base_identity_and_not_echoed(enforcing_env: IamWorld) -> None:
    world = enforcing_env
    bad_secret = "Zz9" + world.credentials.secret_access_key[3:]
    creds = StaticCredentials(world.credentials.access_key_id, bad_secret)
    verdict = verify_bedrock_identity(DEFAULT_REGION, world.trusting_role, None, creds)
    assert verdict.reason is Reason.NO_BASE_IDENTITY, verdict.message
    assert "SignatureDoesNotMatch" in verdict.message
    assert_secret_free(verdict, bad_secret, world.credentials.secret_access_key)
    assert world.credentials.access_key_id not in verdict.message


def test_irsa_web_identity_without_static_keys(
    sts: StsServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    """The IRSA path, as EKS sets it up: a projected ServiceAccount token (here a real one,
    issued by the local API server for audience sts.amazonaws.com) in
    AWS_WEB_IDENTITY_TOKEN_FILE plus AWS_ROLE_ARN, no static keys; the operator's own
    verification runs with it."""
    client.CoreV1Api(k8s_api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
    )
    jwt = sa_token(k8s_api, namespace, "operator", audience="sts.amazonaws.com")
    assert jwt.startswith("eyJ")
    _clear_aws_env(monkeypatch, tmp_path)
    _point_at(monkeypatch, sts)
    token = tmp_path / "token"
    token.write_text(jwt)
    monkeypatch.setenv("AWS_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/aigw-operator-irsa")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "irsa-session")
    # The default chain takes the web-identity path, nothing else (there is nothing else).
    credentials = boto3.Session().get_credentials()
    assert credentials is not None
    assert credentials.method == "assume-role-with-web-identity"

    target = "arn:aws:iam::210987654321:role/cross-account/BedrockAccess"
    verdict = verify_bedrock_identity("eu-west-1", target, "ext-123", None)
    assert verdict.ok, verdict.message
    assert verdict.caller_arn == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/aigw-operator-irsa/irsa-session"
    )
    assert verdict.account_id == ACCOUNT
    assert verdict.assumed_role_arn is not None
    assert verdict.assumed_role_arn.startswith(
        f"arn:aws:sts::210987654321:assumed-role/BedrockAccess/{SESSION_NAME}"
    )
    for text in (verdict.message, repr(verdict)):
        assert jwt not in text
        assert jwt.split(".")[1] not in text

    # The same chain with the token file gone cannot verify: the token was what it used.
    token.unlink()
    verdict = verify_bedrock_identity("eu-west-1", target, "ext-123", None)
    assert not verdict.ok
    assert verdict.reason is Reason.NO_BASE_IDENTITY, verdict.message


def test_no_credentials_anywhere_is_no_base_identity(
    sts: StsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clear_aws_env(monkeypatch, tmp_path)
    _point_at(monkeypatch, sts)
    verdict = verify_bedrock_identity(
        "us-east-1", f"arn:aws:iam::{ACCOUNT}:role/BedrockRole", None, None
    )
    assert not verdict.ok
    assert verdict.reason is Reason.NO_BASE_IDENTITY
    assert not verdict.retryable
    assert "no AWS credentials found" in verdict.message


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed when the socket is


def test_unreachable_sts_is_retryable(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{_closed_port()}")
    secret = aws_env["AWS_SECRET_ACCESS_KEY"]
    verdict = verify_bedrock_identity(
        "us-east-1",
        f"arn:aws:iam::{ACCOUNT}:role/BedrockRole",
        None,
        StaticCredentials("AKIAIOSFODNN7EXAMPLE", secret),
        connect_timeout=1.0,
        read_timeout=1.0,
        max_attempts=2,
    )
    assert verdict.reason is Reason.STS_UNAVAILABLE, verdict.message
    assert verdict.retryable
    assert "GetCallerIdentity" in verdict.message
    assert_secret_free(verdict, secret, "AKIAIOSFODNN7EXAMPLE")


def test_env_credentials_from_the_default_chain(aws_env: dict[str, str]) -> None:
    verdict = verify_bedrock_identity(None, f"arn:aws:iam::{ACCOUNT}:role/BedrockRole", None, None)
    assert verdict.ok, verdict.message
    assert_secret_free(verdict, aws_env["AWS_SECRET_ACCESS_KEY"])


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::123456789012:user/not-a-role",
        "arn:aws:s3:::bucket",
        "BedrockRole",
        "arn:aws:iam::12345:role/short-account",
    ],
)
def test_malformed_role_arn_is_rejected_before_calling_aws(role_arn: str) -> None:
    # No AWS env at all: the check must not need the network.
    verdict = verify_bedrock_identity("us-east-1", role_arn, None, None)
    assert verdict.reason is Reason.INVALID_ROLE_ARN
    assert "spec.bedrock.roleARN" in verdict.message


def test_partition_mismatch_is_invalid_role_arn(aws_env: dict[str, str]) -> None:
    verdict = verify_bedrock_identity(
        "us-east-1", "arn:aws-cn:iam::123456789012:role/BedrockRole", None, None
    )
    assert verdict.reason is Reason.INVALID_ROLE_ARN, verdict.message
    assert "partition" in verdict.message


def test_scrub_masks_key_ids_and_redacts_secrets_and_tokens() -> None:
    message = (
        "The AWS Access Key Id AKIAIOSFODNN7EXAMPLE is bad; secret "
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY; token eyJhbGciOi.eyJzdWIi.c2ln; "
        "known my-literal-secret-value"
    )
    out = scrub(message, ("my-literal-secret-value",))
    assert "AKIAIOSFODNN7EXAMPLE" not in out
    assert "AKIA...MPLE" in out  # Coder's masking rule: 20 chars -> 4 each end
    assert "wJalrXUtnFEMI" not in out
    assert "eyJhbGciOi" not in out
    assert "my-literal-secret-value" not in out
    assert "arn:aws:iam::123456789012:role/x" in scrub("arn:aws:iam::123456789012:role/x")
    assert len(scrub("x" * 5000)) == 1024
