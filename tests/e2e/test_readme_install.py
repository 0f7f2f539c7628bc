"""The README's "Install from zero on a real cluster", run as written on the node.

The blocks marked ``<!-- install-step -->`` under that heading are extracted from README.md
(tests/support/readme.py) and run in order by bash, each as written, from a directory that
holds the repository's ``deploy/`` (so ``deploy/postgres/grants.sql`` and ``helm install ...
deploy/helm/aigateway-operator`` are the checkout's), with ``kubectl`` (built at the control
plane's version, ``tools.devenv.build.ensure_kubectl``), ``helm`` and ``psql`` on PATH. What
the test puts in instead of the reader's own:

- the ``<!-- install-env -->`` block's variables (it must export exactly the names given
  here): Coder's database is a fresh one on the environment's Postgres, with Coder's schema
  and coderd's encryption key registered as coderd leaves them; the image is the one the
  environment built from the same Dockerfile and imported into the node's containerd (there
  is no registry here), which is why the ``install-step: image`` block (build and push) is
  not run;
- the environment's pod networking: there is no kube-proxy, so pods reach the API server and
  STS at the node's address (:meth:`DevEnv.pod_environ`); ``helm`` on PATH adds those as one
  more values file to ``helm install``/``upgrade`` and passes everything else through.

The last step waits for the AIProvider to be Synced and reads Coder's table; the test then
checks the object's conditions and the row (the key decrypts to what the Secret holds) itself.
The chart's CRDs are removed before and after (a fresh cluster; nothing left owned by a
release that is gone), and the database role, the namespaces and the release go at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.gitops import remove_chart_crds
from tests.support.operator import condition
from tests.support.paths import repo_root
from tests.support.readme import Block, exported_names, marked_blocks, section
from tools.devenv.build import ensure_kubectl
from tools.devenv.coder_schema import create_coder_schema, register_key
from tools.devenv.env import DevEnv
from tools.devenv.helm import ensure_helm
from tools.devenv.images import BuiltImage
from tools.devenv.postgres import pg_bindir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HEADING = "### Install from zero on a real cluster"
#: What the README's steps create, by name (the test removes them afterwards).
ROLE, RELEASE, OPERATOR_NS, PROVIDER_NS = "aigw_operator", "aigw", "coder-aigw", "ai"
OPENAI_KEY = "sk-readme-0123456789abcdefghijklmnop"


def readme_blocks() -> list[Block]:
    return marked_blocks(section((repo_root() / "README.md").read_text(), HEADING))


def test_the_readme_marks_its_install_steps() -> None:
    """The extraction itself: one block of variables first, the image build, then steps that
    create the role, the namespaces and Secrets, install the chart from the repository path
    and apply a first provider."""
    blocks = readme_blocks()
    assert [b.kind for b in blocks[:1]] == ["env"]
    assert [b.name for b in blocks if b.kind == "step" and b.name] == ["image"]
    steps = "\n".join(b.code for b in blocks if b.kind == "step" and not b.name)
    for needed in (
        f"CREATE ROLE {ROLE} LOGIN",
        f"-v role={ROLE}",
        "deploy/postgres/grants.sql",
        f"kubectl create namespace {PROVIDER_NS}",
        "aigateway.dev/allowed-aiproviders=",
        "helm install aigw deploy/helm/aigateway-operator",
        "--for=condition=Synced",
    ):
        assert needed in steps, needed
    assert "REGISTRY" not in steps


@pytest.fixture
def coder_database(node: DevEnv) -> Iterator[tuple[str, bytes]]:
    """A database as coderd leaves it (Coder's schema, its key in dbcrypt_keys); its name and
    the key. The operator's role the README creates is dropped afterwards."""
    assert node.postgres is not None
    pg = node.postgres
    name = f"coder_{uuid.uuid4().hex[:10]}"
    key = secrets.token_bytes(32)
    with psycopg.connect(pg.superuser_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER aigw")  # type: ignore[arg-type]
    owner_dsn = pg.dsn.replace("/coder?", f"/{name}?")

    async def build() -> None:
        async with await psycopg.AsyncConnection.connect(owner_dsn, autocommit=True) as conn:
            await create_coder_schema(conn, "v2.36")
            await register_key(conn, key)

    asyncio.run(build())
    try:
        yield name, key
    finally:
        su = pg.superuser_dsn.replace("/postgres?", f"/{name}?")
        with psycopg.connect(su, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
            if exists:
                conn.execute(f"DROP OWNED BY {ROLE}")  # type: ignore[arg-type]
                conn.execute(f"DROP ROLE {ROLE}")  # type: ignore[arg-type]


@pytest.fixture
def fresh_node(node: DevEnv, node_api: client.ApiClient) -> Iterator[DevEnv]:
    core = client.CoreV1Api(node_api)
    existing = {n.metadata.name for n in core.list_namespace().items}
    assert not {OPERATOR_NS, PROVIDER_NS} & existing, "left over from an earlier run"
    remove_chart_crds(node_api)
    try:
        yield node
    finally:
        for ns in (OPERATOR_NS, PROVIDER_NS):
            try:
                core.delete_namespace(ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        remove_chart_crds(node_api)


def tools_dir(env: DevEnv, tmp: Path) -> Path:
    """kubectl, psql, and helm (which adds the environment's pod networking as one more values
    file to install/upgrade), on a PATH of their own."""
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "kubectl").symlink_to(ensure_kubectl())
    (bindir / "psql").symlink_to(pg_bindir() / "psql")
    pod_env = tmp / "environment-values.json"
    pod_env.write_text(
        json.dumps(
            {"extraEnv": [{"name": k, "value": v} for k, v in sorted(env.pod_environ().items())]}
        )
    )
    real = shlex.quote(str(ensure_helm()))
    extra = shlex.quote(str(pod_env))
    (bindir / "helm").write_text(
        "#!/bin/bash\n"
        f'case "$1" in install|upgrade) exec {real} "$@" -f {extra} ;; esac\n'
        f'exec {real} "$@"\n'
    )
    (bindir / "helm").chmod(0o755)
    return bindir


def test_install_from_zero_runs_as_written(
    fresh_node: DevEnv,
    node_api: client.ApiClient,
    operator_image: BuiltImage,
    coder_database: tuple[str, bytes],
    tmp_path: Path,
) -> None:
    env, api = fresh_node, node_api
    assert env.postgres is not None
    pg = env.postgres
    database, key = coder_database
    password = secrets.token_hex(16)
    admin_url = pg.superuser_dsn.replace("/postgres?", f"/{database}?")
    values = {
        "CODER_DATABASE_URL": admin_url,
        "AIGW_DB_PASSWORD": password,
        # The pods' view of the same server: the node's address.
        "AIGW_DATABASE_URL": (
            f"postgresql://{ROLE}:{password}@{pg.host}:{pg.port}/{database}?sslmode=disable"
        ),
        "CODER_EXTERNAL_TOKEN_ENCRYPTION_KEYS": base64.b64encode(key).decode(),
        "IMAGE_REPOSITORY": operator_image.repository,
        "IMAGE_TAG": operator_image.tag,
        "OPENAI_API_KEY": OPENAI_KEY,
    }
    blocks = readme_blocks()
    assert exported_names(blocks[0].code) == set(values)
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / "deploy").symlink_to(repo_root() / "deploy")
    helm_home = tmp_path / "helm"
    run_env = {
        "PATH": f"{tools_dir(env, tmp_path)}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(env.kubeconfig),
        "HELM_CACHE_HOME": str(helm_home / "cache"),
        "HELM_CONFIG_HOME": str(helm_home / "config"),
        "HELM_DATA_HOME": str(helm_home / "data"),
        **values,
    }
    try:
        for number, block in enumerate(blocks[1:], start=2):
            if block.name == "image":
                continue  # the environment's own build of the Dockerfile is on the node
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                cwd=workdir,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                logs = operator_logs(api)
                raise AssertionError(
                    f"README install step {number} failed ({proc.returncode}):\n"
                    f"{block.code}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n{logs}"
                )
        # The last step printed Coder's table; check the object and the row ourselves.
        assert "openai" in proc.stdout
        provider = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "aigateway.dev", "v1alpha1", PROVIDER_NS, "aiproviders", "openai"
        )
        synced = condition(provider, "Synced")
        assert synced is not None
        assert synced["status"] == "True"
        with psycopg.connect(admin_url) as conn:
            rows = conn.execute(
                "SELECT k.api_key FROM ai_provider_keys k JOIN ai_providers p "
                "ON p.id = k.provider_id WHERE p.name = 'openai' AND NOT p.deleted"
            ).fetchall()
        assert len(rows) == 1
        raw = base64.b64decode(rows[0][0])
        assert AESGCM(key).decrypt(raw[:12], raw[12:], None).decode() == OPENAI_KEY
    finally:
        subprocess.run(
            [str(ensure_helm()), "uninstall", RELEASE, "-n", OPERATOR_NS, "--wait"],
            env=run_env,
            capture_output=True,
            timeout=300,
            check=False,
        )


def operator_logs(api: client.ApiClient) -> str:
    core = client.CoreV1Api(api)
    try:
        pods = core.list_namespaced_pod(OPERATOR_NS).items
        return "\n".join(
            f"--- {p.metadata.name}\n"
            + core.read_namespaced_pod_log(p.metadata.name, OPERATOR_NS, tail_lines=30)
            for p in pods
        )
    except ApiException:
        return ""
