"""The chart, for real: the operator as pods of its own image, installed with helm on a node.

The ``node`` environment (tests/conftest.py) has a kubelet, containerd and runc on its own
bridge; the image is the project's Dockerfile built by buildah (``operator_image``). The chart
is installed with ``helm install --wait`` into a namespace that enforces the ``restricted``
Pod Security level, with the database URL and encryption key in Secrets, as a user would.
The tests share that release (module scope, tests/support/release.py) and each leaves it
healthy; the uninstall test has a release of its own (it uninstalls it).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.metrics import readme_metrics
from tests.support.node import (
    active_pods,
    follow_logs,
    metric_families,
    probe,
    ready_pods,
    running_pods,
    scrape,
    value,
)
from tests.support.operator import condition
from tests.support.release import GROUP, VERSION, ChartRelease, install_release, remove_release
from tests.support.sampler import ActiveSampler
from tests.support.wait import wait_for
from tools.devenv.chart import CHART, helm
from tools.devenv.env import DevEnv
from tools.devenv.images import BuiltImage
from tools.devenv.pki import NODE_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RELEASE = "aigw"
#: How long the handover test waits for the standby: a deadline for the wait, not a bound
#: the test asserts (how fast the handover is belongs in bench/, which does not yet run the
#: chart on a node).
HANDOVER_DEADLINE_S = 120
#: Probes tighter than the chart's defaults so the outage test is short: the liveness window
#: is periodSeconds x failureThreshold = 15 s.
LIVENESS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 5,
    "timeoutSeconds": 4,
    "failureThreshold": 3,
}
READINESS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 2,
    "timeoutSeconds": 2,
    "failureThreshold": 1,
}
LIVENESS_WINDOW_S = LIVENESS["periodSeconds"] * LIVENESS["failureThreshold"]
KEY_A = "sk-node-aaaa-0123456789abcdefghijklmnop"
KEY_B = "sk-node-bbbb-0123456789abcdefghijklmnop"


def openai(*keys: str, display: str = "OpenAI") -> dict[str, Any]:
    return {
        "type": "openai",
        "displayName": display,
        "apiKeys": [{"secretKeyRef": {"name": "llm-keys", "key": k}} for k in keys],
    }


def install(
    env: DevEnv, api: client.ApiClient, image: BuiltImage, name: str, **values: Any
) -> ChartRelease:
    """The shared helper with this module's tighter probes."""
    return install_release(
        env, api, image, name, livenessProbe=LIVENESS, readinessProbe=READINESS, **values
    )


@pytest.fixture(scope="module")
def release(
    node: DevEnv, node_api: client.ApiClient, operator_image: BuiltImage
) -> Iterator[ChartRelease]:
    rel = install(node, node_api, operator_image, RELEASE)
    # A first object, so the active replica has something to run (and says so).
    rel.secret("llm-keys", {"a": KEY_A, "b": KEY_B})
    rel.apply("AIProvider", "aiproviders", "seed", openai("a"))
    rel.wait_ready("aiproviders", "seed")
    try:
        yield rel
    finally:
        remove_release(rel)


def the_active_pod(rel: ChartRelease, timeout: float = 60) -> client.V1Pod:
    pods = wait_for(
        lambda: (p := active_pods(rel.api, rel.namespace, rel.name)) and len(p) == 1 and p,
        timeout,
        "exactly one active replica",
    )
    return pods[0]


def test_pods_are_admitted_under_restricted_pod_security_and_ready(release: ChartRelease) -> None:
    core = client.CoreV1Api(release.api)
    labels = core.read_namespace(release.namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = release.pods()
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name == NODE_NAME
        assert pod.status.phase == "Running"
        assert all(s.ready and s.restart_count == 0 for s in pod.status.container_statuses)
        assert probe(pod, "/startupz") == (200, {"started": True})
        assert probe(pod, "/healthz")[0] == 200
        status, body = probe(pod, "/readyz")
        assert status == 200
        assert body["database"] == "up"
    # The API server's PodSecurity admission is really enforcing: a root pod is refused.
    root_pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="root-pod"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c",
                    image=release.image.name,
                    security_context=client.V1SecurityContext(run_as_user=0),
                )
            ]
        ),
    )
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(release.namespace, root_pod)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]


def test_the_image_runs_as_non_root_on_a_read_only_root(release: ChartRelease) -> None:
    node = release.env.node
    assert node is not None
    tasks = {
        parts[0]: int(parts[1])
        for parts in (
            line.split() for line in node.ctr("-n", "k8s.io", "tasks", "ls").stdout.splitlines()[1:]
        )
    }
    for pod in release.pods():
        container_id = pod.status.container_statuses[0].container_id.removeprefix("containerd://")
        pid = tasks[container_id]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
        assert uids is not None
        assert set(uids.group(1).split()) == {"65532"}
        root_mount = next(
            line.split()
            for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        )
        assert "ro" in root_mount[5].split(","), root_mount
        assert "python" in Path(f"/proc/{pid}/cmdline").read_text()
    image = release.image
    print(
        f"\nimage {image.name}: {image.archive_bytes / 1e6:.0f} MB as an OCI archive, "
        f"{image.unpacked_bytes / 1e6:.0f} MB unpacked"
    )
    assert image.unpacked_bytes < 700e6


def test_pods_reconcile_providers_and_a_gateway_key_against_postgres_and_sts(
    release: ChartRelease,
) -> None:
    release.secret(
        "aws-creds",
        {
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        },
    )
    release.apply("AIProvider", "aiproviders", "openai", openai("a", "b"))
    release.apply(
        "AIProvider",
        "aiproviders",
        "claude-bedrock",
        {
            "type": "bedrock",
            "bedrock": {
                "region": "us-east-1",
                "roleARN": "arn:aws:iam::210987654321:role/CoderBedrockInvoke",
                "credentialsSecretRef": {"name": "aws-creds"},
            },
        },
    )
    release.apply("AIGatewayCoderdKey", "aigatewaycoderdkeys", "gateway", {})
    release.wait_ready("aiproviders", "openai")
    bedrock = release.wait_ready("aiproviders", "claude-bedrock")
    gw = release.wait_ready("aigatewaycoderdkeys", "gateway")

    # STS (moto on the node IP) verified the role from inside the pod.
    assert condition(bedrock, "CredentialsValid")["reason"] == "Verified"  # type: ignore[index]
    assert bedrock["status"]["bedrock"]["assumedRoleARN"].startswith(
        "arn:aws:sts::210987654321:assumed-role/CoderBedrockInvoke/"
    )
    # Coder's tables hold what the objects say, encrypted with the key from the Secret.
    providers = dict(release.rows("SELECT name, type::text FROM ai_providers WHERE NOT deleted"))
    assert providers == {"seed": "openai", "openai": "openai", "claude-bedrock": "bedrock"}
    keys = release.rows(
        "SELECT k.api_key FROM ai_provider_keys k JOIN ai_providers p ON p.id = k.provider_id "
        "WHERE p.name = 'openai' ORDER BY k.created_at, k.id"
    )
    aes = AESGCM(release.key)
    plain = [
        aes.decrypt(raw[:12], raw[12:], None).decode()
        for raw in (base64.b64decode(k) for (k,) in keys)
    ]
    assert plain == [KEY_A, KEY_B]
    # The gateway key: a hash in Coder, the plaintext only in the Secret the operator owns.
    secret = client.CoreV1Api(release.api).read_namespaced_secret(
        gw["status"]["secretName"], release.namespace
    )
    plaintext = base64.b64decode(secret.data["key"]).decode()
    assert plaintext.startswith("cgw_")
    assert release.rows("SELECT secret_prefix FROM ai_gateway_keys WHERE name = 'gateway'") == [
        (gw["status"]["keyPrefix"],)
    ]


def documented_metrics() -> set[str]:
    """The series the README's "Metrics" paragraph names (which tests/unit/test_metrics.py
    keeps equal to files/metrics.txt and to what the operator registers)."""
    return set(readme_metrics())


def test_the_metrics_endpoint_of_each_pod_serves_the_documented_series(
    release: ChartRelease,
) -> None:
    documented = documented_metrics()
    assert {"aigw_build_info", "aigw_active_replica", "aigw_status_condition"} <= documented
    active = the_active_pod(release)
    for pod in running_pods(release.api, release.namespace, release.name):
        series = scrape(pod)
        # A labelled series nobody has used yet has no sample, only its # HELP/# TYPE lines.
        missing = documented - set(series) - metric_families(pod)
        assert not missing, f"{pod.metadata.name} lacks {sorted(missing)}"
        assert value(series, "aigw_build_info") == 1
        assert value(series, "aigw_database_up") == 1
        is_active = pod.metadata.name == active.metadata.name
        assert value(series, "aigw_active_replica") == (1 if is_active else 0)
        if is_active:
            assert (
                value(
                    series,
                    "aigw_status_condition",
                    kind="AIProvider",
                    namespace=release.namespace,
                    name="seed",
                    condition="Ready",
                    status="True",
                )
                == 1
            )
            reconciles = value(series, "aigw_reconciles_total", kind="AIProvider")
            assert reconciles is not None
            assert reconciles >= 1


def test_deleting_the_active_pod_hands_over_to_the_standby(release: ChartRelease) -> None:
    """The standby takes over and acts, and no object is processed by both. How fast is a
    measurement, not an assertion here (the deadline below only bounds the wait)."""
    api, ns, node = release.api, release.namespace, release.env.node
    assert node is not None
    active = the_active_pod(release)
    standby = next(
        p for p in running_pods(api, ns, release.name) if p.metadata.name != active.metadata.name
    )
    core = client.CoreV1Api(api)
    old, new = active.metadata.name, standby.metadata.name
    with (
        follow_logs(node, [active, standby]) as logs,
        ActiveSampler(api, ns, release.name, node) as sampler,
    ):
        # The sampler has seen the active pod active before the deletion.
        wait_for(
            lambda: any(s.active() == [old] for s in sampler.sweeps),
            30,
            "a sweep with the active pod active, before the deletion",
        )
        sampler.mark("delete")
        core.delete_namespaced_pod(old, ns)
        wait_for(
            lambda: probe(standby, "/readyz")[1].get("active") is True,
            HANDOVER_DEADLINE_S,
            "the standby to become active",
        )
        # The new active replica acts: an edit made now reaches Coder.
        release.custom().patch_namespaced_custom_object(
            GROUP, VERSION, ns, "aiproviders", "seed", {"spec": {"displayName": "after failover"}}
        )
        release.wait_ready("aiproviders", "seed")
        wait_for(
            lambda: (
                release.rows("SELECT display_name FROM ai_providers WHERE name = 'seed'")
                == [("after failover",)]
            ),
            30,
            "the edit in Coder",
        )
        wait_for(
            lambda: old not in {p.metadata.name for p in release.pods()},
            60,
            "the deleted pod to be gone",
        )
        # ... and has seen it gone with the standby active, after the deletion.
        wait_for(
            lambda: any(
                s.state_of(old) == "gone" and s.active() == [new] for s in sampler.after("delete")
            ),
            30,
            "a sweep with the deleted pod gone and the standby active",
        )
    print(f"\nsampler: {sampler.report()}\n{sampler.timeline()}")
    # At no sampled instant were two pods active, nor one unknown while another was; and the
    # pods' logs show no overlap shorter than a sweep either (a newcomer that resumed while
    # the active one ran, until kopf peering paused that one).
    problems = sampler.problems()
    assert not problems, f"{sampler.report()}\n" + "\n".join(problems[:20])
    preempted = sampler.preemptions()
    assert not preempted, "two replicas active at once: " + "; ".join(map(str, preempted))
    # No object was processed by both: every pass of the old replica ended before the new one
    # resumed, and the new one ran no pass before it resumed.
    old_log, new_log = logs[old], logs[new]
    resumed = new_log.times_of("Resuming operations")
    assert resumed, new_log.text()[-2000:]
    new_passes = new_log.times_of("pass done")
    assert new_passes, new_log.text()[-2000:]
    assert old_log.lines, "the deleted pod's log was not read"
    assert all(t < resumed[-1] for t in old_log.times_of("pass done"))
    assert all(t > resumed[-1] for t in new_passes)
    # The Deployment replaces the pod; the release is whole again for the next test.
    wait_for(lambda: len(ready_pods(api, ns, release.name)) == 2, 120, "two Ready pods again")


def test_a_database_outage_drops_readiness_and_restarts_nothing(release: ChartRelease) -> None:
    env, api, ns = release.env, release.api, release.namespace
    assert env.postgres is not None
    wait_for(lambda: len(ready_pods(api, ns, release.name)) == 2, 120, "two Ready pods")
    restarts = {
        p.metadata.name: p.status.container_statuses[0].restart_count for p in release.pods()
    }
    env.postgres.stop(mode="fast", remove=False)
    stopped_at = time.monotonic()
    try:
        wait_for(lambda: not ready_pods(api, ns, release.name), 60, "readiness to drop")
        for pod in running_pods(api, ns, release.name):
            assert probe(pod, "/readyz")[0] == 503
            assert probe(pod, "/readyz")[1]["database"] == "down"
            assert probe(pod, "/healthz")[0] == 200
        # The outage outlasts the liveness window (plus a probe period): a liveness probe
        # tied to the database would have restarted the containers by then.
        wait_for(
            lambda: (
                time.monotonic() - stopped_at > LIVENESS_WINDOW_S + LIVENESS["periodSeconds"]
                and not ready_pods(api, ns, release.name)
            ),
            120,
            "an outage longer than the liveness window",
            interval=0.5,
        )
    finally:
        env.postgres.start_again()
    wait_for(lambda: len(ready_pods(api, ns, release.name)) == 2, 120, "readiness to return")
    assert {
        p.metadata.name: p.status.container_statuses[0].restart_count for p in release.pods()
    } == restarts
    # And the operator works again.
    release.custom().patch_namespaced_custom_object(
        GROUP, VERSION, ns, "aiproviders", "seed", {"spec": {"displayName": "after outage"}}
    )
    wait_for(
        lambda: (
            release.rows("SELECT display_name FROM ai_providers WHERE name = 'seed'")
            == [("after outage",)]
        ),
        60,
        "an edit after the outage in Coder",
    )


def test_helm_upgrade_to_a_second_build_rolls_without_two_active_and_loses_no_change(
    release: ChartRelease, operator_image_2: BuiltImage
) -> None:
    api, ns = release.api, release.namespace
    assert operator_image_2.name != release.image.name
    wait_for(lambda: len(ready_pods(api, ns, release.name)) == 2, 120, "two Ready pods")
    before = {p.metadata.name for p in release.pods()}
    edits: list[str] = []
    stop = threading.Event()

    def edit_while_rolling() -> None:
        while not stop.is_set():
            name = f"rollout-{len(edits)}"
            release.custom().patch_namespaced_custom_object(
                GROUP, VERSION, ns, "aiproviders", "seed", {"spec": {"displayName": name}}
            )
            edits.append(name)
            stop.wait(0.5)  # the edit rate, not synchronisation

    with ActiveSampler(api, ns, release.name, release.env.node) as sampler:
        # The sampler has seen one of the old pods active before the upgrade.
        wait_for(
            lambda: any(len(s.active()) == 1 and s.active()[0] in before for s in sampler.sweeps),
            30,
            "a sweep with an old pod active, before the upgrade",
        )
        sampler.mark("upgrade")
        editor = threading.Thread(target=edit_while_rolling, daemon=True)
        editor.start()
        try:
            helm(
                release.env, "upgrade", release.name, str(CHART), "--namespace", ns,
                "--reuse-values", "--wait", "--timeout", "5m",
                values={"image": {"tag": operator_image_2.tag}},
            )  # fmt: skip
        finally:
            stop.set()
            editor.join(timeout=10)
        wait_for(
            lambda: (
                {p.metadata.name for p in release.pods()}.isdisjoint(before)
                and len(ready_pods(api, ns, release.name)) == 2
            ),
            120,
            "only new pods, both Ready",
        )
        the_active_pod(release)
        # ... and has seen every old pod gone and a new one active, after it.
        wait_for(
            lambda: any(
                all(s.state_of(p) == "gone" for p in before)
                and len(s.active()) == 1
                and s.active()[0] not in before
                for s in sampler.after("upgrade")
            ),
            30,
            "a sweep with the old pods gone and a new pod active",
        )
    print(f"\nsampler: {sampler.report()}")
    print("\n".join(sampler.logged(pod) for pod in sorted(sampler.transitions)))
    assert len(edits) >= 3
    assert all(p.spec.containers[0].image == operator_image_2.name for p in release.pods())
    # At no sampled instant were two pods active, nor one unknown while another was; and the
    # pods' logs show no overlap shorter than a sweep either (a newcomer that resumed while
    # the active one ran, until kopf peering paused that one).
    problems = sampler.problems()
    assert not problems, f"{sampler.report()}\n" + "\n".join(problems[:20])
    preempted = sampler.preemptions()
    assert not preempted, "two replicas active at once: " + "; ".join(map(str, preempted))
    obj = release.wait_ready("aiproviders", "seed")
    assert obj["spec"]["displayName"] == edits[-1]
    wait_for(
        lambda: (
            release.rows("SELECT display_name FROM ai_providers WHERE name = 'seed'")
            == [(edits[-1],)]
        ),
        60,
        "the last edit in Coder",
    )


def test_helm_uninstall_leaves_the_rows_in_coder(
    release: ChartRelease, node: DevEnv, node_api: client.ApiClient, operator_image: BuiltImage
) -> None:
    """Objects stay after ``helm uninstall`` (the CRDs are kept, bundled objects carry
    ``helm.sh/resource-policy: keep``), and so do their rows in Coder: both an object applied
    by a user and the ones bundled through ``providers:``/``gatewayKeys:``."""
    # A second release: the first one owns the CRDs.
    other = install(
        node, node_api, operator_image, "aigw-uninstall", llm_keys={"a": KEY_A, "b": KEY_B},
        crds={"enabled": False},
        providers=[{"name": "bundled", "spec": openai("b")}],
        gatewayKeys=[{"name": "bundled-gw", "spec": {}}],
    )  # fmt: skip
    try:
        other.apply("AIProvider", "aiproviders", "kept", openai("a"))
        other.apply("AIGatewayCoderdKey", "aigatewaycoderdkeys", "kept-gw", {})
        for plural, name in (
            ("aiproviders", "kept"), ("aiproviders", "bundled"),
            ("aigatewaycoderdkeys", "kept-gw"), ("aigatewaycoderdkeys", "bundled-gw"),
        ):  # fmt: skip
            other.wait_ready(plural, name)
        other.uninstall()
        wait_for(lambda: not other.pods(), 120, "the release's pods to go")
        for plural, name in (("aiproviders", "kept"), ("aiproviders", "bundled")):
            assert "deletionTimestamp" not in other.get(plural, name)["metadata"], name
        for name in ("kept-gw", "bundled-gw"):
            assert "deletionTimestamp" not in other.get("aigatewaycoderdkeys", name)["metadata"]
        assert other.rows(
            "SELECT name, deleted FROM ai_providers WHERE name IN ('kept', 'bundled') ORDER BY 1"
        ) == [("bundled", False), ("kept", False)]
        assert len(other.rows("SELECT 1 FROM ai_provider_keys")) == 2
        assert len(other.rows(
            "SELECT 1 FROM ai_gateway_keys WHERE name IN ('kept-gw', 'bundled-gw')"
        )) == 2  # fmt: skip
    finally:
        remove_release(other)
