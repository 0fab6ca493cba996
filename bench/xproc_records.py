"""Shared-memory record rings across processes, until the cases join `python -m ringbus
bench` (issue 10): one producer process -> a consumer thread in this process, 16-byte
records, every one counted, 5 runs interleaved with the same producer code in a thread of
this process (a heap ring) for reference. Prints medians and ranges.

    python bench/xproc_records.py
"""
import statistics, subprocess, sys, threading, time, uuid
import numpy as np, ringbus

DT = np.dtype([("seq", "<i8"), ("v", "<f8")])
def produce(ring, mode, n):
    block = np.zeros(1024, DT); block["seq"] = np.arange(1024)
    if mode == "many":
        for _ in range(n // 1024):
            ring.publish_many(block)
    else:
        pub = ring.publish
        for i in range(n):
            pub((i, 0.0))

def one(mode, n, cross):
    name = f"xb-{uuid.uuid4().hex[:8]}"
    ring = ringbus.RecordRing(DT, 65536, shared=name) if cross else ringbus.RecordRing(DT, 65536)
    count = [0]; done = threading.Event()
    def h(view):
        count[0] += len(view)
        if count[0] >= n: done.set()
    ring.subscribe(h)
    ring.start()
    if cross:
        p = subprocess.Popen([sys.executable, __file__, "--produce", name, mode, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter(); p.stdin.write("\n"); p.stdin.flush()
        done.wait(120); dt = time.perf_counter() - t0; p.wait()
    else:
        t0 = time.perf_counter()
        th = threading.Thread(target=produce, args=(ring, mode, n)); th.start()
        done.wait(120); dt = time.perf_counter() - t0; th.join()
    ring.stop()
    assert count[0] == n, count
    if cross:
        ring.unlink()
        ring.close()
    return n / dt

def main():
    for mode, n in (("many", 4096 * 1024), ("one", 300_000)):
        res = {}
        for r in range(5):
            for cross in (False, True):
                res.setdefault(cross, []).append(one(mode, n, cross))
        for cross in (False, True):
            v = res[cross]
            where = "cross-process" if cross else "in-process   "
            print(f"{mode:4s} {where}: median {statistics.median(v) / 1e6:6.2f} M rec/s "
                  f"(range {min(v) / 1e6:.2f}-{max(v) / 1e6:.2f}, 5 runs)")


def _child(name, mode, n):
    """The producer process: attach, say ready, publish when told (stdin)."""
    ring = ringbus.RecordRing.attach(name)
    print("ready", flush=True)
    sys.stdin.readline()
    produce(ring, mode, int(n))
    ring.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--produce"]:
        _child(*sys.argv[2:5])
    else:
        main()
