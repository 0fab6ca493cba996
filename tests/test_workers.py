"""Worker processes (issue 11): events routed by key to worker processes, results back on
the parent's bus, supervision with real faults (SIGKILL of a worker, a handler that kills
its process, the parent killed or interrupted), and nothing left behind."""
import collections
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

import ringbus
from processes import SHM, reap, run

pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory in /dev/shm")
TESTS = str(Path(__file__).parent)


def _segments(pid=None):
    return sorted(p.name for p in SHM.glob(f"ringbus.rbw{pid or os.getpid()}-*"))


def _until(done, seconds):
    """Wait for ``done()`` (a worker's counters reaching a value), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _bus():
    bus = ringbus.Bus()
    return bus, bus.event_type("tick"), bus.event_type("done")


def _wired(setup, **options):
    """A bus whose ticks go to Workers(setup) and whose ``done`` events are collected."""
    bus, tick, done = _bus()
    got = []
    bus.subscribe(done, got.append)
    workers = ringbus.Workers(setup, **options)
    bus.subscribe(tick, workers)
    return bus, tick, workers, got


def _check_per_key(results, n, keys):
    """Every n once (after dropping what came again marked), in order per key."""
    per = collections.defaultdict(list)
    for sym, i, _pid, _again in results:
        per[sym].append(i)
    assert sorted(i for _, i, _, _ in results) == list(range(n))
    for sym, seq in per.items():
        assert seq == sorted(seq), sym
    assert set(per) == keys


def _poisoned_wiring():
    """worker_apps.poisoned on one worker, max_attempts=2; the bus's errors in a list."""
    reported = []
    bus = ringbus.Bus(on_error=lambda t, p, sub, exc: reported.append((t, p, exc)))
    tick, done = bus.event_type("tick"), bus.event_type("done")
    got = []
    bus.subscribe(done, got.append)
    workers = ringbus.Workers("worker_apps:poisoned", processes=1, max_attempts=2)
    bus.subscribe(tick, workers)
    return bus, tick, workers, got, reported


def test_events_go_by_key_in_order_and_come_back_on_the_parent_bus():
    bus, tick, workers, got = _wired("worker_apps:echo", processes=2, key="sym")
    n, producers = 60_000, 3
    # A key's events come from one producer: order per key is that producer's order.
    keys = {f"P{j}-{k}" for j in range(producers) for k in range(11)}
    with workers.running(bus):
        with bus.running():
            def produce(j):
                for i in range(j, n, producers):
                    bus.publish(tick, {"sym": f"P{j}-{i % 11}", "n": i})
            threads = [threading.Thread(target=produce, args=(j,)) for j in range(producers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    bus.drain()                             # what came back after the bus's consumer stopped
    assert len(got) == n
    _check_per_key(got, n, keys)
    # A key's events all went to the worker that owns it.
    pids = {}
    for sym, _i, pid, again in got:
        assert pids.setdefault(sym, pid) == pid and not again
    assert len(set(pids.values())) == 2
    s = workers.stats()
    assert (s["events_in"], s["handled"], s["published_back"]) == (n, n, n)
    assert (s["errors"], s["restarts"], s["redelivered"], s["poisoned"], s["lag"]) == (0,) * 5
    assert [w["worker"] for w in s["workers"]] == [0, 1]
    assert sum(w["events_in"] for w in s["workers"]) == n
    for sym in keys:
        assert workers.worker_of(sym) == [w["worker"] for w in s["workers"]
                                          if w["pid"] == pids[sym]][0]
    assert _segments() == []


def test_a_killed_worker_is_replaced_and_what_it_held_comes_again_marked():
    bus, tick, workers, got = _wired("worker_apps:slow_echo", processes=2, key="sym")
    n = 6000
    with workers.running(bus):
        for i in range(n):
            bus.emit(tick, {"sym": f"K{i % 5}", "n": i})
        victim = workers.stats()["workers"][0]
        _until(lambda: workers.stats()["workers"][0]["handled"] >= 200, 30)
        os.kill(victim["pid"], signal.SIGKILL)      # mid-stream: its inbox still holds work
        _until(lambda: workers.stats()["workers"][0]["restarts"] > 0, 60)
    bus.drain()
    s = workers.stats()
    assert s["restarts"] == 1 and s["workers"][0]["pid"] != victim["pid"]
    # At-least-once: anything seen twice was marked the second time; after dropping the
    # marked copies of what was already seen, every event once, in order per key.
    seen, firsts = set(), []
    for sym, i, pid, again in got:
        if i in seen:
            assert again, (sym, i)
            continue
        seen.add(i)
        firsts.append((sym, i, pid, again))
    _check_per_key(firsts, n, {f"K{k}" for k in range(5)})
    assert s["redelivered"] >= len(got) - n
    assert _segments() == []


def test_a_poison_event_is_taken_out_after_max_attempts_and_reported():
    bus, tick, workers, got, reported = _poisoned_wiring()
    with workers.running(bus):
        for p in ["a", "poison", "b", "raise", "c"]:
            bus.emit(tick, p)
        _until(lambda: workers.stats()["handled"] >= 5, 60)
    bus.drain()
    # "a" was handled, not yet released, when "poison" killed the worker: it comes again,
    # marked; dropping marked copies of what was seen leaves each event once.
    assert [p for p, again in got if not again] == ["a", "b", "c"]
    assert [p for p, again in got if again] in ([], ["a"])
    s = workers.stats()
    assert (s["poisoned"], s["restarts"], s["errors"]) == (1, 2, 1)
    (t, payload, exc), = reported
    assert (t, payload) == (tick, "poison") and isinstance(exc, ringbus.PoisonEvent)
    assert exc.attempts == 2 and exc.worker == 0 and exc.event_type == tick
    assert bus.stats()["handler_errors"] == 1


def test_events_routed_in_one_dispatch_batch_go_as_one_message_and_count_one_by_one():
    bus, tick, workers, got = _wired("worker_apps:echo", processes=2, key="sym")
    n = 5000
    with workers.running(bus):
        for i in range(n):
            bus.publish(tick, {"sym": f"K{i % 7}", "n": i})
        bus.drain()                         # one batch: the router sends at its end
        _until(lambda: workers.stats()["handled"] == n, 60)
        inbox_messages = sum(s.inbox.stats()["published"] for s in workers._slots)
    bus.drain()
    _check_per_key(got, n, {f"K{k}" for k in range(7)})
    assert inbox_messages < n / 100         # gathered: a message per worker per 1024 at most
    s = workers.stats()
    assert (s["events_in"], s["handled"], s["published_back"], s["lag"]) == (n, n, n, 0)


def test_a_poison_event_in_a_gathered_message_is_found_and_only_it_is_taken_out():
    bus, tick, workers, got, reported = _poisoned_wiring()
    with workers.running(bus):
        for p in ["a", "poison", "b", "raise", "c"]:
            bus.publish(tick, p)
        bus.drain()                         # the five as one gathered message
        _until(lambda: workers.stats()["poisoned"] == 1 and workers.stats()["lag"] == 0, 60)
    bus.drain()
    # The message died twice: first with the item unknown, then, handled carefully, at
    # "poison", which is left out; the others are handled (marked: the message came again).
    assert got == [("a", True), ("b", True), ("c", True)]
    (t, payload, exc), = [r for r in reported if isinstance(r[2], ringbus.PoisonEvent)]
    assert (t, payload, exc.attempts, exc.worker) == (tick, "poison", 2, 0)
    s = workers.stats()
    assert (s["poisoned"], s["restarts"], s["errors"]) == (1, 2, 1)
    assert s["redelivered"] >= 5


def test_a_gathered_batch_too_long_for_one_message_goes_event_by_event():
    bus, tick, workers, got = _wired("worker_apps:big_echo", processes=1,
                                     capacity_bytes=1 << 16)
    with workers.running(bus):
        for i in range(40):                 # 40 x 4 KiB: more than a 32 KiB message
            bus.publish(tick, bytes([i]) * 4096)
        bus.drain()
        _until(lambda: workers.stats()["handled"] == 40, 60)
    bus.drain()
    assert got == [(4096, bytes([i])) for i in range(40)]


def test_an_event_the_codec_cannot_carry_goes_to_the_error_policy_the_rest_are_sent():
    bus, tick, workers, got, reported = _poisoned_wiring()
    unpicklable = threading.Lock()
    with workers.running(bus):
        for p in ["a", unpicklable, "b"]:
            bus.publish(tick, p)
        bus.drain()
        _until(lambda: workers.stats()["handled"] == 2, 60)
    bus.drain()
    assert got == [("a", False), ("b", False)]
    (t, p, exc), = reported
    assert p is unpicklable and isinstance(exc, TypeError)


def test_a_handler_raising_system_exit_ends_its_worker_and_the_event_comes_again(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("RINGBUS_TEST_SEEN", str(tmp_path / "seen"))
    bus, tick, workers, got = _wired("worker_apps:exits", processes=1)
    with workers.running(bus):
        for p in range(4):
            bus.emit(tick, p)
        _until(lambda: workers.stats()["handled"] >= 4, 60)
    bus.drain()
    firsts = []
    for p, again in got:
        if p in firsts:
            assert again, p                 # a copy of what the dead worker had in hand
        else:
            firsts.append(p)
    assert firsts == [0, 1, 2, 3]
    assert (1, True) in got and (1, False) not in got   # it never finished the first time
    assert workers.stats()["restarts"] == 1


def test_names_a_worker_registers_are_allocated_by_the_parent():
    bus, tick, _done = _bus()
    bus.event_type("parent.only")
    got = []
    workers = ringbus.Workers("worker_apps:names_later", processes=2)
    bus.subscribe(tick, workers)
    with workers.running(bus):
        fresh = bus.event_type("made.in.worker")     # registered by the workers' setup
        bus.subscribe(fresh, got.append)
        for p in range(6):
            bus.emit(tick, p)
        _until(lambda: workers.stats()["published_back"] >= 6, 30)
    bus.drain()
    assert sorted(p for p, _ in got) == list(range(6))
    for p, later in got:
        assert bus.event_name(later) == f"later.{p}"
    assert bus.event_types["made.in.worker"] == fresh


def test_batches_of_rows_are_split_by_key_in_one_pass_and_keep_their_order():
    np = pytest.importorskip("numpy")
    bus, tick, done = _bus()
    got = []
    bus.subscribe(done, got.append)
    workers = ringbus.Workers("worker_apps:batch_echo", processes=2, key="sym")
    bus.subscribe_batch(tick, workers)      # the rows of a batch, routed as batches
    dt = np.dtype([("sym", "<i8"), ("n", "<i8")])
    blocks, size = 20, 1000
    with workers.running(bus):
        for b in range(blocks):
            rows = np.zeros(size, dt)
            rows["n"] = np.arange(b * size, (b + 1) * size)
            rows["sym"] = rows["n"] * 7 % 13
            bus.emit_batch(np.full(size, tick), rows)
    bus.drain()
    per, pids = collections.defaultdict(list), {}
    for syms, ns, pid in got:
        for sym, n in zip(syms, ns):
            per[sym].append(n)
            assert pids.setdefault(sym, pid) == pid     # a key stays on one worker
    assert sorted(n for ns in per.values() for n in ns) == list(range(blocks * size))
    assert all(ns == sorted(ns) for ns in per.values()) and len(per) == 13
    for sym, pid in pids.items():             # the worker a single event of it would get
        assert workers.stats()["workers"][workers.worker_of(np.int64(sym))]["pid"] == pid


def test_a_worker_answers_bus_request():
    bus = ringbus.Bus()
    ask = bus.event_type("ask")
    workers = ringbus.Workers("worker_apps:answers", processes=2, key=lambda x: x)
    bus.subscribe(ask, workers)
    with workers.running(bus), bus.running():
        futures = {x: bus.request(ask, x, timeout=30) for x in range(10)}
        failing = bus.request(ask, -1, timeout=30)
        answers = {x: f.result(30) for x, f in futures.items()}
        with pytest.raises(ValueError, match="negative: -1"):
            failing.result(30)
    assert {x: a[0] for x, a in answers.items()} == {x: 2 * x for x in range(10)}
    pids = {a[1] for a in answers.values()}
    assert len(pids) == 2                   # answered by the worker that owns the key
    for x, (_, pid) in answers.items():
        assert workers.stats()["workers"][workers.worker_of(x)]["pid"] == pid


def test_bad_setup_is_refused_in_the_parent():
    with pytest.raises(ImportError, match="no_such_module"):
        ringbus.Workers("no_such_module:setup")
    with pytest.raises(ValueError, match="no such function"):
        ringbus.Workers("worker_apps:missing")
    with pytest.raises(TypeError, match="not a function"):
        ringbus.Workers("worker_apps:not_a_function")
    with pytest.raises(TypeError, match="module:function"):
        ringbus.Workers("worker_apps.echo")
    with pytest.raises(TypeError, match="importable"):
        ringbus.Workers(lambda bus: None)
    with pytest.raises(ValueError, match="processes"):
        ringbus.Workers("worker_apps:echo", processes=0)
    with pytest.raises(TypeError, match="key"):
        ringbus.Workers("worker_apps:echo", key=3)
    with pytest.raises(ValueError, match="start_method"):
        ringbus.Workers("worker_apps:echo", start_method="fork")


def test_a_setup_that_raises_fails_start_with_its_traceback():
    bus, tick, _ = _bus()
    workers = ringbus.Workers("worker_apps:broken", processes=2)
    bus.subscribe(tick, workers)
    with pytest.raises(RuntimeError, match="setup failed on purpose"):
        workers.start(bus)
    assert _segments() == []


def test_routing_outside_running_is_an_error_not_a_silent_drop():
    errors = []
    bus = ringbus.Bus(on_error=lambda t, p, sub, exc: errors.append(exc))
    tick = bus.event_type("tick")
    workers = ringbus.Workers("worker_apps:echo", processes=1, key="sym")
    bus.subscribe(tick, workers)
    bus.emit(tick, {"sym": "A", "n": 0})
    assert isinstance(errors[0], RuntimeError) and "not running" in str(errors[0])


PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import ringbus
if __name__ == "__main__":
    bus = ringbus.Bus()
    tick = bus.event_type("tick")
    workers = ringbus.Workers("worker_apps:slow_echo", processes=2, key="sym")
    bus.subscribe(tick, workers)
    with workers.running(bus):
        for i in range(100):
            bus.emit(tick, {"sym": i % 3, "n": i})
        print(" ".join(str(w["pid"]) for w in workers.stats()["workers"]), flush=True)
        time.sleep(600)
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet by its parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids, seconds=30):
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, [p for p in pids if _alive(p)]
        time.sleep(0.05)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_workers_never_outlive_the_parent_and_leave_no_segment(how):
    """SIGKILL of the parent: the workers see their control pipe close, remove their rings
    and exit. SIGINT (Ctrl-C): the parent stops them cleanly and exits."""
    parent = run(PARENT, TESTS)
    try:
        line = parent.stdout.readline()
        assert line, parent.stderr.read()
        pids = [int(p) for p in line.split()]
        os.kill(parent.pid, how)
        parent.wait(timeout=60)
        _wait_gone(pids)
        deadline = time.monotonic() + 10
        while _segments(parent.pid):
            assert time.monotonic() < deadline, _segments(parent.pid)
            time.sleep(0.05)
        if how == signal.SIGINT:
            assert parent.returncode != 0 and "KeyboardInterrupt" in parent.stderr.read()
    finally:
        reap(parent)


def test_no_worker_process_or_segment_is_left_behind():
    import multiprocessing
    assert _segments() == []
    assert [p for p in multiprocessing.active_children()
            if p.name.startswith("ringbus-worker")] == []


@pytest.mark.parametrize("codec", ["pickle", "msgspec"])
def test_event_types_interleaved_in_one_batch_keep_their_order_both_ways(codec):
    # Ticks and quotes of one key, interleaved irregularly, gathered in one dispatch batch
    # (a gathered message whose types differ) and one by one (emit: a message each); the
    # worker's answers of two types come back in that same order, through either codec.
    if codec == "msgspec":
        pytest.importorskip("msgspec")
    bus = ringbus.Bus()
    tick, quote = bus.event_type("tick"), bus.event_type("quote")
    done, quoted = bus.event_type("done"), bus.event_type("quoted")
    got = []
    bus.subscribe(done, got.append)
    bus.subscribe(quoted, got.append)
    workers = ringbus.Workers("worker_apps:mixed_echo", processes=2, key="sym", codec=codec)
    bus.subscribe(tick, workers)
    bus.subscribe(quote, workers)
    kinds = ["tick" if (i * 7) % 5 < 3 else "quote" for i in range(3000)]
    with workers.running(bus):
        for i, kind in enumerate(kinds):
            bus.publish(tick if kind == "tick" else quote, {"sym": "ES", "n": i})
        bus.drain()                         # one batch: gathered, types interleaved
        for i, kind in enumerate(kinds[:50], start=len(kinds)):
            bus.emit(tick if kind == "tick" else quote, {"sym": "ES", "n": i})
        _until(lambda: workers.stats()["handled"] == len(kinds) + 50, 60)
    bus.drain()
    assert [(k, n) for k, n, _ in got] == list(zip(kinds + kinds[:50], range(len(kinds) + 50)))
    assert len({pid for _, _, pid in got}) == 1       # one key: one worker
    s = workers.stats()
    assert (s["events_in"], s["handled"], s["published_back"]) == (3050, 3050, 3050)


def test_forkserver_start_method_runs_the_same_group():
    bus, tick, workers, got = _wired("worker_apps:echo", processes=2, key="sym",
                                     start_method="forkserver")
    with workers.running(bus):
        for i in range(200):
            bus.publish(tick, {"sym": f"K{i % 3}", "n": i})
        bus.drain()
        _until(lambda: workers.stats()["handled"] == 200, 60)
    bus.drain()
    _check_per_key(got, 200, {"K0", "K1", "K2"})
    assert not _segments()


@pytest.mark.parametrize("library", ["pandas", "polars", "pyarrow"])
def test_a_frames_rows_reach_the_workers_as_records_split_by_key(library):
    np = pytest.importorskip("numpy")
    lib = pytest.importorskip(library)
    bus, tick, done = _bus()
    got = []
    bus.subscribe(done, got.append)
    workers = ringbus.Workers("worker_apps:batch_echo", processes=2, key="sym")
    bus.subscribe_batch(tick, workers)
    n = np.arange(200)
    columns = {"sym": n * 7 % 5, "n": n, "kind": ["tick"] * 200}
    frame = (lib.table(columns) if library == "pyarrow" else lib.DataFrame(columns))
    with workers.running(bus):
        bus.emit_batch("kind", frame)           # the names column gives the type
    bus.drain()
    per = collections.defaultdict(list)
    for syms, ns, pid in got:
        for sym, x in zip(syms, ns):
            per[sym].append((x, pid))
    assert sorted(x for v in per.values() for x, _ in v) == list(range(200))
    assert all(len({pid for _, pid in v}) == 1 for v in per.values())    # a key, one worker
    assert all([x for x, _ in v] == sorted(x for x, _ in v) for v in per.values())
