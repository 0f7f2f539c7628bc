"""Checks the CRD cannot express: Secret contents (:mod:`.rules`) and AWS identity (:mod:`.aws`).

:mod:`.aws` is imported lazily by its callers (``from aigateway_operator.validation import
aws``): it is the only module that imports boto3, and pure users of :mod:`.rules` should not
pay for loading it.
"""

from aigateway_operator.validation.rules import (
    MAX_SECRET_VALUE_BYTES,
    Finding,
    KeyRef,
    SecretValue,
    check_api_keys,
    check_aws_static_credentials,
    check_secret_text,
)

__all__ = [
    "MAX_SECRET_VALUE_BYTES",
    "Finding",
    "KeyRef",
    "SecretValue",
    "check_api_keys",
    "check_aws_static_credentials",
    "check_secret_text",
]
