"""Interleave two ringbus builds, full runs alternating, and compare ring hand-off rows.

    python bench/compare_builds.py /path/venv-before/bin/python /path/venv-after/bin/python --runs 5
    python bench/compare_builds.py BEFORE AFTER --cases one_to_one,fan_out_10   # emit rows

Each run is a fresh interpreter of one build running the ring cases of ``python -m ringbus
bench`` (one-thread publish+drain, 1->1 and 3->1 threads) and the RecordRing throughput
module; builds alternate run by run (A B A B ...), so machine noise falls on both alike.
Prints, per row, each build's median over the runs' medians, its range, and the ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_PROBE = r"""
import json, sys
from ringbus import benchmarks
from ringbus.benchmarks import record_ring
s = benchmarks.Settings.quick() if "--quick" in sys.argv else benchmarks.Settings()
s.waits = ("block", "yield")
cases = [a for a in sys.argv[1:] if not a.startswith("--")]
rep = benchmarks.run(s, only=cases or ["one_thread_publish_drain", "one_to_one_threads",
                                       "three_to_one_threads"])
rows = {}
for case in rep.cases:
    for c in case.contenders:
        if c.label.startswith("ringbus") and c.median:
            rows[f"{case.name}/{c.label} ns/event"] = c.median
if not cases:
    rr = record_ring.measure()
    rows["record_ring nogil->batch records/s"] = rr["record_ring"]["median"]
    rows["record_ring object_ring events/s"] = rr["object_ring"]["median"]
print("ROWS" + json.dumps(rows))
"""


def _one(python: str, quick: bool, cases: list[str]) -> dict[str, float]:
    out = subprocess.run([python, "-c", _PROBE] + (["--quick"] if quick else []) + cases,
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("ROWS"))
    return json.loads(line[4:])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cases", default="",
                   help="comma-separated case names of `python -m ringbus bench` "
                        "(default: the ring hand-off cases and the RecordRing module)")
    a = p.parse_args()
    cases = [c for c in a.cases.split(",") if c]
    got: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(a.runs):
        for name in ("before", "after"):
            got[name].append(_one(getattr(a, name), a.quick, cases))
            print(f"run {i + 1}/{a.runs} {name} done", file=sys.stderr, flush=True)
    print("| row | before median (range) | after median (range) | after/before |")
    print("|:---|---:|---:|---:|")
    for row in got["before"][0]:
        b = [r[row] for r in got["before"] if row in r]
        f = [r[row] for r in got["after"] if row in r]
        if not b or not f:
            continue
        mb, mf = statistics.median(b), statistics.median(f)
        print(f"| {row} | {mb:,.1f} ({min(b):,.1f}-{max(b):,.1f}) | "
              f"{mf:,.1f} ({min(f):,.1f}-{max(f):,.1f}) | {mf / mb:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
