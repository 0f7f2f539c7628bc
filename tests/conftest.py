"""Session fixtures for the real local environment: Postgres 15, moto STS and kube-apiserver.

Each piece starts lazily, once per test session, only when a test asks for it, and is
stopped at the end of the session. Unit tests use none of them.

``node`` is a whole environment of its own with a node (kubelet, containerd, runc, a CNI
bridge): its API server, Postgres and STS serve on the node network so that pods reach them,
which the loopback-only pieces above cannot. Only tests that run pods ask for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import repo_root
from tools.devenv import build, kube
from tools.devenv.crds import apply_crds
from tools.devenv.env import DevEnv
from tools.devenv.images import BuiltImage, build_operator_image, derive_image
from tools.devenv.postgres import PostgresServer
from tools.devenv.sts import StsServer

pytest_plugins = ["tests.support.operator", "tests.support.tiers"]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real Postgres 15 server on loopback with a dedicated ``coder`` database."""
    # Our own temp dir, not pytest's: pytest prunes old numbered base dirs of concurrent
    # sessions, and a data dir pruned under a running server fails in confusing ways.
    base = Path(tempfile.mkdtemp(prefix="aigw-test-pg-"))
    server = PostgresServer.start(base / "server")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_dsn(postgres: PostgresServer) -> str:
    """DSN of the shared test database (tests that need isolation create their own schema/db)."""
    return postgres.dsn


@pytest.fixture(scope="session")
def sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsServer]:
    """moto's STS/IAM server on loopback."""
    base = Path(tempfile.mkdtemp(prefix="aigw-test-sts-"))
    server = StsServer.start(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def aws_env(sts: StsServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3's default credential chain and endpoints at the loopback STS via env only."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    env = sts.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Admin kubeconfig of a real API server, with the project's CRDs applied.

    By default a local etcd + kube-apiserver + kube-controller-manager is started (built from
    the Go module proxy on first use and cached). With ``AIGW_TEST_USE_EXISTING_CLUSTER=1``
    and ``KUBECONFIG`` set, that cluster is used instead.
    """
    existing = os.environ.get("KUBECONFIG")
    if os.environ.get("AIGW_TEST_USE_EXISTING_CLUSTER") == "1":
        if not existing:
            pytest.fail("AIGW_TEST_USE_EXISTING_CLUSTER=1 needs KUBECONFIG")
        path = Path(existing)
        apply_crds(path, repo_root() / "crds")
        yield path
        return
    bins = build.ensure_control_plane()
    base = Path(tempfile.mkdtemp(prefix="aigw-test-kube-"))
    plane = kube.start(bins, base)
    try:
        apply_crds(plane.kubeconfig, repo_root() / "crds")
        yield plane.kubeconfig
    finally:
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def k8s_api(kubeconfig: Path) -> Iterator[object]:
    """A ``kubernetes.client.ApiClient`` authenticated as cluster admin."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(k8s_api: object) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards; the namespace controller finishes it)."""
    import uuid

    from kubernetes import client

    core = client.CoreV1Api(k8s_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture(scope="session")
def node() -> Iterator[DevEnv]:
    """An environment with a Ready node (no CRDs: the chart installs them, as for a user)."""
    if os.environ.get("AIGW_TEST_USE_EXISTING_CLUSTER") == "1":
        pytest.skip("the node tests run their own node (AIGW_TEST_USE_EXISTING_CLUSTER=1)")
    env = DevEnv.up(with_node=True)
    try:
        yield env
    finally:
        env.down()


@pytest.fixture(scope="session")
def node_api(node: DevEnv) -> Iterator[object]:
    """An admin ``kubernetes.client.ApiClient`` of the node environment's API server."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(node.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def _image_on_node(node: DevEnv, image: BuiltImage) -> BuiltImage:
    assert node.node is not None
    node.node.import_image(image.archive)
    assert image.name in node.node.images(), f"{image.name} not in the node's containerd"
    return image


@pytest.fixture(scope="session")
def operator_image(node: DevEnv) -> BuiltImage:
    """The Dockerfile built by buildah (cached by ``image_key``, its inputs), on the node."""
    return _image_on_node(node, build_operator_image("dev"))


@pytest.fixture(scope="session")
def operator_image_2(node: DevEnv, operator_image: BuiltImage) -> BuiltImage:
    """Another image to upgrade to: ``operator_image``'s layers with a label added to its
    config (a new digest and reference, the same content), derived without a second build."""
    return _image_on_node(node, derive_image(operator_image, "dev-2", label="2"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[object]:
    """Keep each phase's report on the item, so fixtures can tell a failed test at teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)  # type: ignore[attr-defined]
    return report
