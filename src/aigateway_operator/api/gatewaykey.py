"""Typed mirror of the ``AIGatewayCoderdKey`` CRD (``crds/aigateway.dev_aigatewaycoderdkeys.yaml``).

The CRD YAML is the source of truth; ``tests/unit/test_api_gatewaykey_crd.py`` fails when a field,
enum, default or required list differs between it and these models. The CEL rules are
mirrored here with the very same messages, so objects stored before a rule existed cannot
surprise the reconcile code, and unit tests can build specs without an API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Self

from pydantic import Field, field_validator, model_validator

from aigateway_operator.api.aiprovider import DeletionPolicy
from aigateway_operator.api.common import (
    DNS_SUBDOMAIN_PATTERN,
    Condition,
    InvalidSpecError,
    SpecModel,
    StatusModel,
)

__all__ = [
    "DURATION_PATTERN",
    "KEY_NAME_MAX_LENGTH",
    "KEY_NAME_PATTERN",
    "RULE_MESSAGES",
    "SECRET_DATA_KEY",
    "GatewayKeySpec",
    "GatewayKeyStatus",
    "RotationSpec",
    "RotationStatus",
    "parse_duration",
]

#: The CHECK ``ai_gateway_keys_name_check`` (reference §1.6).
KEY_NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
KEY_NAME_MAX_LENGTH = 64
#: Go's ``time.ParseDuration`` syntax without a sign (what CEL's ``duration()`` accepts).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
#: The data key of the delivered Secret.
SECRET_DATA_KEY = "key"  # noqa: S105 - a data key name, not a secret
DEFAULT_SECRET_SUFFIX = "-key"  # noqa: S105 - a name suffix
MIN_EVERY = timedelta(minutes=1)

RULE_MESSAGES: Mapping[str, str] = {
    "metadata_name": (
        "metadata.name must be a valid Coder gateway key name (lowercase letters, digits and "
        "single dashes, at most 64 characters) when spec.keyName is not set"
    ),
    "metadata_name_secret": (
        "metadata.name must be at most 249 characters when spec.secretName is not set "
        '(the default Secret name is metadata.name + "-key")'
    ),
    "grace_shorter": "spec.rotation.gracePeriod must be shorter than spec.rotation.every",
    "every": "spec.rotation.every must be a Go duration of at least 1m, for example 720h",
    "grace_period": "spec.rotation.gracePeriod must be a Go duration, for example 1h or 90s",
}

_UNITS = {
    "ns": timedelta(microseconds=0.001),
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """A Go duration string (``720h``, ``1h30m``, ``90s``) as a timedelta.

    Raises ValueError (without echoing the input) when it is not one.
    """
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError("not a Go duration")
    return sum((float(number) * _UNITS[unit] for number, unit in _PART.findall(text)), timedelta())


class RotationSpec(SpecModel):
    """``spec.rotation``: when to replace the key, and how long the old one keeps working."""

    generation: int = Field(default=0, ge=0)
    every: str | None = Field(default=None, max_length=32)
    grace_period: str = Field(default="1h", max_length=32)

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ok = parse_duration(value) >= MIN_EVERY
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(RULE_MESSAGES["every"])
        return value

    @field_validator("grace_period")
    @classmethod
    def _grace(cls, value: str) -> str:
        try:
            parse_duration(value)
        except ValueError:
            raise ValueError(RULE_MESSAGES["grace_period"]) from None
        return value

    @model_validator(mode="after")
    def _grace_shorter(self) -> Self:
        interval = self.interval
        if interval is not None and self.grace >= interval:
            raise ValueError(RULE_MESSAGES["grace_shorter"])
        return self

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.grace_period)

    @property
    def interval(self) -> timedelta | None:
        """``every`` as a timedelta; None when only generation bumps rotate."""
        return parse_duration(self.every) if self.every is not None else None


class GatewayKeySpec(SpecModel):
    """``spec`` of an AIGatewayCoderdKey."""

    key_name: str | None = Field(
        default=None, min_length=1, max_length=KEY_NAME_MAX_LENGTH, pattern=KEY_NAME_PATTERN
    )
    secret_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN
    )
    rotation: RotationSpec = Field(default_factory=RotationSpec)
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE

    def effective_key_name(self, metadata_name: str) -> str:
        """``spec.keyName``, defaulting to ``metadata.name`` (checked as the CRD's root rule)."""
        if self.key_name is not None:
            return self.key_name
        if len(metadata_name) > KEY_NAME_MAX_LENGTH or not re.fullmatch(
            KEY_NAME_PATTERN, metadata_name
        ):
            raise InvalidSpecError(RULE_MESSAGES["metadata_name"])
        return metadata_name

    def effective_secret_name(self, metadata_name: str) -> str:
        """``spec.secretName``, defaulting to ``<metadata.name>-key``."""
        if self.secret_name is not None:
            return self.secret_name
        if len(metadata_name) > 253 - len(DEFAULT_SECRET_SUFFIX):
            raise InvalidSpecError(RULE_MESSAGES["metadata_name_secret"])
        return metadata_name + DEFAULT_SECRET_SUFFIX


# -- status ----------------------------------------------------------------------------------


class RotationStatus(StatusModel):
    """``status.rotation``: enough to finish a rotation after a restart."""

    generation: int | None = Field(default=None, ge=0)
    previous_key_id: str | None = Field(default=None, alias="previousKeyID", max_length=64)
    previous_key_prefix: str | None = Field(default=None, max_length=11)
    retire_after: datetime | None = None
    last_rotated_at: datetime | None = None


class GatewayKeyStatus(StatusModel):
    """``status`` of an AIGatewayCoderdKey; every field is declared in the CRD."""

    observed_generation: int | None = Field(default=None, ge=0)
    key_id: str | None = Field(default=None, alias="keyID", max_length=64)
    key_name: str | None = Field(default=None, max_length=KEY_NAME_MAX_LENGTH)
    key_prefix: str | None = Field(default=None, max_length=11)
    coder_version: str | None = Field(default=None, max_length=64)
    secret_name: str | None = Field(default=None, max_length=253)
    created_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    rotation: RotationStatus | None = None
    conditions: tuple[Condition, ...] = Field(default=(), max_length=16)

    def condition(self, type_: str) -> Condition | None:
        """The condition of ``type_``, if reported."""
        return next((c for c in self.conditions if c.type == type_), None)
