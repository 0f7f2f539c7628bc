"""Malformed and hostile input that only the operator can see, with the operator running.

The API server rejects what the CRD can express (its rejections, with their messages, are
tested in tests/integration/test_crd_*.py). What it cannot see is behind a reference or
beyond its rules: the bytes in a Secret, a reference to a Secret that is not there, a URL its
parser accepts and Coder's does not. Every such case here is reported on the object with its
exact reason and the field named in the message, posted as a Warning Event, and leaves every
table the operator writes untouched, checked per case; no planted value reaches the status
(raw JSON and decoded strings), the Events, the metrics page or the log.

Every case runs at once against one operator, in one namespace, under distinct names.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.support import metrics
from tests.support.db import changed_tables, table_versions
from tests.support.leaks import raw_get, strings
from tests.support.operator import (
    ALLOW_ALL,
    GROUP,
    VERSION,
    WORKING,
    OperatorProcess,
    condition,
    wait_condition,
)
from tests.support.providers import PLURAL, apply_provider
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults

SECRETS_RESOLVED, SYNCED = "SecretsResolved", "Synced"
NOT_FOUND, KEY_MISSING = "SecretNotFound", "SecretKeyMissing"
INVALID, DUPLICATE, INVALID_SPEC = "InvalidSecretValue", "DuplicateAPIKey", "InvalidSpec"
KEY0, KEY1 = "spec.apiKeys[0].secretKeyRef", "spec.apiKeys[1].secretKeyRef"
AWS = "spec.bedrock.credentialsSecretRef"
AWS_ID, AWS_SECRET = f"{AWS}.accessKeyIDKey", f"{AWS}.secretAccessKeyKey"
URL = "spec.baseURL"

#: Placeholders in a case's Secret data, replaced by values unique to the case: an API key,
#: another one, an AWS access key id and an AWS secret access key.
T, T2, AKID, SK = b"<T>", b"<T2>", b"<AKID>", b"<SK>"


@dataclass(frozen=True)
class Tok:
    """The case's own values, for data built by a function (slices, encodings)."""

    t: bytes
    t2: bytes
    akid: bytes
    sk: bytes


Value = bytes | Callable[[Tok], bytes]


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    """``"S"`` as a Secret name stands for the case's own Secret."""
    data: dict[str, Value] | None
    """The case's Secret (None: none is created); placeholders as above, or a function of
    the case's API key."""
    condition: str
    reason: str
    field: str
    secret_type: str = "Opaque"
    extra: dict[str, str] = field(default_factory=dict)


def keys(*names: str, secret: str = "S") -> list[dict[str, Any]]:
    return [{"secretKeyRef": {"name": secret, "key": k}} for k in names]


def openai(*names: str) -> dict[str, Any]:
    return {"type": "openai", "apiKeys": keys(*names)}


def bedrock(type_: str = "bedrock", **more: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "bedrock": {"region": "us-east-1", "credentialsSecretRef": {"name": "S"}, **more},
    }


def value_case(case_id: str, value: Value) -> Case:
    """A single API key whose value has the wrong shape."""
    return Case(case_id, openai("a"), {"a": value}, SECRETS_RESOLVED, INVALID, KEY0)


def aws_case(case_id: str, akid: Value, sk: Value, field_: str, reason: str = INVALID) -> Case:
    return Case(
        case_id,
        bedrock(),
        {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": sk},
        SECRETS_RESOLVED,
        reason,
        field_,
    )


def url_case(case_id: str, url: str, type_: str = "openai-compat") -> Case:
    return Case(case_id, {"type": type_, "baseURL": url}, None, SYNCED, INVALID_SPEC, URL)


def pem(tok: Tok) -> bytes:
    body = base64.b64encode(tok.t * 4)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


CASES: list[Case] = [
    # -- the shape of an API key (SecretsResolved=False, InvalidSecretValue) -----------------
    value_case("empty", b""),
    value_case("whitespace-only", b" \t "),
    value_case("trailing-newline", T + b"\n"),
    value_case("trailing-crlf", T + b"\r\n"),
    value_case("leading-space", b" " + T),
    value_case("trailing-space", T + b" "),
    value_case("leading-tab", b"\t" + T),
    value_case("tab-inside", lambda k: k.t[:12] + b"\t" + k.t[12:]),
    value_case("newline-inside", lambda k: k.t[:12] + b"\n" + k.t[12:]),
    value_case("carriage-return-inside", lambda k: k.t[:12] + b"\r" + k.t[12:]),
    value_case("nul-byte", lambda k: k.t[:12] + b"\x00" + k.t[12:]),
    value_case("bell", lambda k: k.t[:12] + b"\x07" + k.t[12:]),
    value_case("ansi-escape", lambda k: b"\x1b[31m" + k.t + b"\x1b[0m"),
    value_case("delete-char", lambda k: k.t[:12] + b"\x7f" + k.t[12:]),
    value_case("c1-control", lambda k: k.t[:12] + "\u009b".encode() + k.t[12:]),
    value_case("zero-width-space", lambda k: k.t[:12] + "\u200b".encode() + k.t[12:]),
    value_case("byte-order-mark", "\ufeff".encode() + T),
    value_case("trailing-no-break-space", T + "\u00a0".encode()),
    value_case("line-separator", lambda k: k.t[:12] + "\u2028".encode() + k.t[12:]),
    value_case("right-to-left-override", lambda k: "\u202e".encode() + k.t),
    value_case("invalid-utf8", b"\xff\xfe" + T),
    value_case("truncated-utf8", T + b"\xe2\x82"),
    value_case("overlong-utf8", lambda k: k.t[:12] + b"\xc0\xaf" + k.t[12:]),
    value_case("utf8-surrogate", lambda k: k.t[:12] + b"\xed\xa0\x80" + k.t[12:]),
    value_case("latin1-text", lambda k: k.t[:12] + b"\xe9" + k.t[12:]),
    value_case("utf16-text", lambda k: k.t.decode().encode("utf-16-le")),
    value_case("one-byte-over-8kib", lambda k: (k.t * 400)[: 8 * 1024 + 1]),
    value_case("100kb", lambda k: (k.t * 4000)[:100_000]),
    value_case("multibyte-over-8kib", lambda k: k.t + "€".encode() * 2731),
    Case(
        "tls-certificate",
        openai("tls.crt"),
        {"tls.crt": pem, "tls.key": pem},
        SECRETS_RESOLVED,
        INVALID,
        KEY0,
        secret_type="kubernetes.io/tls",
    ),
    # -- several keys: the entry at fault is named -----------------------------------------
    Case("duplicate-values", openai("a", "b"), {"a": T, "b": T}, SECRETS_RESOLVED, DUPLICATE, KEY1),
    Case(
        "duplicate-across-secrets",
        {"type": "openai", "apiKeys": keys("a") + keys("a", secret="S-twin")},
        {"a": T},
        SECRETS_RESOLVED,
        DUPLICATE,
        KEY1,
        extra={"a": "<T>"},
    ),
    Case(
        "duplicate-first-and-third",
        openai("a", "b", "c"),
        {"a": T, "b": T2, "c": T},
        SECRETS_RESOLVED,
        DUPLICATE,
        "spec.apiKeys[2].secretKeyRef",
    ),
    Case(
        "second-key-bad",
        {"type": "anthropic", "apiKeys": keys("a", "b")},
        {"a": T, "b": T2 + b"\n"},
        SECRETS_RESOLVED,
        INVALID,
        KEY1,
    ),
    Case(
        "fifth-key-bad",
        openai("a", "b", "c", "d", "e"),
        {"a": T + b"a", "b": T + b"b", "c": T + b"c", "d": T + b"d", "e": T2 + b"\x00"},
        SECRETS_RESOLVED,
        INVALID,
        "spec.apiKeys[4].secretKeyRef",
    ),
    # -- references (SecretNotFound, SecretKeyMissing) -------------------------------------
    Case("missing-secret", openai("a"), None, SECRETS_RESOLVED, NOT_FOUND, KEY0),
    Case("missing-key", openai("a"), {"other": T}, SECRETS_RESOLVED, KEY_MISSING, KEY0),
    Case("key-case-differs", openai("a"), {"A": T}, SECRETS_RESOLVED, KEY_MISSING, KEY0),
    Case("secret-without-data", openai("a"), {}, SECRETS_RESOLVED, KEY_MISSING, KEY0),
    Case(
        "second-secret-missing",
        {"type": "openai", "apiKeys": keys("a") + keys("a", secret="S-absent")},
        {"a": T},
        SECRETS_RESOLVED,
        NOT_FOUND,
        KEY1,
    ),
    # The Secret exists, in another namespace: references never cross namespaces.
    Case("secret-in-other-namespace", openai("a"), None, SECRETS_RESOLVED, NOT_FOUND, KEY0),
    # A ConfigMap of that name and key is not a Secret.
    Case("configmap-not-secret", openai("a"), None, SECRETS_RESOLVED, NOT_FOUND, KEY0),
    # -- Bedrock static credentials -------------------------------------------------------
    Case("aws-secret-missing", bedrock(), None, SECRETS_RESOLVED, NOT_FOUND, AWS_ID),
    Case(
        "aws-key-id-missing",
        bedrock(),
        {"AWS_SECRET_ACCESS_KEY": SK},
        SECRETS_RESOLVED,
        KEY_MISSING,
        AWS_ID,
    ),
    Case(
        "aws-secret-key-missing",
        bedrock(),
        {"AWS_ACCESS_KEY_ID": AKID},
        SECRETS_RESOLVED,
        KEY_MISSING,
        AWS_SECRET,
    ),
    Case(
        "aws-custom-key-names-missing",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-east-1",
                "credentialsSecretRef": {
                    "name": "S",
                    "accessKeyIDKey": "id",
                    "secretAccessKeyKey": "secret",
                },
            },
        },
        {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SK},
        SECRETS_RESOLVED,
        KEY_MISSING,
        AWS_ID,
    ),
    aws_case("aws-temporary-key-id", lambda k: b"ASIA" + k.akid[4:], SK, AWS_ID),
    aws_case("aws-key-id-too-short", lambda k: k.akid[:15], SK, AWS_ID),
    aws_case("aws-key-id-with-dash", lambda k: k.akid[:4] + b"-" + k.akid[4:], SK, AWS_ID),
    aws_case("aws-key-id-trailing-newline", AKID + b"\n", SK, AWS_ID),
    aws_case("aws-key-id-too-long", lambda k: (k.akid * 10)[:129], SK, AWS_ID),
    aws_case("aws-key-id-empty", b"", SK, AWS_ID),
    aws_case("aws-secret-too-short", AKID, lambda k: k.sk[:39], AWS_SECRET),
    aws_case("aws-secret-too-long", AKID, SK + b"A", AWS_SECRET),
    aws_case("aws-secret-bad-char", AKID, lambda k: k.sk[:20] + b"-" + k.sk[21:], AWS_SECRET),
    aws_case("aws-secret-trailing-newline", AKID, SK + b"\n", AWS_SECRET),
    aws_case("aws-secret-not-utf8", AKID, lambda k: k.sk[:39] + b"\xff", AWS_SECRET),
    Case(
        "anthropic-bedrock-temporary-key-id",
        bedrock("anthropic"),
        {"AWS_ACCESS_KEY_ID": lambda k: b"ASIA" + k.akid[4:], "AWS_SECRET_ACCESS_KEY": SK},
        SECRETS_RESOLVED,
        INVALID,
        AWS_ID,
    ),
    Case(
        "role-with-bad-static-keys",
        bedrock(roleARN="arn:aws:iam::123456789012:role/BedrockInvoke"),
        {"AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": lambda k: k.sk[:30]},
        SECRETS_RESOLVED,
        INVALID,
        AWS_SECRET,
    ),
    # -- URLs the API server's parser accepts and the operator does not (Synced=False) ------
    Case(
        "azure-without-base-url",
        {"type": "azure", "apiKeys": keys("a")},
        {"a": T},
        SYNCED,
        INVALID_SPEC,
        URL,
    ),
    url_case("openai-compat-without-base-url", ""),
    url_case("url-trailing-space", "https://llm.example.com/v1 "),
    url_case("url-trailing-no-break-space", "https://llm.example.com/v1\u00a0"),
    url_case("url-trailing-ideographic-space", "https://llm.example.com/v1\u3000"),
    url_case("url-trailing-line-separator", "https://llm.example.com/v1\u2028"),
    url_case("url-trailing-next-line", "https://llm.example.com/v1\u0085"),
    url_case("url-query-trailing-space", "https://llm.example.com/v1?api-version= "),
    url_case("url-host-normalises-to-slash", "https://llm\u2100example.com/v1"),
    url_case("url-host-normalises-to-at", "https://user\uff20llm.example.com/v1"),
    url_case("url-port-without-host", "https://:8443/v1"),
    url_case("anthropic-url-trailing-space", "https://api.anthropic.com/ ", type_="anthropic"),
]

#: Pinned: a case that disappears (or one added without looking) fails here first.
N_CASES = 71


def test_the_table_is_what_it_says() -> None:
    assert len(CASES) == N_CASES
    assert len({c.id for c in CASES}) == N_CASES
    for i, case in enumerate(CASES):
        planted = _plant(i, case)
        for value in planted.values():
            assert not any(ph in value for ph in (T, T2, AKID, SK)), case.id


@dataclass
class Planted:
    """One case, made concrete: its object and Secret names and every value planted."""

    case: Case
    name: str
    secret: str
    spec: dict[str, Any]
    data: dict[str, bytes]
    extra: dict[str, bytes]
    """The data of the case's second Secret (``S-twin``), if it has one."""
    elsewhere: bytes
    """A value in another namespace, under the case's Secret name and key ``a``: never read."""

    def values(self) -> list[bytes]:
        found = [*self.data.values(), *self.extra.values()]
        if self.case.id == "secret-in-other-namespace":
            found.append(self.elsewhere)
        return found


def _token(alphabet: str, n: int) -> bytes:
    return "".join(secrets.choice(alphabet) for _ in range(n)).encode()


def _plant(i: int, case: Case) -> Planted:
    alnum = string.ascii_letters + string.digits
    tok = Tok(
        t=b"sk-" + _token(alnum, 29),
        t2=b"sk-" + _token(alnum, 29),
        akid=b"AKIA" + _token(string.ascii_uppercase + string.digits, 16),
        sk=_token(alnum + "/+", 38) + b"aZ",
    )
    subst = {T: tok.t, T2: tok.t2, AKID: tok.akid, SK: tok.sk}

    def fill(value: Value) -> bytes:
        if callable(value):
            return value(tok)
        for placeholder, real in subst.items():
            value = value.replace(placeholder, real)
        return value

    name, secret = f"case-{i:02d}", f"case-{i:02d}-s"
    spec = json.loads(
        json.dumps(case.spec).replace('"S"', f'"{secret}"').replace('"S-', f'"{secret}-')
    )
    data = {k: fill(v) for k, v in (case.data or {}).items()}
    extra = {k: fill(v.encode()) for k, v in case.extra.items()}
    return Planted(case, name, secret, spec, data, extra, b"sk-" + _token(alnum, 29))


def needles(value: bytes) -> set[str]:
    """What a leak of ``value`` would show: each run of 8 or more visible ASCII characters
    (a value split by a control character leaks in pieces, one of them JSON-escaped), and
    the whole value as text when it is text."""
    text = value.decode("utf-8", "replace")
    found = {run[:40] for run in re.findall(r"[!-~]{8,}", text)}
    if len(text.strip()) >= 8:
        found.add(text)
    return found


def _create_secret(
    core: client.CoreV1Api, namespace: str, name: str, data: dict[str, bytes], type_: str
) -> None:
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, annotations=ALLOW_ALL),
            type=type_,
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        ),
    )


def _rows(op: OperatorProcess) -> list[tuple[Any, ...]]:
    """The provider rows, by the names of the cases they came from (for a failure message)."""
    with psycopg.connect(op.database_url) as conn:
        return conn.execute("SELECT name, base_url FROM ai_providers").fetchall()


def _warning_events(core: client.CoreV1Api, namespace: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for e in core.list_namespaced_event(namespace).items:
        if e.type == "Warning" and e.involved_object.kind == "AIProvider":
            out.setdefault(e.involved_object.name, []).append(e)
    return out


def test_bad_input_table(
    operator_factory: Callable[..., OperatorProcess],
    k8s_api: client.ApiClient,
    namespace: str,
) -> None:
    op = operator_factory(metrics=True)
    core = client.CoreV1Api(k8s_api)
    custom = client.CustomObjectsApi(k8s_api)
    wait_for(lambda: WORKING in op.log(), 60, "the operator's start")
    baseline = table_versions(op.database_url)
    assert baseline["dbcrypt_keys"], "the operator inserted its key at start"

    planted = [_plant(i, case) for i, case in enumerate(CASES)]
    other = f"{namespace}-x"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        for p in planted:
            if p.case.data is not None:
                _create_secret(core, namespace, p.secret, p.data, p.case.secret_type)
            if p.extra:
                _create_secret(core, namespace, f"{p.secret}-twin", p.extra, "Opaque")
            if p.case.id == "secret-in-other-namespace":
                _create_secret(core, other, p.secret, {"a": p.elsewhere}, "Opaque")
            if p.case.id == "configmap-not-secret":
                core.create_namespaced_config_map(
                    namespace,
                    client.V1ConfigMap(
                        metadata=client.V1ObjectMeta(name=p.secret), data={"a": "x"}
                    ),
                )
            apply_provider(k8s_api, namespace, p.name, p.spec)

        # Each case: its exact reason, on its condition and on Ready, the field named, and
        # not one row of any table the operator writes touched (checked as each case lands).
        for p in planted:
            c = p.case
            obj = wait_condition(k8s_api, namespace, PLURAL, p.name, c.condition, "False", c.reason)
            message = (condition(obj, c.condition) or {}).get("message", "")
            assert c.field in message, (c.id, message)
            ready = condition(obj, "Ready") or {}
            assert (ready.get("status"), ready.get("reason")) == ("False", c.reason), c.id
            changed = changed_tables(baseline, table_versions(op.database_url))
            assert changed == {}, f"{c.id}: the database changed: {changed} {_rows(op)}"

        # ... and a Warning Event for each, with the same reason and field.
        def warned() -> dict[str, list[Any]] | None:
            events = _warning_events(core, namespace)
            return events if all(p.name in events for p in planted) else None

        events = wait_for(warned, 60, "a Warning Event for every case")
        for p in planted:
            mine = [e for e in events[p.name] if e.reason == p.case.reason]
            assert mine, (p.case.id, [e.reason for e in events[p.name]])
            assert p.case.field in (mine[0].message or ""), (p.case.id, mine[0].message)

        # A second pass over every object (forced) still writes nothing.
        page = op.metrics()
        blocked = metrics.value(page, "aigw_reconciles_total", kind="AIProvider", result="blocked")
        for p in planted:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, p.name,
                {"metadata": {"annotations": {"aigateway.dev/reconcile": "again"}}},
            )  # fmt: skip
        wait_for(
            lambda: (
                metrics.value(
                    op.metrics(), "aigw_reconciles_total", kind="AIProvider", result="blocked"
                )
                >= blocked + N_CASES
            ),
            60,
            "a second pass over every case",
        )
        assert changed_tables(baseline, table_versions(op.database_url)) == {}
        assert table_versions(op.database_url) == baseline

        # No planted value anywhere: the objects and Events as the API server serves them
        # (the raw JSON text, and every decoded string), the metrics page, the log.
        objects_raw = raw_get(k8s_api, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}")
        events_raw = raw_get(k8s_api, f"/api/v1/namespaces/{namespace}/events")
        decoded = [*strings(json.loads(objects_raw)), *strings(json.loads(events_raw))]
        places = {"metrics": op.metrics(), "log": op.log()}
        checked = 0
        for p in planted:
            for value in p.values():
                for needle in needles(value):
                    escaped = json.dumps(needle)[1:-1]
                    for raw in (objects_raw, events_raw):
                        assert needle not in raw, p.case.id
                        assert escaped not in raw, p.case.id
                    assert not [s for s in decoded if needle in s], p.case.id
                    for where, text in places.items():
                        assert needle not in text, (p.case.id, where)
                    checked += 1
        assert checked > N_CASES  # the canaries were there to be found
        assert op.alive()
    finally:
        core.delete_namespace(other)
