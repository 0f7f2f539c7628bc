"""Operator memory (RSS) against the number of AIProviders it manages.

``PYTHONPATH=. python bench/bench_memory.py [--sizes 0,1000,5000,10000] [--budget 900]``
(or ``BENCH_MEMORY_SIZES``, ``BENCH_MEMORY_BUDGET_S``). Starts its own local environment
(``DevEnv.up``) and stops it at the end.

The operator starts with no objects; at each size the missing Secrets (one per provider,
keys ``a`` and ``b``) and AIProviders (type openai, 2 keys) are created with 16 client
threads, a watch waits until every object is ``Ready=True``, then the operator is waited on
until idle (``aigw_reconciles_total`` >= objects, then unchanged for 5 s) and its RSS is read
from ``/proc/<pid>/status`` (``VmRSS``; ``VmHWM`` is the peak so far). Baseline: the RSS of
the same process at 0 objects; figures are also given as MB per 1,000 objects above it.

A size whose projected duration (from the rate of the previous step) would exceed
``--budget`` seconds in total is skipped, and the RSS at the largest requested size is then
extrapolated linearly from the last two measured points, and labelled so in the table and
in ``bench/results/memory.json``. Goal (issue #25): at most 25 MB per 1,000 objects above
the empty process, measured at 0 / 1,000 / 5,000 / 10,000.

``--env NAME=VALUE`` (repeatable) adds a variable to the operator's environment
(``MALLOC_ARENA_MAX=2`` ...), recorded in the result.

The result file says what was measured and nothing else: ``goal`` (its sizes and bound),
``largest_measured``, ``mb_per_1000_at_goal_size`` (``null`` unless a point was measured at
the goal's size, 10,000), and ``goal_met``: ``true``/``false`` only when measured at that
size, ``null`` otherwise (an extrapolation is labelled as one and never decides it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    Operator,
    Watcher,
    api_client,
    create_namespace,
    create_providers,
    create_secrets,
    fresh_database,
    install_finalizer_policy,
    log,
    print_table,
    start_env,
    write_result,
)
from tools.devenv.env import DevEnv

NS = "bench-mem"
#: Issue #25: RSS at most 25 MB per 1,000 objects above the empty process, at these sizes.
GOAL_MB_PER_1000 = 25.0
GOAL_SIZES = (0, 1_000, 5_000, 10_000)
GOAL_OBJECTS = GOAL_SIZES[-1]


def verdict(points: list[dict[str, Any]]) -> dict[str, Any]:
    """What the measured ``points`` say about the goal: nothing unless one was measured at the
    goal's largest size (``goal_met`` is then ``None``); when it was, every measured size
    must be within the bound."""
    base = next((p["rss_mb"] for p in points if p["objects"] == 0), None)
    per_k = {
        p["objects"]: (p["rss_mb"] - base) / p["objects"] * 1000
        for p in points
        if p["objects"] and base is not None
    }
    at_goal = per_k.get(GOAL_OBJECTS)
    return {
        "goal": {
            "statement": "RSS <= 25 MB per 1,000 objects above the empty process (issue #25)",
            "mb_per_1000_above_empty_at_most": GOAL_MB_PER_1000,
            "sizes": list(GOAL_SIZES),
        },
        "largest_measured": max((p["objects"] for p in points), default=None),
        "mb_per_1000_at_goal_size": at_goal,
        "goal_met": None
        if at_goal is None
        else all(v <= GOAL_MB_PER_1000 for k, v in per_k.items() if k in GOAL_SIZES),
    }


def hwm_mb(op: Operator) -> float:
    assert op.proc is not None
    for line in Path(f"/proc/{op.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    env: DevEnv, sizes: list[int], budget: float, tmp: Path, extra_env: dict[str, str]
) -> dict[str, Any]:
    assert env.kubeconfig is not None
    api = api_client(env.kubeconfig)
    create_namespace(api, NS)
    install_finalizer_policy(api, NS)
    op = Operator(env, fresh_database(env), NS, tmp / "operator.log", extra_env=extra_env)
    watcher = Watcher(api, NS).start()
    points: list[dict[str, Any]] = []
    skipped: list[int] = []
    t_start = time.monotonic()
    try:
        op.start()
        have = 0
        rate: float | None = None  # seconds per object, from the previous step
        for size in sizes:
            add = size - have
            elapsed = time.monotonic() - t_start
            if rate is not None and elapsed + add * rate > budget:
                log(f"skipping {size}: projected {add * rate:.0f}s would exceed the budget")
                skipped.append(size)
                continue
            t0 = time.monotonic()
            names = [f"p-{i:05d}" for i in range(have, size)]
            if names:
                create_secrets(api, NS, [f"keys-{n}" for n in names])
                create_providers(api, NS, [(n, f"keys-{n}") for n in names])
                watcher.wait_ready(names, max(600.0, budget))
            op.wait_idle(size, quiet_s=5)
            step = time.monotonic() - t0
            if add:
                rate = step / add
            have = size
            point = {
                "objects": size,
                "rss_mb": op.rss_mb(),
                "hwm_mb": hwm_mb(op),
                "step_seconds": step,
            }
            points.append(point)
            log(f"memory: {point}")
    finally:
        watcher.stop()
        op.stop()
    return {"points": points, "skipped_sizes": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=os.environ.get("BENCH_MEMORY_SIZES", "0,1000,5000,10000")
    )
    parser.add_argument(
        "--budget", type=float, default=float(os.environ.get("BENCH_MEMORY_BUDGET_S", 900))
    )
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", default="memory", help="result name under bench/results")
    args = parser.parse_args()
    extra_env = dict(e.split("=", 1) for e in args.env)
    sizes = sorted({int(s) for s in args.sizes.split(",")} | {0})
    tmp = Path(tempfile.mkdtemp(prefix="aigw-bench-mem-"))
    env = start_env()
    try:
        result = run(env, sizes, args.budget, tmp, extra_env)
    finally:
        env.down()
        log(f"operator log kept in {tmp}")

    points = result["points"]
    base = points[0]["rss_mb"]
    rows = []
    for p in points:
        per_k = (p["rss_mb"] - base) / p["objects"] * 1000 if p["objects"] else 0.0
        p["mb_per_1000_above_empty"] = per_k
        p["ratio_to_empty"] = p["rss_mb"] / base
        note = "baseline (empty)" if not p["objects"] else f"{per_k:.1f} MB / 1,000 objects"
        rows.append((f"RSS at {p['objects']:,} objects", f"{p['rss_mb']:.1f} MB", note))
    largest = max(sizes)
    if points[-1]["objects"] < largest and len(points) >= 2:
        a, b = points[-2], points[-1]
        slope = (b["rss_mb"] - a["rss_mb"]) / (b["objects"] - a["objects"])
        est = b["rss_mb"] + slope * (largest - b["objects"])
        result["extrapolated"] = {"objects": largest, "rss_mb": est, "from": [a, b]}
        rows.append((f"RSS at {largest:,} (EXTRAPOLATED)", f"{est:.1f} MB", "not a measurement"))
    judged = verdict(points)
    met = {True: "met", False: "MISSED", None: "not measured at that size"}[judged["goal_met"]]
    rows.append(
        (f"goal: at {GOAL_OBJECTS:,}", "", f"<= {GOAL_MB_PER_1000:.0f} MB / 1,000 objects: {met}")
    )
    result.update(
        {
            "baseline_rss_mb_empty": base,
            "largest_requested": largest,
            **judged,
            "secrets": "one per provider, 2 keys",
            "operator_env": extra_env,
        }
    )
    path = write_result(args.out, result)
    print_table(rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
