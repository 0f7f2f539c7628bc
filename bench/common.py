"""Shared harness for the operator benchmarks (``bench/bench_operator.py``, ``bench_memory.py``).

Run the benches from the repository root with ``PYTHONPATH=.`` (``make bench`` does): the
local environment is the repository's development tool ``tools.devenv``, not an installed package.

What lives here:

* :func:`start_env`: the local environment (kube-apiserver + etcd + controller manager,
  Postgres 15, moto STS) through :meth:`DevEnv.up`, torn down by the caller;
* :class:`Operator`: ``aigateway-operator run`` as a subprocess (as in a pod), its metrics
  endpoint, its RSS; ``BENCH_PROFILE=1`` runs it under cProfile (``--profile`` of the benches);
* :class:`Watcher`: one watch on the AIProviders of a namespace, counting events and Ready
  objects, so "all Ready" is a condition wait, not a sleep and not a repeated list;
* object creation through a thread pool against the API server;
* the *floor*: ``python bench/common.py floor ...`` is the minimum an operator has to do per
  object (watch, read the Secret, one transaction inserting the encrypted rows with
  :mod:`aigateway_operator.store.cipher`, one status patch), with the operator's concurrency:
  every object in flight at once, Kubernetes calls in asyncio's default thread pool (as
  ``kube/client.py`` does), a Postgres pool of ``AIGW_POOL_MAX_SIZE``'s default (4).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from aigateway_operator.store.cipher import KeyRing
from tools.devenv.coder_schema import prepare_coder_database
from tools.devenv.env import DevEnv
from tools.devenv.helm import apply_manifests, render_chart
from tools.devenv.procs import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
GROUP, VERSION, PLURAL = "aigateway.dev", "v1alpha1", "aiproviders"
KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()
#: Tables the operator writes (ai_gateway_keys too, for AIGatewayCoderdKey objects).
TABLES = (
    "ai_providers",
    "ai_provider_keys",
    "audit_logs",
    "dbcrypt_keys",
    "aigateway_operator.owners",
    "ai_gateway_keys",
)
CREATE_THREADS = 16


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# ---- environment ---------------------------------------------------------------------------


def start_env() -> DevEnv:
    t0 = time.monotonic()
    env = DevEnv.up(crds_dir=ROOT / "crds", progress=log)
    log(f"environment up in {time.monotonic() - t0:.1f}s")
    return env


def api_client(kubeconfig: Path | str, pool: int = 32) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return client.ApiClient(cfg)


def create_namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )


CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "aigateway-operator"


def install_finalizer_policy(api: client.ApiClient, namespace: str) -> None:
    """The chart's finalizer admission policy, bound to ``namespace``: the operator runs as
    the chart deploys it (the floor's namespace is not bound)."""
    values = {"database": {"existingSecret": {"name": "db"}}, "watchNamespaces": [namespace]}
    docs = render_chart(CHART, "bench", namespace, values, include_crds=False)
    policy = [d for d in docs if d["kind"].startswith("MutatingAdmissionPolicy")]
    assert len(policy) == 2, "the chart renders no finalizer policy"
    apply_manifests(api, policy)
    custom = client.CustomObjectsApi(api)
    probe = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"generateName": "policy-probe-"},
        "spec": {"type": "openai", "apiKeys": [{"secretKeyRef": {"name": "x", "key": "a"}}]},
    }
    deadline = time.monotonic() + 30
    while True:  # a new policy (or CRD) takes a moment to be served: wait on its effect
        try:
            obj = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, probe)
        except ApiException as exc:
            if exc.status not in (404, 503) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # poll interval, bounded by the deadline above
            continue
        name = obj["metadata"]["name"]
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": None}}
        )
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        if obj["metadata"].get("finalizers"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the finalizer policy never took effect")
        time.sleep(0.2)  # poll interval, bounded by the deadline above


def fresh_database(env: DevEnv) -> str:
    """A new database owned by the test role, as coderd with :data:`KEY` leaves it (Coder's
    schema, the key registered: ``tools/devenv/coder_schema.py``); returns its DSN."""
    assert env.postgres is not None
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(env.postgres.superuser_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER aigw")
    dsn = env.postgres.dsn.replace("/coder?", f"/{name}?")
    prepare_coder_database(dsn, [KEY])
    return dsn


def parallel(fn: Callable[[Any], Any], items: Iterable[Any], threads: int = CREATE_THREADS) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(fn, i) for i in items]:
            f.result()


def key_value(secret: str, key: str, rev: int = 0) -> str:
    return f"sk-bench-{secret}-{key}-r{rev}-{'x' * 24}"


def create_secrets(
    api: client.ApiClient, namespace: str, names: list[str], keys: tuple[str, ...] = ("a", "b")
) -> None:
    core = client.CoreV1Api(api)

    def one(name: str) -> None:
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=name,
                    annotations={
                        "aigateway.dev/allowed-aiproviders": "*",
                        "aigateway.dev/allowed-hosts": "*",
                    },
                ),
                string_data={k: key_value(name, k) for k in keys},
            ),
        )

    parallel(one, names)


def provider_body(name: str, secret: str, keys: tuple[str, ...] = ("a", "b")) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIProvider",
        "metadata": {"name": name},
        "spec": {
            "type": "openai",
            "displayName": f"Bench {name}",
            "apiKeys": [{"secretKeyRef": {"name": secret, "key": k}} for k in keys],
        },
    }


def create_providers(api: client.ApiClient, namespace: str, pairs: list[tuple[str, str]]) -> float:
    """Create ``(name, secret)`` providers through a thread pool; return the seconds taken."""
    custom = client.CustomObjectsApi(api)
    t0 = time.monotonic()
    parallel(
        lambda p: custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, provider_body(*p)
        ),
        pairs,
    )
    return time.monotonic() - t0


# ---- watching ------------------------------------------------------------------------------


def is_ready(obj: dict[str, Any]) -> bool:
    gen = obj.get("metadata", {}).get("generation")
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True" and c.get("observedGeneration") == gen)
    return False


def wait_ready_by_list(
    api: client.ApiClient, namespace: str, names: Iterable[str], timeout: float
) -> float:
    """Until every name is Ready (listing every half second); the monotonic time it was."""
    wanted = set(names)
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    while True:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        ready = {o["metadata"]["name"] for o in items if is_ready(o)}
        if wanted <= ready:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(wanted - ready)} of {len(wanted)} objects not Ready")
        time.sleep(0.5)  # poll interval, bounded by the deadline


@dataclass
class Watcher:
    """Watches every AIProvider of a namespace: resourceVersions, Ready, MODIFIED counts."""

    api: client.ApiClient
    namespace: str
    rv: dict[str, str] = field(default_factory=dict)
    ready: set[str] = field(default_factory=set)
    modified: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _stop: bool = False
    _thread: threading.Thread | None = None
    _w: watch.Watch | None = None

    def start(self) -> Watcher:
        list_rv = self._relist()
        self._thread = threading.Thread(target=self._run, args=(list_rv,), daemon=True)
        self._thread.start()
        return self

    def _relist(self) -> str:
        res = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        with self._cond:
            for obj in res["items"]:
                self._see(obj)
            self._cond.notify_all()
        return str(res["metadata"]["resourceVersion"])

    def _see(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.rv[name] = obj["metadata"]["resourceVersion"]
        if is_ready(obj):
            self.ready.add(name)
        else:
            self.ready.discard(name)

    def _run(self, rv: str) -> None:
        custom = client.CustomObjectsApi(self.api)
        while not self._stop:
            self._w = watch.Watch()
            try:
                for ev in self._w.stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    # The server ends each watch within a minute and resumes from ``rv``. This
                    # did NOT cure a stream seen blocked in a read after the quiet restart (twice;
                    # cause not found): steps after it wait by listing (wait_ready_by_list).
                    timeout_seconds=60,
                    _request_timeout=90,
                ):
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        rv = self._relist()
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] == "BOOKMARK":
                        continue
                    with self._cond:
                        if ev["type"] == "DELETED":
                            self.rv.pop(obj["metadata"]["name"], None)
                            self.ready.discard(obj["metadata"]["name"])
                        else:
                            if ev["type"] == "MODIFIED":
                                self.modified += 1
                            self._see(obj)
                        self._cond.notify_all()
            except ApiException as exc:
                if self._stop:
                    return
                if exc.status == 410:
                    rv = self._relist()
                else:
                    log(f"watch error {exc.status}; re-listing")
                    rv = self._relist()
            except Exception as exc:  # a dropped connection: resume from the last version
                if self._stop:
                    return
                log(f"watch dropped ({type(exc).__name__}); resuming")

    def stop(self) -> None:
        self._stop = True
        if self._w is not None:
            self._w.stop()

    def wait_ready(self, names: Iterable[str], timeout: float) -> float:
        """Block until every name is Ready; return the monotonic time it happened."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not wanted <= self.ready:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = len(wanted - self.ready)
                    raise TimeoutError(f"{missing} of {len(wanted)} objects not Ready")
                self._cond.wait(min(left, 1.0))
            return time.monotonic()

    def snapshot(self) -> tuple[dict[str, str], int]:
        with self._cond:
            return dict(self.rv), self.modified


# ---- the operator as a process -------------------------------------------------------------


@dataclass
class Operator:
    env: DevEnv
    database_url: str
    namespace: str
    log_path: Path
    profile_path: Path | None = None
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: What runs instead of ``-m aigateway_operator.cli`` (the traced wrapper of
    #: ``bench_memory_profile.py``); the command's arguments (``run``) follow it.
    command: list[str] | None = None
    #: Variables added to the operator's environment (``MALLOC_ARENA_MAX`` ...).
    extra_env: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIGW_"))}
        out.update(self.env.environ())
        out.update(
            {
                "AIGW_DATABASE_URL": self.database_url,
                "AIGW_ENCRYPTION_KEYS": KEY_B64,
                "AIGW_NAMESPACES": self.namespace,
                "AIGW_HEALTH_PORT": "0",
                "AIGW_METRICS_PORT": str(self.metrics_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        out.update(self.extra_env)
        return out

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        argv = [sys.executable]
        if self.profile_path is not None:  # one file per process: <stem>-<n>.prof
            out = self.profile_path.with_name(f"{self.profile_path.stem}-{self.starts}.prof")
            argv += ["-m", "cProfile", "-o", str(out)]
        argv += self.command or ["-m", "aigateway_operator.cli"]
        argv += ["run"]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=self.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:  # the metrics endpoint answers once the startup handler has run
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited: see {self.log_path}")
            with contextlib.suppress(OSError):
                self.metrics()
                return
            if time.monotonic() > deadline:
                raise TimeoutError("operator did not start")
            time.sleep(0.1)  # poll interval, bounded by the deadline

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value for every aigw_* sample."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("aigw_") and " " in line:
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def reconciles(self) -> float:
        m = self.metrics()
        return sum(v for k, v in m.items() if k.startswith("aigw_reconciles_total{"))

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def wait_idle(self, expected: int, quiet_s: float = 5.0, timeout: float = 600) -> float:
        """Wait until ``aigw_reconciles_total`` >= expected and then unchanged for
        ``quiet_s``; return the monotonic time it first reached ``expected``."""
        deadline = time.monotonic() + timeout
        reached: float | None = None
        last = -1.0
        since = time.monotonic()
        while True:
            now = time.monotonic()
            try:
                value = self.reconciles()
            except OSError:  # a scrape that timed out (a busy operator at 10,000 objects)
                if now > deadline:
                    raise
                continue
            if value != last:
                last, since = value, now
            if reached is None and value >= expected:
                reached = now
            if reached is not None and now - since >= quiet_s:
                return reached
            if now > deadline:
                raise TimeoutError(f"not idle: {value} reconciles, expected {expected}")
            time.sleep(0.2)  # poll interval, bounded by the deadline


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, its reaped children (cutime/cstime) and its live children: a
    postmaster and every backend, past and present."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(stat[1]) == pid:
            total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds per process; a name starting with "tree:" counts the whole process tree."""
    return {
        name: tree_cpu_seconds(pid) if name.startswith("tree:") else cpu_seconds(pid)
        for name, pid in pids.items()
    }


def settle(
    pids: dict[str, int], cores: float = 0.1, window: float = 1.0, timeout: float = 60
) -> float:
    """Wait until the processes in ``pids`` together use less than ``cores`` CPU over
    ``window`` seconds (what an earlier burst left running, such as compaction or GC, is
    done); returns the seconds waited. Gives up quietly at ``timeout``."""
    t0 = time.monotonic()
    before = sum(cpu_snapshot(pids).values())
    while time.monotonic() - t0 < timeout:
        time.sleep(window)  # the measuring window itself, bounded by the timeout
        now = sum(cpu_snapshot(pids).values())
        if now - before < cores * window:
            break
        before = now
    return time.monotonic() - t0


def api_requests(api: client.ApiClient) -> dict[str, float]:
    """kube-apiserver's ``apiserver_request_total``, summed by "VERB resource[/sub]"."""
    raw = api.rest_client.request("GET", api.configuration.host + "/metrics").read().decode()
    out: dict[str, float] = {}
    for line in raw.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_, value = line.rsplit(" ", 1)
        labels = dict(
            part.split("=", 1) for part in labels_[len("apiserver_request_total{") : -1].split(",")
        )
        resource = labels.get("resource", '""').strip('"')
        if not resource:
            continue  # /healthz, /metrics, discovery
        sub = labels.get("subresource", '""').strip('"')
        key = f"{labels.get('verb', '').strip(chr(34))} {resource}{'/' + sub if sub else ''}"
        out[key] = out.get(key, 0.0) + float(value)
    return out


def requests_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0)) for k, v in sorted(after.items()) if v - before.get(k, 0)}


# ---- database observations -----------------------------------------------------------------


def table_versions(dsn: str) -> dict[str, list[tuple[str, str]]]:
    """ctid/xmin of every row of the operator's tables: any INSERT/UPDATE/DELETE shows."""
    out: dict[str, list[tuple[str, str]]] = {}
    with psycopg.connect(dsn) as conn:
        for t in TABLES:
            rows = conn.execute(
                f"SELECT ctid::text, xmin::text FROM {t} ORDER BY ctid"  # noqa: S608
            ).fetchall()
            out[t] = [(str(a), str(b)) for a, b in rows]
    return out


def write_counters(dsn: str) -> dict[str, int]:
    """n_tup_ins + n_tup_upd + n_tup_del per table from pg_stat_user_tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s)",
            ([t.rsplit(".", 1)[-1] for t in TABLES],),
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def stable_write_counters(dsn: str, timeout: float = 30) -> dict[str, int]:
    """Counters once two reads 1.5 s apart agree (backends flush stats at most once a
    second, and at exit)."""
    deadline = time.monotonic() + timeout
    prev = write_counters(dsn)
    while True:
        time.sleep(1.5)  # poll interval: the stats flush interval is 1 s
        cur = write_counters(dsn)
        if cur == prev or time.monotonic() > deadline:
            return cur
        prev = cur


def provider_keys(dsn: str, names: list[str]) -> dict[str, list[str]]:
    """Decrypted key values of each named live provider, in failover order."""
    ring = KeyRing([KEY])
    out: dict[str, list[str]] = {n: [] for n in names}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.name, k.api_key, k.api_key_key_id FROM ai_providers p "
            "JOIN ai_provider_keys k ON k.provider_id = p.id "
            "WHERE p.name = ANY(%s) AND NOT p.deleted ORDER BY p.name, k.created_at, k.id",
            (names,),
        ).fetchall()
    for name, value, key_id in rows:
        out[name].append(ring.decrypt_field(value, key_id, "bench"))
    return out


# ---- results -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def write_result(name: str, data: dict[str, Any]) -> Path:
    data = {
        **data,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def print_table(rows: list[tuple[str, str, str]]) -> None:
    w = max(len(r[0]) for r in rows) + 2
    print(f"{'measurement':<{w}}{'value':>14}  goal / baseline")
    for label, value, note in rows:
        print(f"{label:<{w}}{value:>14}  {note}")


# ---- the floor -----------------------------------------------------------------------------


@dataclass
class PlainKopf:
    """``bench/plain_kopf.py`` under ``kopf run`` as a subprocess: the plain kopf contestant.

    It writes the same rows through the operator's store; its readiness is its first log line
    saying kopf is watching (it has no metrics endpoint of its own)."""

    env: DevEnv
    database_url: str
    namespace: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def environ(self) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIGW_"))}
        out.update(self.env.environ())
        out.update(
            {
                "AIGW_DATABASE_URL": self.database_url,
                "AIGW_ENCRYPTION_KEYS": KEY_B64,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return out

    def start(self, timeout: float = 60) -> None:
        argv = [
            sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", self.namespace,
            str(Path(__file__).resolve().parent / "plain_kopf.py"),
        ]  # fmt: skip
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=self.environ(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while "Activity 'startup' succeeded" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"plain kopf operator exited: see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError("plain kopf operator did not start")
            time.sleep(0.1)  # poll interval, bounded by the deadline

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Floor:
    """``bench/common.py floor`` as a subprocess; prints ``ready`` once it watches."""

    env: DevEnv
    database_url: str
    namespace: str
    log_path: Path
    proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60) -> None:
        assert self.env.kubeconfig is not None
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "floor",
            "--kubeconfig",
            str(self.env.kubeconfig),
            "--namespace",
            self.namespace,
        ]
        environ = {**os.environ, "BENCH_FLOOR_DSN": self.database_url, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as err:
            self.proc = subprocess.Popen(
                argv, env=environ, stdout=subprocess.PIPE, stderr=err, text=True
            )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("floor did not start") from None
        if line.strip() != "ready":
            raise RuntimeError(f"floor said {line!r}; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


PROVIDER_SQL = (
    "INSERT INTO ai_providers (id, type, name, display_name, enabled, base_url) "
    "VALUES (%s, 'openai', %s, %s, true, 'https://api.openai.com/v1/')"
)
KEY_SQL = (
    "INSERT INTO ai_provider_keys (id, provider_id, api_key, api_key_key_id) "
    "VALUES (%s, %s, %s, %s)"
)


async def _floor(kubeconfig: str, namespace: str, dsn: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    api = api_client(kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ring = KeyRing([KEY])
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()  # strong references while in flight
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
    await pool.open(wait=True)

    async def handle(obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj["spec"]
        refs = [k["secretKeyRef"] for k in spec["apiKeys"]]
        names = sorted({r["name"] for r in refs})
        secrets = {
            n: await asyncio.to_thread(core.read_namespaced_secret, n, namespace) for n in names
        }
        values = [base64.b64decode(secrets[r["name"]].data[r["key"]]).decode() for r in refs]
        pid = uuid.uuid4()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(PROVIDER_SQL, (pid, meta["name"], spec.get("displayName")))
            async with conn.cursor() as cur:
                await cur.executemany(
                    KEY_SQL, [(uuid.uuid4(), pid, *ring.encrypt_field(v)) for v in values]
                )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        gen = meta["generation"]
        body = {
            "status": {
                "observedGeneration": gen,
                "providerID": str(pid),
                "keyCount": len(values),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Ready",
                        "message": "floor",
                        "lastTransitionTime": now,
                        "observedGeneration": gen,
                    }
                ],
            }
        }
        await asyncio.to_thread(
            custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            meta["name"],
            body,
        )

    def watcher(rv: str) -> None:
        for ev in watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            resource_version=rv,
            timeout_seconds=3600,
        ):
            if ev["type"] == "ADDED":
                loop.call_soon_threadsafe(events.put_nowait, ev["object"])

    listing = await asyncio.to_thread(
        custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
    )
    for obj in listing["items"]:
        events.put_nowait(obj)
    threading.Thread(
        target=watcher, args=(listing["metadata"]["resourceVersion"],), daemon=True
    ).start()
    print("ready", flush=True)
    while True:
        obj = await events.get()
        name = obj["metadata"]["name"]
        if name in done or is_ready(obj):
            continue
        done.add(name)
        task = asyncio.create_task(handle(obj))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_reap)


def _reap(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log(f"floor: {task.exception()!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description="the floor: minimum work per AIProvider")
    parser.add_argument("command", choices=["floor"])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(_floor(args.kubeconfig, args.namespace, os.environ["BENCH_FLOOR_DSN"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
