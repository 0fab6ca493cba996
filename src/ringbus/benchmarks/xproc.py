"""What the process cases share: a producer process per case, driven round by round over a
control pipe, and the timed, checked run of one contender.

A process case (:mod:`.xproc_records`, :mod:`.xproc_messages`, :mod:`.xproc_latency`) builds
its channels (one per contender: a ringbus ring, a pipe, a queue...), each with a consumer
side in this process and a producer side to open in the other. It then starts ONE producer
process (``multiprocessing``'s spawn context) that opens every producer side and says it is
ready; the names of shared segments are removed at once (the memory stays mapped in both
processes), so nothing is left in ``/dev/shm`` whatever happens later. Start-up is never
timed.

A run of a contender: the consumer side is started (say, a ring's consumer thread), the
clock starts, ``("run", label, n, skip, period)`` goes down the control pipe, the producer
process sends ``n`` messages with sequence numbers ``0 .. n-1`` and answers ``("done", ...)``;
the clock stops once the consumer has handled the last message (for a ring:
``stop(drain=True)`` returned). Every message is checked, count and order; a wrong one raises
:class:`~.measure.Failed`. A watcher thread unblocks a consumer that waits past a deadline
or past the producer's failure, so a run never hangs.

The producer process ignores SIGINT (Ctrl-C is the parent's to handle), dies with its parent
(``PR_SET_PDEATHSIG``) and is reaped by :meth:`ProcessCase.close`, which
``benchmarks.run`` calls in a ``finally``.
"""
from __future__ import annotations

import abc
import ctypes
import importlib
import multiprocessing
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed
from ringbus.benchmarks.python_ring import sequences

__all__ = ["Channel", "ProducerProcess", "ProcessCase", "ProcessRun", "SequenceCheck",
           "build_case", "fresh_name", "paced_loop"]

_READY_TIMEOUT = 60.0           # seconds the producer process may take to open everything


def fresh_name(tag: str) -> str:
    """A shared-segment name no other run uses."""
    return f"bench-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SequenceCheck:
    """Checks runs of sequence numbers (numpy int64 arrays) against 0, 1, 2, ...: every
    message once, in order. Keeps the first problem; resynchronises after it."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.next = 0
        self.count = 0
        self.error: Optional[str] = None

    def array(self, s: Any) -> None:
        k = len(s)
        if not k:
            return
        nxt = self.next
        first, last = int(s[0]), int(s[k - 1])
        if first != nxt or last != nxt + k - 1 or (k > 2 and bool((s[1:] <= s[:-1]).any())):
            if self.error is None:
                import numpy as np
                i = int(np.argmax(s != np.arange(nxt, nxt + k)))
                self.error = (f"message {self.count + i:,} has sequence {int(s[i]):,}, "
                              f"expected {nxt + i:,}")
        self.next = last + 1
        self.count += k

    def one(self, s: int) -> None:
        if s != self.next and self.error is None:
            self.error = f"message {self.count:,} has sequence {s:,}, expected {self.next:,}"
        self.next = s + 1
        self.count += 1

    def problem(self, n: int) -> Optional[str]:
        """The first problem of a run that should have delivered ``n``, or None."""
        if self.error is not None:
            return self.error
        if self.count != n:
            return (f"lost messages: {self.count:,} of {n:,} arrived" if self.count < n
                    else f"duplicated messages: {self.count:,} arrived for {n:,} sent")
        return None


def paced_loop(send: Callable[[int, float], Any], seqs: Any, period_ns: int) -> None:
    """The latency producer: stamp ``perf_counter_ns()`` into message i, send it, busy-wait
    until the period has passed (never sleep: no message waits behind a sleep)."""
    clock = time.perf_counter_ns
    for i in seqs:
        t = clock()
        send(i, t)
        t += period_ns
        while clock() < t:
            pass


class Channel(abc.ABC):
    """One contender's transport: the consumer side here, the producer side opened in the
    producer process by ``producer_class.open(*producer_args)``.

    A producer object (in the other process) has ``stream(n, skip)`` (send 0..n-1, all as
    fast as it can, leaving ``skip`` out) and, for the latency case, ``send(i, stamp)``.
    """

    label = ""
    shown = ""
    local = False               # True: the producer is a thread of this process

    def producer_spec(self) -> tuple[str, str, tuple]:
        """(module, class name, args) of the producer side, all picklable."""
        cls, args = self.producer()
        return cls.__module__, cls.__qualname__, args

    @abc.abstractmethod
    def producer(self) -> tuple[type, tuple]:
        """The producer side's class and the arguments of its ``open``."""

    def opened(self) -> None:
        """The producer side is open: remove names (shared segments) nobody needs now."""

    @abc.abstractmethod
    def start(self, n: int, latencies: Optional[list]) -> None:
        """Before the clock: get ready to consume ``n`` messages (start a consumer thread)."""

    def consume(self, n: int) -> None:
        """On this thread, after the clock started: consume until all came, or unblocked."""

    def finish(self, timeout: float) -> None:
        """After the producer is done: wait for the rest (a ring: stop(drain=True))."""

    def unblock(self) -> None:
        """From the watcher thread: make a blocked :meth:`consume` return."""

    @abc.abstractmethod
    def problem(self, n: int) -> Optional[str]:
        """What went wrong in the last run (lost, reordered), or None."""

    def discard(self) -> None:
        """After a failed run: throw away what is queued so a blocked producer can finish."""

    def close(self) -> None:
        """Let go of everything (idempotent)."""


def _open_producer(spec: tuple[str, str, tuple]) -> Any:
    module, qualname, args = spec
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls.open(*args)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)           # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(control: Any, specs: dict[str, tuple[str, str, tuple]]) -> None:
    """The producer process: open every producer side, then run what the parent asks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    producers: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for label, spec in specs.items():
        try:
            producers[label] = _open_producer(spec)
        except Exception as exc:
            failed[label] = f"{type(exc).__name__}: {exc}"
    control.send(("ready", failed))
    try:
        while True:
            try:
                msg = control.recv()
            except EOFError:
                break
            if msg[0] == "exit":
                break
            _, label, n, skip, period = msg
            try:
                p = producers[label]
                if period:
                    paced_loop(p.send, sequences(n, skip), period)
                else:
                    p.stream(n, skip)
                control.send(("done", label))
            except Exception as exc:
                control.send(("failed", label, f"the producer raised {exc!r}"))
    finally:
        for p in producers.values():
            close = getattr(p, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass


class ProducerProcess:
    """The case's producer process and its end of the control pipe."""

    def __init__(self, specs: dict[str, tuple[str, str, tuple]]):
        ctx = multiprocessing.get_context("spawn")
        self.control, child = ctx.Pipe()
        self.broken: Optional[str] = None
        # The specs are pickled while spawning, so queues and pipe ends may be among the
        # producers' arguments.
        self.process = ctx.Process(target=_serve, args=(child, specs),
                                   name="ringbus-bench-producer", daemon=True)
        self.process.start()
        child.close()
        try:
            if not self.control.poll(_READY_TIMEOUT):
                raise EOFError
            kind, failed = self.control.recv()
        except (EOFError, OSError):
            self.close()
            raise RuntimeError(
                "the producer process did not start (a script that runs the process cases "
                "needs the `if __name__ == '__main__':` guard of multiprocessing's spawn "
                "start method)") from None
        self.failed: dict[str, str] = failed

    def go(self, label: str, n: int, skip: Optional[int], period: int) -> None:
        if self.broken:
            raise Failed(self.broken)
        self.control.send(("run", label, n, skip, period))

    def wait(self, deadline: float) -> tuple:
        """The producer's answer, or ("timeout",) at ``deadline`` (time.monotonic)."""
        try:
            if self.control.poll(max(0.0, deadline - time.monotonic())):
                return self.control.recv()
        except (EOFError, OSError):
            self.broken = "the producer process died"
            return ("failed", "", self.broken)
        if not self.process.is_alive():
            self.broken = f"the producer process died (exit code {self.process.exitcode})"
            return ("failed", "", self.broken)
        return ("timeout",)

    def close(self) -> None:
        """Tell it to exit; kill it if it does not; reap it."""
        if self.process.is_alive():
            try:
                self.control.send(("exit",))
            except (OSError, ValueError):
                pass
            self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        self.control.close()


class _LocalProducer:
    """The same protocol as :class:`ProducerProcess`, with the producer a thread here (the
    in-process rows the ratios need)."""

    def __init__(self, producer: Any):
        self.producer = producer
        self.thread: Optional[threading.Thread] = None
        self.result: tuple = ("timeout",)
        self.broken: Optional[str] = None

    def prepare(self, n: int, skip: Optional[int]) -> None:
        self._go = threading.Event()

        def body() -> None:
            self._go.wait()
            try:
                self.producer.stream(n, skip)
                self.result = ("done", "")
            except Exception as exc:
                self.result = ("failed", "", f"the producer thread raised {exc!r}")
        self.result = ("timeout",)
        self.thread = threading.Thread(target=body, name="ringbus-bench-producer",
                                       daemon=True)
        self.thread.start()

    def go(self, label: str, n: int, skip: Optional[int], period: int) -> None:
        self._go.set()

    def wait(self, deadline: float) -> tuple:
        assert self.thread is not None
        self.thread.join(max(0.0, deadline - time.monotonic()))
        return self.result


class ProcessRun(CheckedRun):
    """One contender of a process case: ``run()`` times ``n`` messages from the producer to
    the channel's consumer, ``check()`` raises Failed unless every one arrived in order."""

    def __init__(self, channel: Channel, producer: Any, n: int, skip: Optional[int] = None,
                 period_ns: int = 0):
        self.channel = channel
        self.producer = producer
        self.n = n
        self.skip = skip
        self.period = period_ns
        self.latencies: list = []
        self.last: list = []        # the latencies of the last good run (the latency case)
        self._outcome: Optional[str] = None

    def _timeout(self) -> float:
        per = (self.period * 1e-9 if self.period else 0.0) + 50e-6
        return 20.0 + self.n * per

    def run(self) -> int:
        ch, prod, n = self.channel, self.producer, self.n
        self._outcome = None
        self.latencies = [] if self.period else None  # type: ignore[assignment]
        if isinstance(prod, _LocalProducer):
            prod.prepare(n, self.skip)
        ch.start(n, self.latencies)
        deadline = time.monotonic() + self._timeout()
        reply: list = [("timeout",)]
        consumed = threading.Event()

        def watch() -> None:
            reply[0] = prod.wait(deadline)
            if reply[0][0] != "done":
                ch.unblock()
            elif not consumed.wait(5.0 + n * 10e-6):
                ch.unblock()

        watcher = threading.Thread(target=watch, name="ringbus-bench-watcher", daemon=True)
        watcher.start()
        t0 = time.perf_counter_ns()
        try:
            prod.go(self.channel.label, n, self.skip, self.period)
            ch.consume(n)
            consumed.set()
            watcher.join()
            if reply[0][0] == "done":
                ch.finish(max(1.0, deadline - time.monotonic()))
            t1 = time.perf_counter_ns()
        except Failed as exc:
            self._outcome = str(exc)
        except Exception as exc:
            self._outcome = f"the run raised {exc!r}"
        finally:
            consumed.set()
        if self._outcome is None and reply[0][0] != "done":
            self._outcome = (reply[0][2] if reply[0][0] == "failed" else
                             f"the producer did not finish within {self._timeout():.0f} s")
        if self._outcome is not None:
            watcher.join(1.0)
            if reply[0][0] == "timeout":
                self._recover()
            return 0
        return t1 - t0

    def _recover(self) -> None:
        """After a run the producer did not finish: let it finish (discarding what it
        sends), or give up on the producer process."""
        end = time.monotonic() + 10.0
        reply: tuple = ("timeout",)
        while time.monotonic() < end:
            self.channel.discard()
            reply = self.producer.wait(time.monotonic() + 0.05)
            if reply[0] != "timeout":
                break
        if reply[0] == "timeout" and not isinstance(self.producer, _LocalProducer):
            self.producer.broken = "the producer process is stuck after a failed run"

    def check(self) -> None:
        outcome = self._outcome or self.channel.problem(self.n)
        self.last = list(self.latencies) if outcome is None and self.latencies else []
        if outcome is not None:
            raise Failed(outcome)


@dataclass
class ProcessCase(Case):
    """A process case: its channels and producer process, released by :meth:`close`."""

    channels: list[Channel] = field(default_factory=list)
    process: Optional[ProducerProcess] = None

    def close(self) -> None:
        """Reap the producer process, close every channel (segments, queues, pipes)."""
        try:
            if self.process is not None:
                self.process.close()
        finally:
            for ch in self.channels:
                try:
                    ch.close()
                except Exception:
                    pass


def scaled(base: int, factor: float) -> int:
    """Messages per run of a row about ``factor`` times as fast as 1 µs/message (so each
    row's run takes about as long), at least 1,000."""
    return max(1_000, int(base * factor))


#: A row of a process case: (label, shown, make, n): ``make(label, shown)`` -> its Channel
#: (raising Unavailable or ImportError if the peer is missing), n messages per run.
Row = tuple[str, str, Callable[[str, str], Channel], int]


def build_case(name: str, title: str, table: str, rounds: int, rows: Sequence[Row],
               reference: Optional[str], skip: Optional[int] = None, period_ns: int = 0,
               progress: Optional[Callable[[str], None]] = None) -> ProcessCase:
    """Make each row's channel, start the producer process, and return the case.

    A row whose ``make`` raises ``Unavailable``/``ImportError`` gets the reason instead of
    a loop; anything else, and Ctrl-C, closes what was made and propagates.
    """
    from ringbus.benchmarks.peers import Unavailable

    case = ProcessCase(name, title, [], table=table, rounds=rounds, reference=reference)
    made: list[tuple[str, str, Optional[Channel], int, str]] = []
    try:
        for label, shown, make, n in rows:
            try:
                ch: Optional[Channel] = make(label, shown)
            except (Unavailable, ImportError) as exc:
                made.append((label, shown, None, 0,
                             str(exc) if isinstance(exc, Unavailable) else "not installed"))
                continue
            assert ch is not None
            case.channels.append(ch)
            made.append((label, shown, ch, n, ""))
        remote = [ch for ch in case.channels if not ch.local]
        specs = {ch.label: ch.producer_spec() for ch in remote}
        if remote:
            if progress is not None:
                progress(f"  starting the producer process ({len(remote)} producers)")
            case.process = ProducerProcess(specs)
        for ch in case.channels:
            ch.opened()
        for label, shown, ch, n, reason in made:
            if ch is None:
                case.contenders.append(Contender(label, shown, status=reason))
                continue
            failed = case.process.failed if case.process is not None else {}
            if not ch.local and label in failed:
                case.contenders.append(Contender(
                    label, shown, status=f"skipped: the producer could not open it: "
                                         f"{failed[label]}"))
                continue
            prod: Any = (_LocalProducer(_open_producer(ch.producer_spec())) if ch.local
                         else case.process)
            run = ProcessRun(ch, prod, n, skip, period_ns)
            observe = (lambda r=run: r.last) if period_ns else None
            case.contenders.append(Contender(label, shown, run, n, keep=ch,
                                             observe=observe))
    except BaseException:
        case.close()
        raise
    return case
