"""The typed Kubernetes API of the operator: spec/status models and the condition vocabulary.

The CRDs in ``crds/`` are the contract; these models mirror them (a unit test keeps the two
in step). Importing this package has no side effects and pulls in no Kubernetes client.
"""

from aigateway_operator.api.aiprovider import (
    API_GROUP,
    API_VERSION,
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
    "API_GROUP",
    "API_VERSION",
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
