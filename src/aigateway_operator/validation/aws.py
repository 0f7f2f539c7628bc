"""Prove that the AWS identity a Bedrock provider will use actually works: the only boto3 user.

Coder fails late and quietly on bad Bedrock credentials: the gateway builds the provider and
only the first user request gets the AWS error. The operator runs the same two steps Coder's
runtime depends on (reference §8.2), ahead of time, and reports the outcome as a condition:

1. ``GetCallerIdentity`` with the *base* identity: the static keys from the spec's Secret, or
   else boto3's default chain (IRSA web identity via ``AWS_ROLE_ARN`` /
   ``AWS_WEB_IDENTITY_TOKEN_FILE``, environment, shared files, instance metadata). This never
   needs IAM permissions, so a failure means the identity itself is missing or invalid.
2. ``AssumeRole`` into ``spec.bedrock.roleARN`` (with ``ExternalId`` when set), exactly as
   Coder will. A failure here is the role's trust policy or the caller's permissions.

Endpoints are chosen only through the standard AWS environment (``AWS_ENDPOINT_URL_STS``,
``AWS_REGION`` ...), never by parameters here, so the code path under test is the production
path. The function is blocking; callers run it in a worker thread.

Secrets: credential values never appear in a verdict. AWS error messages can echo access key
ids and tokens, so every message from botocore is scrubbed before it is used.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from aigateway_operator.api.aiprovider import ROLE_ARN_PATTERN
from aigateway_operator.api.common import Reason
from aigateway_operator.masking import mask_secret
from aigateway_operator.validation.identity import StaticCredentials, Verdict, VerdictReason

if TYPE_CHECKING:
    from mypy_boto3_sts.client import STSClient

__all__ = [
    "SESSION_NAME",
    "StaticCredentials",
    "Verdict",
    "scrub",
    "verify_bedrock_identity",
]

#: Shows up in CloudTrail as the session name of every verification.
SESSION_NAME = "aigw-operator-verify"
#: The shortest session STS allows: we only prove the role can be assumed.
SESSION_SECONDS = 900
MAX_MESSAGE_CHARS = 1024

#: STS region when neither the spec nor the environment names one: the partition's home.
_PARTITION_REGIONS = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}

#: Error codes that mean the base identity is missing, malformed, expired or unknown to AWS.
_BASE_IDENTITY_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "InvalidAccessKeyId",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidIdentityToken",
        "IDPRejectedClaim",
    }
)
#: Error codes worth retrying: the request may succeed later unchanged.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "IDPCommunicationError",
    }
)


# -- message scrubbing -----------------------------------------------------------------------

#: AWS unique ids and access key ids: ``A`` + three letters + base32-ish body.
_KEY_ID = re.compile(r"\b(?:A[A-Z]{3})[A-Z0-9]{12,124}\b")
#: A secret access key: 40 base64-alphabet characters standing alone.
_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
#: A JWT (web identity tokens).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _looks_random(s: str) -> bool:
    return (
        any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s)
    )


def scrub(message: str, known_secrets: tuple[str, ...] = ()) -> str:
    """Remove credential material from an AWS error message.

    Known values are replaced first (whole secrets by ``[redacted]``); then anything shaped
    like an access key id is masked with Coder's rule (the same form Coder shows for keys),
    anything shaped like a secret access key or a JWT is redacted outright. The result is
    truncated to :data:`MAX_MESSAGE_CHARS`.
    """
    for secret in sorted((s for s in known_secrets if s), key=len, reverse=True):
        message = message.replace(secret, "[redacted]")
    message = _JWT.sub("[redacted-token]", message)
    message = _SECRET_KEY.sub(
        lambda m: "[redacted]" if _looks_random(m.group(0)) else m.group(0), message
    )
    message = _KEY_ID.sub(lambda m: mask_secret(m.group(0)), message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return message


# -- verification ----------------------------------------------------------------------------


def _partition(arn: str) -> str:
    parts = arn.split(":", 2)
    return parts[1] if len(parts) > 2 else ""


def _failure(
    reason: VerdictReason,
    message: str,
    caller_arn: str | None = None,
    account_id: str | None = None,
) -> Verdict:
    return Verdict(
        ok=False, reason=reason, message=message, caller_arn=caller_arn, account_id=account_id
    )


def _classify(
    exc: Exception, step: str, *, denied: VerdictReason, secrets: tuple[str, ...]
) -> Verdict:
    """Map a boto exception raised during ``step`` to a verdict with a scrubbed message."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return _failure(
            Reason.NO_BASE_IDENTITY,
            "no AWS credentials found: spec.bedrock.credentialsSecretRef is not set and the "
            "default chain (IRSA web identity, environment, shared files, instance metadata) "
            "found none",
        )
    if isinstance(exc, HTTPClientError):  # connection refused, DNS, timeouts
        return _failure(
            Reason.STS_UNAVAILABLE,
            f"STS unreachable during {step}: {scrub(str(exc), secrets)}",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        detail = scrub(str(error.get("Message", "")), secrets)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{step} failed ({code}): {detail}".rstrip(": ")
        if code in _RETRYABLE_CODES or status >= 500 or status == 429:
            return _failure(Reason.STS_UNAVAILABLE, text)
        if code in _BASE_IDENTITY_CODES:
            return _failure(Reason.NO_BASE_IDENTITY, f"base AWS identity rejected: {text}")
        if code == "ValidationError" and denied is Reason.ACCESS_DENIED:
            return _failure(Reason.INVALID_ROLE_ARN, text)
        return _failure(denied, text)
    if isinstance(exc, CredentialRetrievalError | OSError):
        # The web identity exchange (IRSA) failed, or its token file could not be read
        # (botocore lets that OSError through): the base identity is unusable.
        return _failure(
            Reason.NO_BASE_IDENTITY,
            f"could not obtain base AWS credentials: {scrub(str(exc), secrets)}",
        )
    return _failure(
        Reason.STS_UNAVAILABLE,
        f"{step} failed ({type(exc).__name__}): {scrub(str(exc), secrets)}",
    )


def verify_bedrock_identity(
    region: str | None,
    role_arn: str | None,
    external_id: str | None,
    static_credentials: StaticCredentials | None,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
    max_attempts: int = 3,
) -> Verdict:
    """Verify the base identity and, when ``role_arn`` is given, that it can assume the role.

    ``static_credentials`` are used alone when given (the environment's identity is ignored,
    exactly as Coder does with access keys in its settings); otherwise boto3's default chain.
    The STS region is ``region``, else the environment's, else the role partition's home
    region. Timeouts and attempts bound the call so a reconcile never hangs on AWS.
    """
    secrets: tuple[str, ...] = ()
    if static_credentials is not None:
        secrets = (static_credentials.secret_access_key, static_credentials.access_key_id)
    if role_arn is not None and not re.fullmatch(ROLE_ARN_PATTERN, role_arn):
        return _failure(
            Reason.INVALID_ROLE_ARN,
            "spec.bedrock.roleARN is not an IAM role ARN "
            "(expected arn:<aws|aws-cn|aws-us-gov>:iam::<12 digits>:role/<path/name>)",
        )
    try:
        if static_credentials is not None:
            session = boto3.session.Session(
                aws_access_key_id=static_credentials.access_key_id,
                aws_secret_access_key=static_credentials.secret_access_key,
                region_name=region,
            )
        else:
            session = boto3.session.Session(region_name=region)
        sts_region = (
            region
            or session.region_name
            or _PARTITION_REGIONS.get(_partition(role_arn or ""), "us-east-1")
        )
        config = Config(
            region_name=sts_region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
        )
        client: STSClient = session.client("sts", config=config)
    except BotoCoreError as exc:  # malformed shared config and the like
        return _classify(exc, "AWS session setup", denied=Reason.NO_BASE_IDENTITY, secrets=secrets)

    try:
        identity = client.get_caller_identity()
    except (BotoCoreError, ClientError, OSError) as exc:
        return _classify(exc, "GetCallerIdentity", denied=Reason.NO_BASE_IDENTITY, secrets=secrets)
    caller_arn = identity.get("Arn")
    account_id = identity.get("Account")

    if role_arn is None:
        return Verdict(
            ok=True,
            reason=Reason.VERIFIED,
            message=f"AWS identity {caller_arn} verified (no roleARN to assume)",
            caller_arn=caller_arn,
            account_id=account_id,
        )
    if caller_arn and _partition(caller_arn) != _partition(role_arn):
        return _failure(
            Reason.INVALID_ROLE_ARN,
            f"spec.bedrock.roleARN is in partition {_partition(role_arn)!r} but the base "
            f"identity {caller_arn} is in {_partition(caller_arn)!r}",
            caller_arn,
            account_id,
        )

    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": SESSION_NAME,
        "DurationSeconds": SESSION_SECONDS,
    }
    if external_id:
        params["ExternalId"] = external_id
    try:
        assumed = client.assume_role(**params)
    except (BotoCoreError, ClientError, OSError) as exc:
        verdict = _classify(
            exc, f"AssumeRole on {role_arn}", denied=Reason.ACCESS_DENIED, secrets=secrets
        )
        message = verdict.message
        if verdict.reason is Reason.ACCESS_DENIED:
            message += (
                f" (check that the role's trust policy allows {caller_arn}"
                f"{' with this externalID' if external_id else ''} and that the caller may "
                "call sts:AssumeRole on it)"
            )
        return _failure(verdict.reason, message, caller_arn, account_id)
    # Only the ARN and expiry are kept; the temporary credentials are dropped here.
    return Verdict(
        ok=True,
        reason=Reason.VERIFIED,
        message=f"{caller_arn} can assume {role_arn}",
        caller_arn=caller_arn,
        assumed_role_arn=assumed["AssumedRoleUser"]["Arn"],
        account_id=account_id,
        expiration=assumed["Credentials"]["Expiration"].astimezone(UTC),
    )
