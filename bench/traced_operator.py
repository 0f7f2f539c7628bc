"""``aigateway-operator run`` under tracemalloc, for ``bench/bench_memory_profile.py``.

``python bench/traced_operator.py FRAMES OUT_DIR run ...``: starts tracemalloc (``FRAMES``
frames per allocation) before anything is imported, then runs the operator's command line.
On SIGUSR1 it collects garbage, reads its figures, and writes ``OUT_DIR/snap-<n>.pickle``
(the snapshot) and ``OUT_DIR/snap-<n>.json`` (VmRSS, traced bytes, tracemalloc's own memory,
read before the snapshot), the JSON last: its appearance says the pair is complete. The
handler runs on the main thread, between two bytecodes of the event loop, so the snapshot
is of an operator at rest.
"""

from __future__ import annotations

import tracemalloc

tracemalloc.start(int(__import__("sys").argv[1]))

import gc  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402

OUT = Path(sys.argv[2])
_count = 0


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _dump(signum: int, frame: FrameType | None) -> None:
    global _count
    _count += 1
    gc.collect()
    # Every figure before the snapshot, which itself takes memory (its Python objects).
    traced, peak = tracemalloc.get_traced_memory()
    facts = {
        "rss_kb": _status_kb("VmRSS"),
        "hwm_kb": _status_kb("VmHWM"),
        "traced_bytes": traced,
        "traced_peak_bytes": peak,
        "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory(),
        "gc_objects": len(gc.get_objects()),
    }
    snap = tracemalloc.take_snapshot()
    stem = OUT / f"snap-{_count}"
    snap.dump(str(stem) + ".pickle")
    del snap
    gc.collect()
    tmp = Path(str(stem) + ".json.tmp")
    tmp.write_text(json.dumps(facts))
    tmp.rename(str(stem) + ".json")


signal.signal(signal.SIGUSR1, _dump)

from aigateway_operator.cli import main  # noqa: E402

sys.exit(main(sys.argv[3:]))
