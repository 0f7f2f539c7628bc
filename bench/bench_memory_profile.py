"""Where the operator's memory per object goes: tracemalloc on the real operator.

``PYTHONPATH=. python bench/bench_memory_profile.py [--objects 1000] [--frames 32]``
Starts its own local environment (``DevEnv.up``: kube-apiserver + etcd, Postgres 15) and
stops it at the end. The operator runs as the bench runs it (``aigateway-operator run`` as a
subprocess, kopf watching, a daemon per object), under tracemalloc from its first import
(``bench/traced_operator.py``). A snapshot is taken at rest with no objects, and again once
``--objects`` AIProviders (one Secret of 2 keys each) are Ready and the operator is idle.

The difference of the two snapshots, divided by the number of objects, is the Python heap
each object costs. It is grouped three ways:

* **by package, responsible**: the innermost frame of the allocation's stack that is not
  the standard library (kopf calling ``copy.deepcopy`` is kopf's); an allocation whose whole
  stack is the standard library is named by the innermost module (``asyncio`` ...);
* **by package, where allocated**: the innermost frame's package (``asyncio`` for a task's
  structures even when kopf created the task);
* **by our module**, and kopf's by its module: the share of the first grouping that is
  ``aigateway_operator``'s (or kopf's), by the module of that frame.

What is not the Python heap (RSS minus traced bytes minus tracemalloc's own memory: the
interpreter, C extensions' buffers, malloc's free lists and arenas, fragmentation) is given
at both points. tracemalloc slows the operator (two to three times): take times from
``bench_memory.py``, not from here. Written to ``bench/results/memory-profile.txt``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from common import (
    RESULTS_DIR,
    Operator,
    Watcher,
    api_client,
    create_namespace,
    create_providers,
    create_secrets,
    fresh_database,
    install_finalizer_policy,
    log,
    start_env,
)
from tools.devenv.env import DevEnv

NS = "bench-memprof"
HERE = Path(__file__).resolve().parent
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve().as_posix()
SRC = (HERE.parent / "src").resolve().as_posix()
#: Under tracemalloc every pass is several times slower: with the default timeouts the passes
#: waiting for a pooled connection or the provider lock give up and retry in a loop (seen at
#: 32 frames on a loaded machine). Longer waits change no per-object state.
SLOW_OPERATOR_ENV = {
    "AIGW_POOL_TIMEOUT_S": "300",
    "AIGW_LOCK_TIMEOUT_MS": "120000",
    "AIGW_STATEMENT_TIMEOUT_MS": "120000",
}


@functools.cache
def package_of(filename: str) -> tuple[str, bool]:
    """``(label, is_stdlib)`` of a frame's file: a site-packages distribution's top-level
    name, ``aigateway_operator``, or ``stdlib:<module>``."""
    if filename.startswith("<"):
        return "stdlib:<frozen>", True
    path = Path(filename).as_posix()
    if "/site-packages/" in path:
        top = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        return top.removesuffix(".py"), False
    if path.startswith(SRC) or "/aigateway_operator/" in path:
        return "aigateway_operator", False
    if path.startswith(STDLIB):
        rest = path[len(STDLIB) + 1 :]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py"), True
    return "other:" + Path(path).name, False


@functools.cache
def our_module(filename: str) -> str | None:
    path = Path(filename).as_posix()
    if "/aigateway_operator/" not in path:
        return None
    rest = path.split("/aigateway_operator/", 1)[1].removesuffix(".py")
    return "aigateway_operator." + rest.replace("/", ".").removesuffix(".__init__")


@functools.cache
def kopf_module(filename: str) -> str | None:
    path = Path(filename).as_posix()
    if "/site-packages/kopf/" not in path:
        return None
    return "kopf." + path.split("/site-packages/kopf/", 1)[1].removesuffix(".py").replace("/", ".")


def group(snap: tracemalloc.Snapshot) -> dict[str, Counter[str]]:
    """Bytes by each grouping (see the module docstring), plus the top lines."""
    out: dict[str, Counter[str]] = {
        k: Counter() for k in ("responsible", "innermost", "ours", "ours_lines", "kopf", "lines")
    }
    for trace in snap.traces:
        # tracemalloc keeps the most recent frames and sorts them oldest first (3.7+).
        tb = list(reversed(trace.traceback))
        size = trace.size
        if not tb:
            out["innermost"]["<no frame>"] += size
            out["responsible"]["<no frame>"] += size
            continue
        inner_label, _ = package_of(tb[0].filename)
        out["innermost"][inner_label] += size
        responsible, where = inner_label, tb[0]
        for f in tb:
            label, std = package_of(f.filename)
            if not std:
                responsible, where = label, f
                break
        out["responsible"][responsible] += size
        out["lines"][f"{responsible:<18} {where.filename}:{where.lineno}"] += size
        if responsible == "aigateway_operator":
            mod = our_module(where.filename) or where.filename
            out["ours"][mod] += size
            out["ours_lines"][f"{mod}:{where.lineno}"] += size
        elif responsible == "kopf":
            out["kopf"][kopf_module(where.filename) or where.filename] += size
    return out


def take(op: Operator, out_dir: Path, n: int, timeout: float = 900) -> tuple[dict, Path]:
    assert op.proc is not None
    os.kill(op.proc.pid, signal.SIGUSR1)
    facts = out_dir / f"snap-{n}.json"
    deadline = time.monotonic() + timeout
    while not facts.exists():
        if op.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("no snapshot written")
        time.sleep(0.5)  # poll interval, bounded by the deadline
    return json.loads(facts.read_text()), out_dir / f"snap-{n}.pickle"


def run(
    env: DevEnv, objects: int, frames: int, tmp: Path, extra_env: dict[str, str]
) -> tuple[dict, dict, Path, Path]:
    assert env.kubeconfig is not None
    api = api_client(env.kubeconfig)
    create_namespace(api, NS)
    install_finalizer_policy(api, NS)
    snaps = tmp / "snaps"
    snaps.mkdir()
    op = Operator(
        env,
        fresh_database(env),
        NS,
        tmp / "operator.log",
        command=[str(HERE / "traced_operator.py"), str(frames), str(snaps)],
        extra_env=extra_env,
    )
    watcher = Watcher(api, NS).start()
    try:
        op.start(timeout=180)
        op.wait_idle(0, quiet_s=5)
        empty, empty_snap = take(op, snaps, 1)
        log(f"empty: {empty}")
        names = [f"p-{i:05d}" for i in range(objects)]
        create_secrets(api, NS, [f"keys-{n}" for n in names])
        create_providers(api, NS, [(n, f"keys-{n}") for n in names])
        watcher.wait_ready(names, 1800)
        op.wait_idle(objects, quiet_s=10, timeout=1800)
        full, full_snap = take(op, snaps, 2)
        log(f"{objects}: {full}")
    finally:
        watcher.stop()
        op.stop()
    return empty, full, empty_snap, full_snap


def table(
    title: str, before: Counter[str], after: Counter[str], objects: int, top: int
) -> list[str]:
    keys = set(before) | set(after)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    total = sum(diff.values())
    rows = sorted(diff.items(), key=lambda kv: -kv[1])
    out = [title, f"  {'bytes/object':>12}  {'share':>6}  what"]
    shown = 0
    for key, d in rows[:top]:
        out.append(f"  {d / objects:>12,.0f}  {d / total * 100 if total else 0:>5.1f}%  {key}")
        shown += d
    rest = total - shown
    if len(rows) > top:
        out.append(
            f"  {rest / objects:>12,.0f}  {rest / total * 100 if total else 0:>5.1f}%  (the rest)"
        )
    out.append(f"  {total / objects:>12,.0f}  100.0%  total")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--out", default=str(RESULTS_DIR / "memory-profile.txt"))
    parser.add_argument(
        "--env",
        action="append",
        default=[f"{k}={v}" for k, v in SLOW_OPERATOR_ENV.items()],
        metavar="NAME=VALUE",
        help="added to the operator's environment",
    )
    parser.add_argument("--note", default="", help="a line for the header (what code ran)")
    parser.add_argument(
        "--snapshots", help="only group the snapshots of an earlier run (its snaps directory)"
    )
    args = parser.parse_args()
    # A run in the background ignores SIGINT; SIGTERM stops it the same way (env.down runs).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    extra_env = dict(e.split("=", 1) for e in args.env)
    if args.snapshots:
        snaps = Path(args.snapshots)
        empty, full = (json.loads((snaps / f"snap-{i}.json").read_text()) for i in (1, 2))
        empty_snap, full_snap = snaps / "snap-1.pickle", snaps / "snap-2.pickle"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="aigw-bench-memprof-"))
        env = start_env()
        try:
            empty, full, empty_snap, full_snap = run(env, args.objects, args.frames, tmp, extra_env)
        finally:
            env.down()
            log(f"operator log and snapshots kept in {tmp}")
    log("grouping the snapshots")
    g0 = group(tracemalloc.Snapshot.load(str(empty_snap)))
    g1 = group(tracemalloc.Snapshot.load(str(full_snap)))
    n = args.objects
    mb = 1024 * 1024

    def untraced(f: dict) -> float:
        return f["rss_kb"] * 1024 - f["traced_bytes"] - f["tracemalloc_overhead_bytes"]

    lines = [
        f"Memory per object: tracemalloc on the real operator, 0 -> {n:,} AIProviders",
        f"(bench/bench_memory_profile.py --objects {n} --frames {args.frames};"
        f" operator environment {extra_env};"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; python {sys.version.split()[0]})",
        *([args.note] if args.note else []),
        "",
        f"{'':34}{'0 objects':>14}{f'{n:,} objects':>16}{'per object':>14}",
    ]
    for label, key, scale in (
        ("RSS (under tracemalloc)", "rss_kb", 1024),
        ("Python heap traced", "traced_bytes", 1),
        ("tracemalloc's own memory", "tracemalloc_overhead_bytes", 1),
    ):
        a, b = empty[key] * scale, full[key] * scale
        lines.append(f"{label:34}{a / mb:>11.1f} MB{b / mb:>13.1f} MB{(b - a) / n:>12,.0f} B")
    a, b = untraced(empty), untraced(full)
    lines.append(
        f"{'not Python heap (RSS-traced-own)':34}{a / mb:>11.1f} MB{b / mb:>13.1f} MB"
        f"{(b - a) / n:>12,.0f} B"
    )
    lines.append(
        f"{'gc-tracked objects':34}{empty['gc_objects']:>14,}{full['gc_objects']:>16,}"
        f"{(full['gc_objects'] - empty['gc_objects']) / n:>14,.0f}"
    )
    lines.append(
        "(RSS under tracemalloc is inflated by it: compare the traced heap per object with"
    )
    lines.append(" bench_memory.py's RSS per object for what is not Python heap)")
    lines.append("")
    lines += table(
        "Python heap per object by package (responsible: innermost non-stdlib frame)",
        g0["responsible"],
        g1["responsible"],
        n,
        20,
    )
    lines.append("")
    lines += table(
        "Python heap per object by package (where allocated: innermost frame)",
        g0["innermost"],
        g1["innermost"],
        n,
        20,
    )
    lines.append("")
    lines += table("kopf's share, by its module", g0["kopf"], g1["kopf"], n, 15)
    lines.append("")
    lines += table(
        "ours (responsible: aigateway_operator), by module",
        g0["ours"],
        g1["ours"],
        n,
        25,
    )
    lines.append("")
    lines += table("ours, top lines", g0["ours_lines"], g1["ours_lines"], n, 30)
    lines.append("")
    lines += table(
        "top lines (responsible package, its innermost frame)", g0["lines"], g1["lines"], n, 40
    )
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
