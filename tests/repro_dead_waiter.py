"""``python tests/repro_dead_waiter.py``: a known fault not yet handled, found while building
issue 12's ring bridge (a script, not a test: the hang comes in most runs, not all). A process
killed while parked on a shared ring's condition variable (a consumer with wait="block",
idle) stays counted among its waiters, and glibc's condition variables are not robust to
that: once another thread parks, the next wake-up (a producer's publish, a consumer's
release) waits forever for the dead waiter, holding the GIL. ``MessageRing.poll`` never
parks on a shared ring for this reason. The scenario runs in a child process with a
deadline: it prints "hung" (exit 1) or "delivered 5" (exit 0)."""
import subprocess
import sys
import textwrap

SCENARIO = textwrap.dedent("""
    import subprocess, sys, time, ringbus
    name = sys.argv[1]
    ring = ringbus.MessageRing(4096, shared=name)        # wait="block": consumers park
    parked = subprocess.Popen([sys.executable, "-c", (
        "import ringbus, time\\n"
        f"r = ringbus.MessageRing.attach({name!r})\\n"
        "r.subscribe(lambda v: None)\\n"
        "r.start()\\n"
        "print('started', flush=True)\\n"
        "time.sleep(600)\\n")], stdout=subprocess.PIPE, text=True)
    parked.stdout.readline()
    time.sleep(0.5)                                     # idle: parked
    parked.kill()
    parked.wait()
    again = ringbus.MessageRing.attach(name)            # the next consumer parks too
    got = []
    again.subscribe(lambda v: got.append(bytes(v)))
    again.start()
    time.sleep(0.3)
    for i in range(5):
        ring.publish(b"x")                              # the hang: a wake-up
        time.sleep(0.05)
    again.stop()
    print("delivered", len(got), flush=True)
""")


def main() -> int:
    """Run the scenario in a child with a deadline; 0 if the wake-up came, 1 if it hung."""
    import os
    import uuid
    name = f"repro-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    child = subprocess.Popen([sys.executable, "-c", SCENARIO, name],
                             stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        out = "hung"
    finally:
        try:
            os.unlink(f"/dev/shm/ringbus.{name}")
        except FileNotFoundError:
            pass
    print(out.strip())
    return 0 if out.strip() == "delivered 5" else 1


if __name__ == "__main__":
    sys.exit(main())
