"""Which of a release's pods say they are the active replica, sampled over and over, with
every sample accounted for: the "never two active" check of the handover and upgrade tests.

Each sweep lists the release's pods and asks every pod it has ever seen, terminating ones
included (the old replicas of a roll are exactly those), for the ``aigw_active_replica``
gauge on its metrics endpoint. That endpoint is served by prometheus_client's own thread from
the moment the operator starts until the process ends, so it keeps answering while kopf
stops the replica and the event loop winds down (``/readyz`` asks the database and can stall
then). The gauge goes to 0 as soon as kopf pauses or stops the replica.

Every sample is one of four states, never skipped:

- ``active`` / ``inactive``: the pod answered 1 / 0; also ``inactive``: a pod that has never
  answered refuses the connection (nothing listens: the endpoint is started by kopf's
  startup handler, and kopf lets no replica act before that handler is done);
- ``gone``: no process of the pod runs: the pod is no longer in the API, its container has
  terminated, it has no address yet (not started), its address now belongs to a newer pod
  (the IPAM released it), or, once the connection was refused (by a pod that answered
  before) or the address was unreachable, the API or the node (the container's cgroup: the
  API's status lags behind it) says no process of its container runs; a container seen
  ended stays ``gone`` (a restart is a new container);
- ``unknown``: the probes failed (connected but no answer in time, HTTP error, no such
  series; ``ATTEMPTS`` tries of ``PROBE_TIMEOUT_S`` each) while the process still runs,
  unless its log (the runtime's file on the node) shows it was not active when the probes
  began (its last "this replica is ..." line before then is not "active", and none since
  is); then ``inactive``. (A process that has begun to exit no longer answers:
  interpreter shutdown freezes the endpoint's thread while the socket still accepts.)

:meth:`ActiveSampler.problems` names sweeps with two ``active`` pods and ``unknown`` samples
taken in a sweep where another pod was active (that pod might have been active too). The
sampler also follows each pod's log file on the node for the operator's "this replica is
..." lines (``transitions``): they date each change with the runtime's timestamps, which
shows overlaps shorter than a sweep (:meth:`ActiveSampler.preemptions`).
"""

from __future__ import annotations

import dataclasses
import errno
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TextIO

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.node import METRICS_PORT, parse_cri_time, pod_log_file
from tools.devenv.chart import operator_pods
from tools.devenv.node import K8S_NAMESPACE, Node

State = Literal["active", "inactive", "gone", "unknown"]
#: One probe's deadline, and how many probes a sweep makes of a pod before it says unknown.
PROBE_TIMEOUT_S = 2.0
ATTEMPTS = 3
#: The metric the operator sets from kopf's word on the replica, and the log line it writes
#: at each change ("this replica is active", "... is paused by kopf peering", "... is stopping").
ACTIVE_METRIC = "aigw_active_replica"
TRANSITION = "this replica is "


@dataclass(frozen=True)
class Sample:
    pod: str
    state: State
    why: str
    took: float = 0.0


@dataclass
class Sweep:
    started: float
    wall: datetime
    ended: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    def active(self) -> list[str]:
        return [s.pod for s in self.samples if s.state == "active"]

    def state_of(self, pod: str) -> State | None:
        return next((s.state for s in self.samples if s.pod == pod), None)

    def __str__(self) -> str:
        return ", ".join(
            f"{s.pod}={s.state}({s.why}{f', {s.took:.2f}s' if s.took > 0.5 else ''})"
            for s in self.samples
        )


#: What a transition line says the replica became.
STATES = ("active", "paused by kopf peering", "stopping")


@dataclass(frozen=True)
class Preemption:
    """``new`` logged becoming active at ``at`` while ``old`` was active; ``old`` logged
    being paused at ``until``."""

    old: str
    new: str
    at: datetime
    until: datetime

    def __str__(self) -> str:
        ms = (self.until - self.at).total_seconds() * 1000
        return (
            f"{self.new} active at {self.at:%H:%M:%S.%f} while {self.old} was, until it was "
            f"paused at {self.until:%H:%M:%S.%f} ({ms:.0f} ms later)"
        )


class _ProbeFailed(Exception):
    def __init__(self, why: str, *, connect: bool = False, refused: bool = False) -> None:
        super().__init__(why)
        self.why, self.connect, self.refused = why, connect, refused


def read_active(pod_ip: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """The pod's ``aigw_active_replica`` (True for 1, False for 0); :class:`_ProbeFailed`
    if it cannot be read (``connect``: refused or unreachable, so nothing listened at that
    address then; ``refused``: the address is there, nothing listens on the port)."""
    url = f"http://{pod_ip}:{METRICS_PORT}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise _ProbeFailed(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:  # urllib wraps what happens while connecting
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            raise _ProbeFailed("refused", connect=True, refused=True) from None
        if isinstance(reason, TimeoutError):
            # Not conclusive: a process frozen in shutdown lets its listen queue fill up.
            raise _ProbeFailed("connect timeout") from None
        if isinstance(reason, OSError) and reason.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise _ProbeFailed("unreachable", connect=True) from None
        raise _ProbeFailed(f"{type(reason).__name__}: {reason}") from None
    except TimeoutError:  # connected, no answer in time
        raise _ProbeFailed("timeout") from None
    except OSError as exc:  # reset while reading, ...
        raise _ProbeFailed(f"{type(exc).__name__}: {exc}") from None
    values = [
        line.split()[1]
        for line in text.splitlines()
        if line.startswith((f"{ACTIVE_METRIC} ", f"{ACTIVE_METRIC}{{"))
    ]
    if values == ["1.0"]:
        return True
    if values == ["0.0"]:
        return False
    raise _ProbeFailed(f"unparsable {ACTIVE_METRIC}: {values}")


def _container_id(pod: client.V1Pod) -> str | None:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    cid = statuses[0].container_id if statuses else None
    return cid.removeprefix("containerd://") if cid else None


def _container_gone(pod: client.V1Pod) -> str | None:
    """Why the API's view of the pod says no process of it runs, or None: its container has
    terminated, or the pod has no address yet (the kubelet reports the address with the
    started container, well before the operator in it can have started and become active)."""
    statuses = (pod.status.container_statuses or []) if pod.status else []
    state = statuses[0].state if statuses else None
    if state is not None and state.terminated is not None and state.running is None:
        return "terminated"
    if not (pod.status and pod.status.pod_ip):
        return "not started (no address yet)"
    return None


def container_runs(node: Node, pod_uid: str, container: str) -> bool:
    """Whether a process runs in the container, from its cgroup on the node (the runtime
    removes the cgroup when the container is deleted); ``ctr tasks`` if the pod has no cgroup
    where the kubelet's cgroupfs driver puts them."""
    for root in node.cgroup_dirs():
        pod_dirs = list(root.glob(f"kubepods*/**/pod{pod_uid}"))
        if not pod_dirs:
            continue
        procs = pod_dirs[0] / container / "cgroup.procs"
        try:
            return bool(procs.read_text().split())
        except OSError:
            return False
    tasks = node.ctr("-n", K8S_NAMESPACE, "tasks", "ls").stdout.splitlines()[1:]
    return any(p[0] == container and p[-1] == "RUNNING" for p in (t.split() for t in tasks))


class ActiveSampler:
    """Sweeps a release's pods every ``period`` seconds (see the module's docstring).

    ``node`` (the environment's node) lets a sweep ask the runtime whether a pod that did not
    answer still has a running process. :meth:`mark` records an event (the deletion, the
    upgrade) so that the test can check the sampler looked before and after it.
    """

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        release: str,
        node: Node | None = None,
        period: float = 0.1,
    ) -> None:
        self.api, self.namespace, self.release, self.node = api, namespace, release, node
        self.period = period
        self.sweeps: list[Sweep] = []
        self.listing_errors: list[str] = []
        """Sweeps whose pod listing failed (they asked the pods of the last listing)."""
        self.marks: dict[str, float] = {}
        self._pods: dict[str, client.V1Pod] = {}  # every pod seen, by name (last seen state)
        self._answered: set[str] = set()
        self._ended: set[str] = set()  # containers whose process has ended
        self._logs: dict[str, TextIO] = {}
        self.transitions: dict[str, list[tuple[datetime, str]]] = {}
        """Each pod's logged transitions (the runtime's timestamp, what it became)."""
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aigw-sampler")
        self._thread = threading.Thread(target=self._run, daemon=True)

    # --- sampling -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sweeps.append(self.sweep())
            self._stop.wait(self.period)  # the sampling period, not synchronisation

    def sweep(self) -> Sweep:
        sweep = Sweep(started=time.monotonic(), wall=datetime.now(UTC))
        try:
            listed = {
                p.metadata.name: p for p in operator_pods(self.api, self.namespace, self.release)
            }
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            # Recorded; this sweep asks the pods of the last listing.
            self.listing_errors.append(f"{type(exc).__name__}: {exc}")
            listed = None
        if listed is not None:
            for name, pod in listed.items():
                self._pods[name] = pod
        names = sorted(self._pods)
        deleted = {n for n in names if listed is not None and n not in listed}
        # An address the IPAM gave to a newer pod has been released by the older one.
        newest_at: dict[str, str] = {}
        for name in sorted(names, key=lambda n: self._pods[n].metadata.creation_timestamp):
            ip = self._pods[name].status.pod_ip if self._pods[name].status else None
            if ip and name not in deleted:
                newest_at[ip] = name
        futures = {
            name: self._pool.submit(self._sample, name, name in deleted, newest_at)
            for name in names
        }
        sweep.samples = [futures[name].result() for name in names]
        sweep.ended = time.monotonic()
        self._read_logs()
        return sweep

    def _read_logs(self) -> None:
        """Each pod's transitions as its log says, from the runtime's file on the node
        (opened once, read on: a deleted pod's file is read to its end)."""
        if self.node is None:
            return
        for name, pod in self._pods.items():
            if name not in self._logs:
                try:
                    self._logs[name] = pod_log_file(self.node, pod).open(errors="replace")
                except OSError:
                    continue
            for raw in self._logs[name].readlines():
                stamp, _, rest = raw.partition(" ")
                for marker in (TRANSITION, "Resuming operations", "Pausing operations"):
                    if marker in rest:
                        text = rest.split(marker, 1)[1].strip() if marker == TRANSITION else marker
                        self.transitions.setdefault(name, []).append((parse_cri_time(stamp), text))

    def _sample(self, name: str, deleted: bool, newest_at: dict[str, str]) -> Sample:
        started = time.monotonic()
        sample = self._classify(name, deleted, newest_at)
        return dataclasses.replace(sample, took=time.monotonic() - started)

    def _classify(self, name: str, deleted: bool, newest_at: dict[str, str]) -> Sample:
        if deleted:
            return Sample(name, "gone", "deleted from the API")
        pod = self._pods[name]
        container = _container_id(pod)
        if container in self._ended:
            # A container's process that has ended never runs again (a restart is a new one).
            return Sample(name, "gone", "ended in an earlier sweep")
        why_gone = _container_gone(pod)
        if why_gone:
            if why_gone == "terminated" and container:
                self._ended.add(container)
            return Sample(name, "gone", why_gone)
        ip = pod.status.pod_ip
        if newest_at.get(ip, name) != name:
            return Sample(name, "gone", f"its address is {newest_at[ip]}'s now")
        failures: list[str] = []
        process_checked = False
        asked_at = datetime.now(UTC)
        for _ in range(ATTEMPTS):
            try:
                active = read_active(ip)
            except _ProbeFailed as exc:
                failures.append(exc.why)
                if exc.refused and name not in self._answered:
                    # Nothing listens: the operator starts the endpoint in kopf's startup
                    # handler, before which kopf lets no replica act.
                    return Sample(name, "inactive", "refused: endpoint not started yet")
                if exc.connect and not process_checked:
                    # No connection: has the process ended (the sandbox may be going too)?
                    process_checked = True
                    gone = self._process_gone(pod)
                    if gone:
                        if container:
                            self._ended.add(container)
                        return Sample(name, "gone", f"{exc.why}; {gone}")
                continue
            self._answered.add(name)
            return Sample(name, "active" if active else "inactive", "metric")
        # The process ran when the probes failed (a process that has begun to exit stops
        # serving: interpreter shutdown freezes the endpoint's thread). What it logged says
        # whether it could be active when the probes began.
        logged = self._logged_inactive(pod, asked_at)
        if logged:
            return Sample(name, "inactive", f"{', '.join(failures)}; {logged}")
        return Sample(name, "unknown", ", ".join(failures))

    def _logged_inactive(self, pod: client.V1Pod, asked_at: datetime) -> str | None:
        """Whether the container's log (written by the runtime, with its timestamps) shows
        the replica was not active at ``asked_at``: the last "this replica is ..." line
        stamped before then is not "active" (or there is none), and no "active" line is
        stamped since. The runtime stamps a line when it reads it, just after the operator
        wrote it, and the file is read after the failed probes: a change to active before
        ``asked_at`` shows as an "active" line, before or just after it."""
        if self.node is None:
            return None
        logs = sorted(pod_log_file(self.node, pod).parent.glob("*.log"), key=lambda p: int(p.stem))
        if not logs:
            return None
        try:
            lines = logs[-1].read_text(errors="replace").splitlines()
        except OSError:
            return None
        transitions = []
        for raw in lines:
            stamp, _, rest = raw.partition(" ")
            if TRANSITION in rest:
                transitions.append((parse_cri_time(stamp), rest.split(TRANSITION, 1)[1]))
        before = [what for at, what in transitions if at < asked_at]
        since = [what for at, what in transitions if at >= asked_at]
        if (before and before[-1].startswith("active")) or any(
            what.startswith("active") for what in since
        ):
            return None
        last = before[-1].strip() if before else "never active"
        return f"not active at the probe, per its log ({last})"

    def _process_gone(self, pod: client.V1Pod) -> str | None:
        """After failed probes: whether the pod's process has ended, asked of the API and of
        the runtime on the node (the API's status lags behind it)."""
        try:
            now = client.CoreV1Api(self.api).read_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return "deleted from the API"
            now = pod
        why = _container_gone(now)
        if why:
            return why
        statuses = now.status.container_statuses or []
        if self.node is not None and statuses and statuses[0].container_id:
            container = statuses[0].container_id.removeprefix("containerd://")
            if not container_runs(self.node, now.metadata.uid, container):
                return "no process in its container on the node"
        return None

    # --- the test's side ------------------------------------------------------------------

    def mark(self, event: str) -> None:
        """Record that ``event`` happens now (between the sweeps before and after it)."""
        self.marks[event] = time.monotonic()

    def before(self, event: str) -> list[Sweep]:
        return [s for s in self.sweeps if s.ended < self.marks[event]]

    def after(self, event: str) -> list[Sweep]:
        return [s for s in self.sweeps if s.started > self.marks[event]]

    def counts(self) -> Counter[str]:
        return Counter(s.state for sweep in self.sweeps for s in sweep.samples)

    def problems(self) -> list[str]:
        """Sweeps where two pods were active, and unknown samples next to an active pod."""
        found = []
        for i, sweep in enumerate(self.sweeps):
            active = sweep.active()
            if len(active) > 1:
                found.append(f"sweep {i} at {sweep.wall:%H:%M:%S.%f}: two active: {sweep}")
                found += [f"  {self.logged(pod)}" for pod in active]
            for s in sweep.samples:
                if s.state == "unknown" and [p for p in active if p != s.pod]:
                    found.append(f"sweep {i}: {s.pod} unknown while another was active: {sweep}")
        return found

    def preemptions(self) -> list[Preemption]:
        """Overlaps the pods' logs show where a pod became active while another one was
        active, and the other one was then paused by kopf peering (not stopped): a new peer
        that resumed without waiting for the active one to pause (a replica ranked above the
        active one: ``operator.seniority_priority`` ranks a new one below)."""
        found = []
        for new, seen in self.transitions.items():
            for at, what in seen:
                if what != "active":
                    continue
                for old, theirs in self.transitions.items():
                    before = [w for t, w in theirs if t <= at and w in STATES]
                    after = [(t, w) for t, w in theirs if t > at and w in STATES]
                    if old == new or not before or before[-1] != "active" or not after:
                        continue
                    until, how = after[0]
                    if how.startswith("paused"):
                        found.append(Preemption(old, new, at, until))
        return found

    def logged(self, pod: str) -> str:
        """``pod``'s transitions as its log says, with the runtime's timestamps."""
        seen = self.transitions.get(pod, [])
        return f"{pod} logged: " + ", ".join(f"{at:%H:%M:%S.%f} {what}" for at, what in seen)

    def report(self) -> str:
        counts = dict(sorted(self.counts().items()))
        why = Counter(
            f"{s.state}: {s.why.split(';')[-1].strip()}"
            for sweep in self.sweeps
            for s in sweep.samples
            if s.why != "metric"
        )
        longest = max((s.ended - s.started for s in self.sweeps), default=0.0)
        return (
            f"{len(self.sweeps)} sweeps (longest {longest:.2f}s), samples {counts}, "
            f"not from the metric {dict(why)}, "
            f"{len(self.listing_errors)} failed listings {self.listing_errors[:3]}"
        )

    def timeline(self, limit: int = 40) -> str:
        """The sweeps around the marks (or the first ones), one line each, for a failure."""
        t0 = self.sweeps[0].started if self.sweeps else 0.0
        lines = [f"marks: { {k: round(v - t0, 2) for k, v in self.marks.items()} }"]
        for i, sweep in enumerate(self.sweeps[:limit]):
            lines.append(
                f"{i:4} +{sweep.started - t0:6.2f}s {sweep.ended - sweep.started:5.2f}s  {sweep}"
            )
        return "\n".join(lines)

    def __enter__(self) -> ActiveSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._pool.shutdown(wait=True)
        self._read_logs()
        for handle in self._logs.values():
            handle.close()
