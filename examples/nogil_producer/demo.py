"""Run the example: a nogil producer thread publishes Ticks while Python consumes them in
batches on the ring's consumer thread, checking that every record arrived, in order.

    pip install "setuptools>=70.1" "cython>=3.1"
    pip install --no-build-isolation --check-build-dependencies examples/nogil_producer
    python examples/nogil_producer/demo.py [count]
"""
import sys
import threading
import time

import numpy as np

import nogil_producer
import ringbus


def main(count=2_000_000):
    ring = ringbus.RecordRing(nogil_producer.TICK, 4096)
    state = {"next": 0, "batches": 0}

    def on_ticks(view):                       # one call per batch, a zero-copy view
        seq = view["seq"]
        if seq[0] != state["next"] or not np.array_equal(
                seq, np.arange(state["next"], state["next"] + len(seq))):
            raise AssertionError(f"out of order at {state['next']}")
        state["next"] += len(seq)
        state["batches"] += 1

    ring.subscribe(on_ticks)
    t0 = time.perf_counter()
    with ring.running():
        producer = threading.Thread(target=nogil_producer.produce, args=(ring, count))
        producer.start()
        producer.join()
    seconds = time.perf_counter() - t0
    assert state["next"] == count, state
    print(f"{count} records in {state['batches']} batches, {seconds:.3f} s "
          f"({count / seconds / 1e6:.1f} M records/s), in order")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000)
