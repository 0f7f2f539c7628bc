"""The typed Kubernetes API of the operator: spec/status models and the condition vocabulary.

The CRDs in ``crds/`` are the contract; these models mirror them (a unit test keeps the two
in step). The kinds' names (group, version, kind, plural) are in :mod:`.identity` only.
Importing this package has no side effects and pulls in no Kubernetes client.
"""

from aigateway_operator.api.aiprovider import (
    DEFAULT_BEDROCK_MODEL,
    DEFAULT_BEDROCK_SMALL_FAST_MODEL,
    AIProviderSpec,
    AIProviderStatus,
    APIKeySource,
    APIKeyStatus,
    AWSCredentialsSecretRef,
    BedrockIdentityStatus,
    BedrockProtocol,
    BedrockSpec,
    CoderOwnedField,
    CoderOwnedStatus,
    DeletionPolicy,
    DriftPolicy,
    InvalidSpecError,
    InvalidStatusError,
    ProviderType,
)
from aigateway_operator.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    SecretKeyRef,
)

__all__ = [
    "DEFAULT_BEDROCK_MODEL",
    "DEFAULT_BEDROCK_SMALL_FAST_MODEL",
    "AIProviderSpec",
    "AIProviderStatus",
    "APIKeySource",
    "APIKeyStatus",
    "AWSCredentialsSecretRef",
    "BedrockIdentityStatus",
    "BedrockProtocol",
    "BedrockSpec",
    "CoderOwnedField",
    "CoderOwnedStatus",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "DeletionPolicy",
    "DriftPolicy",
    "InvalidSpecError",
    "InvalidStatusError",
    "ProviderType",
    "Reason",
    "SecretKeyRef",
]
