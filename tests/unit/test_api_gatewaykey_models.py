"""The AIGatewayCoderdKey models: Go durations, defaults and the CEL mirrors (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aigateway_operator.api import InvalidSpecError
from aigateway_operator.api.gatewaykey import (
    RULE_MESSAGES,
    GatewayKeySpec,
    GatewayKeyStatus,
    parse_duration,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("720h", timedelta(hours=720)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("1µs", timedelta(microseconds=1)),
    ],
)
def test_go_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1d", "-1h", "1 h", "h", "1h-"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_duration(text)


def test_defaults() -> None:
    spec = GatewayKeySpec.from_body(None)
    assert spec.rotation.grace == timedelta(hours=1)
    assert spec.rotation.interval is None
    assert spec.effective_key_name("gw") == "gw"
    assert spec.effective_secret_name("gw") == "gw-key"
    assert GatewayKeySpec(key_name="a", secret_name="s").effective_secret_name("gw") == "s"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rotation": {"every": "59s"}}, RULE_MESSAGES["every"]),
        ({"rotation": {"gracePeriod": "soon"}}, RULE_MESSAGES["grace_period"]),
        ({"rotation": {"every": "1h", "gracePeriod": "1h"}}, RULE_MESSAGES["grace_shorter"]),
        ({"keyName": "a" * 65}, "spec.keyName"),
        ({"unknown": 1}, "spec.unknown"),
    ],
)
def test_rules_mirror_the_crd(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpecError) as info:
        GatewayKeySpec.from_body(body)
    assert message in str(info.value)


def test_errors_never_echo_values() -> None:
    with pytest.raises(InvalidSpecError) as info:
        GatewayKeySpec.from_body({"keyName": "cgw_SECRETISH_VALUE"})
    assert "SECRETISH" not in str(info.value)


def test_metadata_name_rules() -> None:
    spec = GatewayKeySpec()
    with pytest.raises(InvalidSpecError, match=r"metadata\.name must be a valid"):
        spec.effective_key_name("Has.Dots")
    with pytest.raises(InvalidSpecError, match="at most 249"):
        spec.effective_secret_name("a" * 250)
    assert GatewayKeySpec(key_name="gw").effective_key_name("Has.Dots") == "gw"


def test_status_ignores_unknown_fields() -> None:
    status = GatewayKeyStatus.from_body({"keyID": "x", "somethingNew": 1})
    assert status.key_id == "x"
    assert status.to_body() == {"keyID": "x", "conditions": []}
