"""A stand-in for Coder's standalone AI Gateway, as a Deployment on the local node.

What matters about the real gateway for key rotation (coder-reference.md §7.3): it reads its
key from ``CODER_AI_GATEWAY_KEY_FILE`` **once, at start**, and coderd records its heartbeat
by the key's hash (``UPDATE ai_gateway_keys SET last_heartbeat_at = NOW()`` where
``hashed_secret = sha256(key)``) on connect and every period; when that update touches no row
(the key was deleted) coderd closes the session. The stand-in does exactly that against the
test's Postgres (pods reach it on the node's bridge, as the operator's pods do), every
``period_s`` instead of 60 s, and exits when its key is gone, as a gateway cut off from
coderd would fail. Each beat is also written to ``standin_beats`` (pod, key prefix, whether
it found its row, the database's time), so a test can prove there was no gap and no failure.

It runs in the operator's image (Python and psycopg are there; the devenv builds it), under
the ``restricted`` Pod Security level; it is Ready once its first beat found its row, so a
rolling update keeps the old pod until the new one is heartbeating.
"""

from __future__ import annotations

import itertools
from typing import Any

from kubernetes import client

#: The key file, as Coder's gateway chart mounts it.
KEY_DIR = "/etc/coder/ai-gateway-auth"
BEATS_TABLE = "standin_beats"  # the name SCRIPT writes to
DSN_SECRET = "standin-db"

SCRIPT = """
import hashlib, os, sys, time
import psycopg

key = open(os.environ["CODER_AI_GATEWAY_KEY_FILE"]).read().strip()  # once, at start
hashed = hashlib.sha256(key.encode()).digest()
pod, period = os.environ["POD_NAME"], float(os.environ["PERIOD_S"])
with psycopg.connect(os.environ["DSN"], autocommit=True) as conn:
    while True:
        found = conn.execute(
            "UPDATE ai_gateway_keys SET last_heartbeat_at = now() WHERE hashed_secret = %s",
            (hashed,),
        ).rowcount == 1
        conn.execute(
            "INSERT INTO standin_beats (pod, prefix, ok, at) VALUES (%s, %s, %s, now())",
            (pod, key[:11], found),
        )
        if not found:
            print("key no longer in coderd: session closed", flush=True)
            sys.exit(1)
        open("/tmp/ready", "w").close()
        time.sleep(period)  # the modelled gateway's own heartbeat period, not a test's wait
"""

CREATE_BEATS = (
    f"CREATE TABLE IF NOT EXISTS {BEATS_TABLE} "
    "(pod text NOT NULL, prefix text NOT NULL, ok boolean NOT NULL, at timestamptz NOT NULL)"
)


def dsn_secret(database_url: str) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=DSN_SECRET), string_data={"url": database_url}
    )


def deployment(
    name: str, image: str, key_secret: str, period_s: float, annotations: dict[str, str]
) -> client.V1Deployment:
    """One replica reading ``key_secret``'s ``key``; rolling updates start the new pod before
    stopping the old one (maxUnavailable 0), as a gateway Deployment should."""
    labels = {"app": name}
    restricted = client.V1SecurityContext(
        allow_privilege_escalation=False,
        run_as_non_root=True,
        capabilities=client.V1Capabilities(drop=["ALL"]),
        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
    )
    env = [
        client.V1EnvVar(name="CODER_AI_GATEWAY_KEY_FILE", value=f"{KEY_DIR}/key"),
        client.V1EnvVar(name="PERIOD_S", value=str(period_s)),
        client.V1EnvVar(
            name="POD_NAME",
            value_from=client.V1EnvVarSource(
                field_ref=client.V1ObjectFieldSelector(field_path="metadata.name")
            ),
        ),
        client.V1EnvVar(
            name="DSN",
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name=DSN_SECRET, key="url")
            ),
        ),
    ]
    ready = ["test", "-e", "/tmp/ready"]
    container = client.V1Container(
        name="gateway",
        image=image,
        image_pull_policy="Never",
        command=["python", "-c", SCRIPT],
        env=env,
        security_context=restricted,
        readiness_probe=client.V1Probe(
            _exec=client.V1ExecAction(command=ready), period_seconds=1, failure_threshold=1
        ),
        volume_mounts=[client.V1VolumeMount(name="key", mount_path=KEY_DIR, read_only=True)],
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations or None),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            strategy=client.V1DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=client.V1RollingUpdateDeployment(max_surge=1, max_unavailable=0),
            ),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[container],
                    termination_grace_period_seconds=5,
                    volumes=[
                        client.V1Volume(
                            name="key", secret=client.V1SecretVolumeSource(secret_name=key_secret)
                        )
                    ],
                ),
            ),
        ),
    )


def settled(api: client.ApiClient, namespace: str, name: str) -> client.V1Deployment | None:
    """The Deployment once its rollout is complete: one updated, available replica and no
    other pod left (not even a terminating one)."""
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    st = dep.status
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={name}").items
    done = (
        st.observed_generation == dep.metadata.generation
        and st.updated_replicas == 1
        and st.available_replicas == 1
        and (st.replicas or 0) == 1
        and len(pods) == 1
    )
    return dep if done else None


def beats(rows: list[tuple[Any, ...]]) -> list[tuple[str, str, bool, Any]]:
    """``(pod, prefix, ok, at)`` rows as read from :data:`BEATS_TABLE`, oldest first."""
    return sorted(((str(p), str(k), bool(ok), at) for p, k, ok, at in rows), key=lambda b: b[3])


def longest_gap_s(rows: list[tuple[str, str, bool, Any]]) -> float:
    """The longest time between two successive good beats of any pod (0 with fewer than two)."""
    times = [at for _, _, ok, at in rows if ok]
    return max(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=0.0)
