"""``make demo``: the whole product on the local environment, with the operator as pods.

``python -m tools.devenv demo [--keep]`` from the repository root, which ``make demo`` runs.

Brings up the API server, a node, Postgres 15 and STS; builds the image from the Dockerfile
(cached by the build context's hash) and puts it on the node; installs the chart with helm
into a namespace enforcing the ``restricted`` Pod Security level; applies sample Secrets, an
OpenAI provider with two keys, a Bedrock provider with a role (verified against the
environment's STS) and a gateway key; waits until all are Ready; prints the pods next to the
objects and what is in Coder's tables (masked); rotates a Secret value and shows it reaching
the database and a LISTEN connection; then tears everything down (at once, or on Ctrl-C with
``--keep``).
"""

from __future__ import annotations

import secrets
import signal
import time
from typing import Any

import psycopg

from aigateway_operator.masking import mask_secret
from aigateway_operator.store.cipher import Cipher
from tools.devenv.chart import (
    CHART,
    create_namespace,
    create_operator_secrets,
    helm,
    operator_pods,
    operator_values,
    pods_table,
)
from tools.devenv.env import DevEnv
from tools.devenv.images import build_operator_image

NS = "demo"
#: The opt-in that lets AIProviders use a Secret (see the README's security model).
ALLOW = {"aigateway.dev/allowed-aiproviders": "*"}
RELEASE = "aigw"
GROUP, VERSION = "aigateway.dev", "v1alpha1"
OPENAI_A = "sk-demo-primary-" + "a" * 24
OPENAI_B = "sk-demo-fallback-" + "b" * 24
OPENAI_B2 = "sk-demo-rotated-" + "c" * 24
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key (moto accepts any)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS's example secret


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _objects() -> list[tuple[str, dict[str, Any]]]:
    meta = {"namespace": NS}
    return [
        ("aiproviders", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIProvider",
            "metadata": {"name": "openai", **meta},
            "spec": {"type": "openai", "displayName": "OpenAI", "apiKeys": [
                {"secretKeyRef": {"name": "llm-keys", "key": "primary"}},
                {"secretKeyRef": {"name": "llm-keys", "key": "fallback"}}]},
        }),
        ("aiproviders", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIProvider",
            "metadata": {"name": "claude-bedrock", **meta},
            "spec": {"type": "bedrock", "bedrock": {
                "region": "us-east-1",
                "roleARN": "arn:aws:iam::210987654321:role/CoderBedrockInvoke",
                "credentialsSecretRef": {"name": "aws-creds"}}},
        }),
        ("aigatewaycoderdkeys", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIGatewayCoderdKey",
            "metadata": {"name": "gateway-eu", **meta}, "spec": {},
        }),
    ]  # fmt: skip


def run(keep: bool = False, timeout: float = 180.0) -> int:
    from kubernetes import client, config

    _say("bringing up the local environment with a node (the first run builds its parts) ...")
    env = DevEnv.up(with_node=True, progress=_say)
    try:
        if env.node is None:
            raise RuntimeError("the environment came up without its node")
        image = build_operator_image("dev", progress=_say)
        how = "from the cache" if image.cached else f"built in {image.seconds:.0f}s"
        _say(
            f"image {image.name} ({how}): {image.archive_bytes / 1e6:.0f} MB as an OCI archive, "
            f"{image.unpacked_bytes / 1e6:.0f} MB unpacked; importing it into the node"
        )
        env.node.import_image(image.archive)
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(env.kubeconfig)
        )
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        create_namespace(api, NS)
        key = secrets.token_bytes(32)
        create_operator_secrets(api, NS, env.database_url, key)
        _say(f"helm install {RELEASE} (namespace {NS} enforces Pod Security 'restricted') ...")
        started = time.monotonic()
        helm(
            env, "install", RELEASE, str(CHART), "--namespace", NS, "--wait", "--timeout", "5m",
            values=operator_values(env, image, NS),
        )  # fmt: skip
        _say(f"the chart's pods are Ready after {time.monotonic() - started:.0f}s")
        _print_pods(api)

        _say("applying sample Secrets and objects: OpenAI (2 keys), Bedrock (role), gateway key")
        core.create_namespaced_secret(
            NS,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="llm-keys", annotations=ALLOW),
                string_data={"primary": OPENAI_A, "fallback": OPENAI_B},
            ),
        )
        core.create_namespaced_secret(NS, client.V1Secret(
            metadata=client.V1ObjectMeta(name="aws-creds", annotations=ALLOW),
            string_data={"AWS_ACCESS_KEY_ID": AWS_KEY_ID,
                         "AWS_SECRET_ACCESS_KEY": AWS_SECRET}))  # fmt: skip
        for plural, body in _objects():
            custom.create_namespaced_custom_object(GROUP, VERSION, NS, plural, body)

        _say("waiting until every object is Ready ...")
        deadline = time.monotonic() + timeout
        while True:
            rows = _object_rows(custom)
            if all(r[3] == "True" for r in rows):
                break
            if time.monotonic() > deadline:
                _say("not everything became Ready; the operator pods' logs:")
                for pod in operator_pods(api, NS, RELEASE):
                    log = core.read_namespaced_pod_log(pod.metadata.name, NS, tail_lines=40)
                    print(f"--- {pod.metadata.name}\n{log}")
                return 1
            time.sleep(0.5)  # progress polling, bounded by the deadline above

        _print_pods(api)
        _print_objects(_object_rows(custom))
        _print_coder(env.database_url, key)

        _say("rotating the fallback key in Secret llm-keys ...")
        with psycopg.connect(env.database_url, autocommit=True) as listener:
            listener.execute("LISTEN ai_providers_changed")
            start = time.monotonic()
            core.patch_namespaced_secret("llm-keys", NS, {"stringData": {"fallback": OPENAI_B2}})
            got = next(listener.notifies(timeout=30), None)
        if got is None:
            _say("no notify within 30 s")
            return 1
        _say(f"ai_providers_changed received {time.monotonic() - start:.2f}s after the edit")
        _print_coder(env.database_url, key, only_keys=True)
        if keep:
            _say(f"all running (KUBECONFIG={env.kubeconfig}); Ctrl-C to tear down")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    finally:
        _say("tearing down the local environment")
        env.down()


def _print_pods(api: Any) -> None:
    print(f"\nkubectl get pods -n {NS} -o wide")
    for line in pods_table(operator_pods(api, NS, RELEASE)):
        print(f"  {line}")
    print()


def _object_rows(custom: Any) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for plural, short in (("aiproviders", "aip"), ("aigatewaycoderdkeys", "cgwkey")):
        for o in custom.list_namespaced_custom_object(GROUP, VERSION, NS, plural)["items"]:
            ready: dict[str, str] = next(
                (c for c in (o.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"), {},
            )  # fmt: skip
            detail = (o.get("status") or {}).get("keyPrefix") or o["spec"].get("type", "")
            rows.append((f"{short}/{o['metadata']['name']}", detail, "",
                         ready.get("status", "-"), ready.get("reason", "-")))  # fmt: skip
    return rows


def _print_objects(rows: list[tuple[str, str, str, str, str]]) -> None:
    print("\nkubectl get aip,cgwkey -n demo")
    print(f"  {'NAME':28} {'TYPE/PREFIX':16} {'READY':6} REASON")
    for name, detail, _, ready, reason in rows:
        print(f"  {name:28} {detail:16} {ready:6} {reason}")


def _print_coder(dsn: str, key: bytes, only_keys: bool = False) -> None:
    cipher = Cipher(key)
    with psycopg.connect(dsn) as conn:
        if not only_keys:
            print("\nCoder: ai_providers")
            for name, ptype, enabled, base_url, key_id in conn.execute(
                "SELECT name, type::text, enabled, base_url, settings_key_id FROM ai_providers "
                "WHERE NOT deleted ORDER BY name"
            ).fetchall():
                print(f"  {name:16} {ptype:10} enabled={enabled!s:5} {base_url:48} "
                      f"settings key {key_id or '-'}")  # fmt: skip
            print("Coder: ai_gateway_keys (only a prefix and a hash are stored)")
            for name, prefix, beat in conn.execute(
                "SELECT name, secret_prefix, last_heartbeat_at FROM ai_gateway_keys ORDER BY name"
            ).fetchall():
                print(f"  {name:16} prefix {prefix}  last heartbeat {beat or 'never'}")
        print("Coder: ai_provider_keys (decrypted here only to mask them)")
        for name, value, key_id in conn.execute(
            "SELECT p.name, k.api_key, k.api_key_key_id FROM ai_provider_keys k "
            "JOIN ai_providers p ON p.id = k.provider_id WHERE NOT p.deleted "
            "ORDER BY p.name, k.created_at, k.id"
        ).fetchall():
            plain = cipher.decrypt(value).decode() if key_id else value
            print(f"  {name:16} {mask_secret(plain):16} encrypted under {key_id or '-'}")
    print()
