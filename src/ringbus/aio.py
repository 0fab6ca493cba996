"""asyncio for ringbus: async handlers, a consumer on the event loop, awaitable publish,
request/response, once and expect.

The Bus methods (``run_async``, ``attach``, ``detach``, ``publish_async``, ``request``,
``expect``) are thin entry points into this module; nothing here is on the path of a sync
handler.

How an async handler runs
-------------------------
``bus.subscribe(T, coroutine_function)`` wraps the function, at registration, into the plain
callable that the compiled dispatch calls like any other handler. Each call makes the
coroutine; then, depending on who dispatched the event:

* **The loop consumer** (``await bus.run_async()``): the coroutine starts at once, on the
  consumer's task. One that finishes without suspending costs a coroutine and nothing else
  (no task, no loop iteration). One that suspends is, by default, *awaited*: the consumer
  finishes it before the event's next handler and before the next event, so the ordering
  graph holds across awaits. With ``concurrent=N`` (``True``: 64) it goes on as a task and
  the consumer moves on; with N tasks of that subscription in flight, the consumer waits for
  one to finish before it starts another.
* **emit, drain or a handler on a thread whose event loop is running** (an ``emit`` from a
  coroutine): started at once; if it suspends it goes on as a task on that loop and the
  dispatch moves on (the handlers after it do not wait for it; ``concurrent=N`` is not
  enforced here).
* **A thread with no running event loop** (plain ``emit``/``drain``, consumer threads of
  ``bus.start()``): run to completion on a private event loop of that thread before the
  next handler. It must not await objects bound to another loop.

Every ``Exception`` an async handler raises, at once or later in its task, goes to the bus's
error policy with the handler's Subscription, like a sync handler's; no task is left with an
exception nobody retrieves. Under ``on_error="raise"`` the loop consumer raises it once the
event's handlers ran (an exception from a ``concurrent`` task: at the consumer's next batch,
or logged if no consumer runs).

Waking the loop
---------------
The loop consumer watches an eventfd (a pipe where there is none) with ``loop.add_reader``.
When it finds the ring empty it arms a signal in the ring (_signal.h) and looks once more;
a producer, on any thread, that takes the armed signal after publishing writes the eventfd:
one write per idle period, none per event while the consumer is busy. Coroutines waiting
for room (``publish_async``) arm a second signal, which the consumer that makes room takes.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import heapq
import itertools
import logging
import operator
import os
import threading
import time
import types
import warnings
import weakref
from asyncio import events as _events
from typing import Optional

from ringbus._dispatch import (
    STOP, STRONG, TYPED, WEAK, WEAK_METHOD, EmitDepthError, EventInfo, Suspension, _in_event,
    current_event, emit_depth,
)
from ringbus._ring import ConsumerGone, RingFull

__all__ = [
    "AioState", "Request", "ReplyFuture", "NoHandlerError", "NoReplyError", "current_request",
    "run_async", "attach", "detach", "publish_wait", "request", "expect", "wrap",
    "request_server",
]

log = logging.getLogger("ringbus")

_get_running_loop = _events._get_running_loop
_get_ident = threading.get_ident
_CoroutineType = types.CoroutineType
_START = object()           # _drive(): the coroutine has not run yet


class NoHandlerError(LookupError):
    """``bus.request()`` on an event type that has no handler to answer it."""


class NoReplyError(LookupError):
    """The handlers of a request ran and none replied (all returned None and none called
    ``current_request()``)."""


# -- driving coroutines ------------------------------------------------------------------------

class _Suspended(Suspension):
    """An async handler, called by the loop consumer's dispatch, has to wait.

    Raised by its wrapper through the compiled dispatch, which stops at once (a
    BaseException is never handed to the error policy) with the event counted as dispatched,
    and records where it stopped. The consumer awaits ``awaitable``, then has the table run
    the event's handlers after ``sub`` (DispatchTable._resume).
    """

    def __init__(self, sub, payload, awaitable):
        super().__init__(payload)
        self.sub = sub
        self.awaitable = awaitable


@types.coroutine
def _drive(coro, first, ctx=None, event=None):
    """Await ``coro`` from where it stands.

    ``first``: what it yielded when it was started eagerly (handed on to the awaiting task
    exactly as if the coroutine had yielded it there), or _START if it has not run. ``ctx``:
    a Context to run each step in (a request's handlers see their request in it).
    ``event``: what ringbus.current_event() is during each step (the steps after the first
    run outside the dispatch that called the handler, which kept it in a C frame).
    """
    send, throw = coro.send, coro.throw
    if event is not None:
        send = functools.partial(_in_event, event, send)
        throw = functools.partial(_in_event, event, throw)
    value = exc = None
    if first is not _START:
        try:
            value = yield first
        except BaseException as e:  # cancellation (or close) of the awaiting task: forward it
            exc = e
    while True:
        try:
            if ctx is None:
                step = send(value) if exc is None else throw(exc)
            else:
                step = ctx.run(send, value) if exc is None else ctx.run(throw, exc)
        except StopIteration as stop:
            return stop.value
        value = exc = None
        try:
            value = yield step
        except BaseException as e:
            exc = e


async def _finish(coro, first, event):
    return await _drive(coro, first, None, event)


async def _awaited(awaitable):
    return await awaitable


def _settle_now(fut, value=None, exc=None):
    if fut.done():
        return
    if exc is None:
        fut.set_result(value)
    else:
        fut.set_exception(exc)


def _settle(loop, fut, value=None, exc=None):
    """Resolve an asyncio future from any thread (no-op if it is done, or its loop closed)."""
    if _get_running_loop() is loop:
        _settle_now(fut, value, exc)
        return
    try:
        loop.call_soon_threadsafe(_settle_now, fut, value, exc)
    except RuntimeError:        # its loop is closed: nobody is waiting any more
        pass


class _PrivateLoop:
    """The event loop on which async handlers run to completion on a thread where no loop
    runs (plain emit, drain, consumer threads). One per thread, closed with the thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        _private_loops.add(self)

    def run(self, coro):
        loop = self.loop
        result = loop.run_until_complete(coro)
        # Tasks the handler started (say, an emit that reached another async handler) finish
        # too: "to completion" means nothing of it is left pending on this loop.
        pending = asyncio.all_tasks(loop)
        while pending:
            loop.run_until_complete(asyncio.wait(pending))
            pending = asyncio.all_tasks(loop)
        return result

    def close(self):
        loop = self.loop
        if loop.is_closed() or loop.is_running():
            return
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def __del__(self):
        # At the thread's exit. Only close(): running the loop now (to cancel tasks, finish
        # async generators) would make threading invent a _DummyThread that is never freed,
        # and run() left no task pending anyway.
        loop = self.loop
        try:
            if not loop.is_closed() and not loop.is_running():
                loop.close()
        except Exception:       # interpreter shutdown: best effort
            pass


_private = threading.local()
_private_loops: "weakref.WeakSet[_PrivateLoop]" = weakref.WeakSet()


def _run_here(coro):
    runner = getattr(_private, "runner", None)
    if runner is None:
        runner = _private.runner = _PrivateLoop()
    return runner.run(coro)


def _close_private_loops():
    for runner in list(_private_loops):
        try:
            runner.close()
        except Exception:
            pass


atexit.register(_close_private_loops)


# -- the per-bus state -------------------------------------------------------------------------

class _Slots:
    """In-flight tasks of one ``concurrent=N`` subscription."""
    __slots__ = ("limit", "inflight", "waiters")

    def __init__(self, limit):
        self.limit = limit
        self.inflight = 0
        self.waiters = []       # futures of a consumer waiting for a free slot

    def release(self):
        self.inflight -= 1
        self.wake()

    def wake(self):
        """Let the first waiter for a slot go on (there is room)."""
        while self.waiters:
            fut = self.waiters.pop(0)
            if not fut.done():
                _settle(fut.get_loop(), fut)
                return


class AioState:
    """The asyncio side of one Bus (``bus._registry.aio``). Holds the bus weakly: the wrappers
    of async handlers hold this, and the bus's table holds them."""

    def __init__(self, bus):
        self._bus = weakref.ref(bus)
        self.loop = None            # the loop consumer's loop, thread and task
        self.thread = None
        self.task = None
        # The consumer is inside its drain (or resumes an event): an async handler that
        # its dispatch calls (at emit depth 1) may raise _Suspended to it.
        self.dispatching = False
        self.waiter = None          # the future the idle consumer awaits
        self.room_waiters = []      # (loop, future) of coroutines waiting for room
        self.tasks = set()          # handler tasks in flight: asyncio keeps only weak ones
        self.deferred = None        # on_error="raise": a task's exception for the consumer
        self.attaching = False      # attach() made a consumer task that has not started yet
        self.slots = weakref.WeakKeyDictionary()   # Subscription -> _Slots (concurrent=N)
        self.attach_loop = None     # ... on this loop, with this coroutine (reap_closed_loop)
        self.attach_coro = None

    @property
    def bus(self):
        bus = self._bus()
        if bus is None:
            raise ReferenceError("the Bus has been garbage collected")
        return bus

    def called_by_consumer(self):
        """Whether the handler being called now was called by the loop consumer itself (not
        by an emit nested in one of its handlers, not by another thread)."""
        return self.dispatching and self.thread == _get_ident() and emit_depth() == 1

    def report(self, sub, payload, exc):
        """An Exception from an async handler, to the bus's error policy. Returns it under
        on_error="raise" (the caller decides where it is raised), else None."""
        bus = self._bus()
        if bus is None:
            log.error("async handler %s failed after its bus was collected", sub,
                      exc_info=(type(exc), exc, exc.__traceback__))
            return None
        return bus._handler_error(sub.event_type, payload, sub, exc)

    def spawn(self, loop, coro, first, sub, payload, slots=None):
        """Go on with a suspended handler coroutine as a task whose outcome is reported.
        Called where it suspended first, inside its dispatch: its steps get that event."""
        task = loop.create_task(_finish(coro, first, current_event()))
        self.tasks.add(task)
        if slots is not None:
            slots.inflight += 1
        task.add_done_callback(functools.partial(self._task_done, sub, payload, slots))
        return task

    def _task_done(self, sub, payload, slots, task):
        self.tasks.discard(task)
        if slots is not None:
            slots.release()
        if task.cancelled():
            return
        exc = task.exception()      # retrieved: never "Task exception was never retrieved"
        if exc is None or not isinstance(exc, Exception):
            return                  # a BaseException already went through the loop
        err = self.report(sub, payload, exc)
        if err is None:
            return
        if self.task is not None and not self.task.done():
            if self.deferred is None:
                self.deferred = err
            if self.waiter is not None:
                _settle(self.loop, self.waiter)
        else:
            log.error("async handler %s failed (on_error='raise', but no loop consumer runs "
                      "to raise it)", sub, exc_info=(type(err), err, err.__traceback__))

    def ready(self, bus, loop):
        if bus._aio_ready is None:
            fut = loop.create_future()
            fut.set_result(True)
            bus._aio_ready = fut

    # The consumer ---------------------------------------------------------------------------

    def readable(self, fd):
        """The loop's reader callback: a producer took the armed events signal."""
        try:
            os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            pass
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def room_made(self):
        """The ring's room callback, on whichever thread consumed (GIL held)."""
        waiters, self.room_waiters = self.room_waiters, []
        for loop, fut in waiters:
            _settle(loop, fut)

    async def consume(self, bus, ring, loop, batch):
        drain = ring._drain_loop
        arm = ring._arm_events
        while True:
            if self.deferred is not None:
                exc, self.deferred = self.deferred, None
                raise exc
            self.dispatching = True
            suspended = None
            try:
                n = drain(bus, batch)
            except _Suspended as exc:
                suspended = exc
            finally:
                self.dispatching = False
            if suspended is not None:
                # Awaited outside the except block: inside it, every exception the rest of
                # the event raises (a handler's, reported in users' tracebacks) would be
                # chained to the internal suspension signal as its __context__.
                await self.finish_event(bus, suspended)
                suspended = None
                continue
            if n:
                await asyncio.sleep(0)      # between batches, other tasks run
                continue
            self.waiter = waiter = loop.create_future()
            try:
                if arm():
                    await waiter
            finally:
                self.waiter = None

    async def finish_event(self, bus, suspended):
        """Await the handler that suspended, then have the table run the event's handlers
        after it, from the snapshot its dispatch began with, as often as one suspends."""
        while True:
            # on_error="raise": Exceptions of the event's handlers so far, kept by the
            # table, raised with the rest's once the event's handlers ran.
            errors = list(getattr(suspended, "pending_errors", None) or ())
            result = None
            try:
                result = await suspended.awaitable
            except Exception as exc:
                err = self.report(suspended.sub, suspended.payload, exc)
                if err is not None:
                    errors.append(err)
            if result is STOP:
                # A guard awaited in order: the event's later handlers do not run (the
                # table raises what it collected, if anything, with none left to run).
                bus._stopped_add()
                suspended.resume = None
            self.dispatching = True
            try:
                bus._resume(suspended, errors)
                return
            except _Suspended as again:
                suspended = again
            finally:
                self.dispatching = False


# -- wrapping handlers at registration ---------------------------------------------------------

def wrap(state: AioState, sub, timed: bool = False) -> None:
    """Set the callable the dispatch table calls for ``sub`` (an async or once=True handler):
    a plain function around the user's handler. Called by Registry.subscribe, and again by
    Registry.set_metrics: ``timed`` (metrics on) records each coroutine's wall time, from
    its start to its end, in ``sub._wall``."""
    kind = sub._hkind
    if kind == WEAK:
        # The table would call ref()(payload) itself, which we cannot wrap: call through
        # the reference here instead (the Subscription keeps it, with its death callback).
        ref = sub._href

        def target(*args):              # (payload), or (event type, payload)
            fn = ref()
            return None if fn is None else fn(*args)
        call_kind, ref_arg = STRONG, None
    else:
        target, call_kind, ref_arg = sub._htarget, kind, sub._href
    if timed and sub.is_async and sub._wall is not None:
        target = _timed(target, sub._wall)
    call = target
    if sub.is_async:
        if sub.concurrent:
            call = _concurrent_caller(state, sub, target)
        else:
            call = _sequential_caller(state, sub, target)
    if sub.once:
        call = _once_caller(sub, call)
    if sub.with_type:
        call_kind |= TYPED              # the wrapper passes (event type, payload) through
    sub._target, sub._ref, sub._kind = call, ref_arg, call_kind


def _timed(fn, wall):
    """``fn`` (an async handler) as one whose coroutines record their wall time: from the
    call that starts it to its end, awaits included (its time on the consumer's thread is
    the subscription's meter, as for any handler). Only while metrics are on: the wrapper
    costs a coroutine frame per call."""
    record, perf_counter_ns = wall.record, time.perf_counter_ns

    async def timed(*args):
        start = perf_counter_ns()
        aw = fn(*args)
        if aw is None:                  # a weakly held handler died
            return None
        try:
            return await aw
        finally:
            record(perf_counter_ns() - start)
    timed.__qualname__ = getattr(fn, "__qualname__", "handler")
    return timed


def _coroutine(obj):
    """The handler's result as a native coroutine (any other awaitable is wrapped)."""
    if obj is None or type(obj) is _CoroutineType:
        return obj
    return _awaited(obj)


def _sequential_caller(state, sub, fn):
    # Starting a coroutine with `for first in coro.__await__()` rather than coro.send(None):
    # one that finishes returning None then raises no StopIteration (about 250 ns less).
    def step(coro, payload):
        # On the loop consumer's thread its loop is the running one: a thread id compare
        # instead of _get_running_loop(), which costs about 200 ns on 3.11.
        if _get_ident() == state.thread:
            for first in coro.__await__():
                if state.dispatching and emit_depth() == 1:
                    raise _Suspended(sub, payload, _drive(coro, first, None, current_event()))
                state.spawn(state.loop, coro, first, sub, payload)
                return None
            return None
        loop = _get_running_loop()
        if loop is None:
            return _run_here(coro)
        for first in coro.__await__():
            state.spawn(loop, coro, first, sub, payload)
            return None
        return None

    def call_async_handler(payload):
        # The table's call of a strong (or dereferenced weak) handler: fn(payload). The
        # common case, step() inlined: called by the loop consumer, the coroutine finishes
        # without suspending (eager start: no task, no loop iteration).
        coro = fn(payload)
        if type(coro) is not _CoroutineType:
            coro = _coroutine(coro)
            if coro is None:                # a weakly held handler died
                return None
        if _get_ident() != state.thread:
            return step(coro, payload)
        for first in coro.__await__():
            if state.dispatching and emit_depth() == 1:
                raise _Suspended(sub, payload, _drive(coro, first, None, current_event()))
            state.spawn(state.loop, coro, first, sub, payload)
            return None
        return None

    def call_async_method(obj, payload):
        # The table's call of a weakly held bound method: fn(obj, payload).
        coro = fn(obj, payload)
        if type(coro) is not _CoroutineType:
            coro = _coroutine(coro)
        return step(coro, payload)

    call = call_async_method if sub._hkind == WEAK_METHOD else call_async_handler
    call.__qualname__ = f"async:{getattr(fn, '__qualname__', fn)!s}"
    return call


def _concurrent_caller(state, sub, fn):
    # One set of slots per subscription.
    slots = state.slots.get(sub)
    if slots is None:
        slots = state.slots[sub] = _Slots(sub.concurrent)

    def call_async_handler(*args):
        loop = _get_running_loop()
        if loop is None:
            coro = _coroutine(fn(*args))
            return None if coro is None else _run_here(coro)
        if slots.inflight >= slots.limit:
            waiting = _start_when_free(state, slots, fn, args, sub, loop, current_event())
            if state.called_by_consumer():
                raise _Suspended(sub, args[-1], waiting)    # the consumer waits for a slot
            # Anyone else dispatching on a running loop (an emit in a task, a drain, an emit
            # nested in a handler) cannot be suspended: the call waits for a free slot in a
            # task of its own, so that N holds whoever dispatches.
            task = loop.create_task(waiting)
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
            return None
        _start_task(state, slots, fn, args, sub, loop)
        return None
    call_async_handler.__qualname__ = f"async:{getattr(fn, '__qualname__', fn)!s}"
    return call_async_handler


def _start_task(state, slots, fn, args, sub, loop):
    coro = _coroutine(fn(*args))
    if coro is not None:
        for first in coro.__await__():
            state.spawn(loop, coro, first, sub, args[-1], slots)
            return
    # Done without taking a slot: a call waiting for one must not wait for a release that
    # will not come.
    if slots.waiters and slots.inflight < slots.limit:
        slots.wake()


async def _start_when_free(state, slots, fn, args, sub, loop, event):
    while slots.inflight >= slots.limit:
        fut = loop.create_future()
        slots.waiters.append(fut)
        try:
            await fut
        finally:
            if fut in slots.waiters:
                slots.waiters.remove(fut)
    # Started after its dispatch returned: its first step gets the event it was called for.
    _in_event(event, _start_task_with, (state, slots, fn, args, sub, loop))


def _start_task_with(args):
    _start_task(*args)


def _once_caller(sub, call):
    fired = sub._fired          # on the Subscription: a request's _serve claims it too
    if fired is None:
        fired = sub._fired = itertools.count()

    def call_once(*args):
        # next() on a count is atomic under the GIL: of racing dispatches, one calls.
        if next(fired):
            return None
        # A pattern's member: once in all, so the whole pattern goes.
        (sub._parent or sub).unsubscribe()
        return call(*args)
    call_once.__qualname__ = f"once:{getattr(call, '__qualname__', call)!s}"
    return call_once


# -- the loop consumer -------------------------------------------------------------------------

def _event_fd():
    """(read end, write end) the producers write to wake the loop: one eventfd, or a pipe."""
    make = getattr(os, "eventfd", None)
    if make is not None:
        fd = make(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


async def run_async(bus, batch=1024, _attached=False):
    """``await bus.run_async()``: consume the bus's ring on the running loop until
    cancelled (see Bus.run_async)."""
    batch = operator.index(batch)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    state = bus._registry.aio
    loop = asyncio.get_running_loop()
    if not _attached:
        reap_closed_loop(bus)
    if state.task is not None or (state.attaching and not _attached):
        raise RuntimeError("the bus already has an event-loop consumer (run_async)")
    state.attaching = False
    state.attach_loop = state.attach_coro = None
    ring = bus._consumed               # the ring, or the lanes' consumer (ringbus._lanes)
    rfd, wfd = _event_fd()
    try:
        ring._attach_loop(wfd, _get_ident())
    except BaseException:
        _close_fds(rfd, wfd)
        raise
    state.loop, state.thread, state.task = loop, _get_ident(), asyncio.current_task()
    state.ready(bus, loop)
    try:
        loop.add_reader(rfd, state.readable, rfd)
        try:
            await state.consume(bus, ring, loop, batch)
        finally:
            if not loop.is_closed():
                loop.remove_reader(rfd)
    finally:
        state.dispatching = False
        ring._detach_loop()
        _close_fds(rfd, wfd)
        state.loop = state.thread = state.task = None


def _close_fds(rfd, wfd):
    os.close(rfd)
    if wfd != rfd:
        os.close(wfd)


def attach(bus, loop=None, batch=1024):
    """Start ``run_async`` as a task on ``loop``; see Bus.attach."""
    running = _get_running_loop()
    if loop is None:
        if running is None:
            raise RuntimeError("attach() needs a loop: call it on a running loop, or pass "
                               "loop=")
        loop = running
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop or None, got "
                        f"{type(loop).__name__} {loop!r}")
    if loop.is_closed():
        raise RuntimeError("attach(): the event loop is closed")
    state = bus._registry.aio
    reap_closed_loop(bus)
    if state.task is not None or state.attaching:
        raise RuntimeError("the bus already has an event-loop consumer")
    operator.index(batch)
    coro = run_async(bus, batch, True)
    state.attaching = True      # until the task starts (or is cancelled before it does)
    state.attach_loop, state.attach_coro = loop, coro
    try:
        if running is loop:
            fut = loop.create_task(coro)
        else:
            fut = asyncio.run_coroutine_threadsafe(coro, loop)
    except BaseException:
        state.attaching = False
        state.attach_loop = state.attach_coro = None
        coro.close()
        raise
    fut.add_done_callback(functools.partial(_attach_done, state))
    return fut


def _attach_done(state, _fut):
    state.attaching = False
    state.attach_loop = state.attach_coro = None


def reap_closed_loop(bus):
    """If the bus's loop consumer is on an event loop that has been closed, undo it here.

    A closed loop never runs again: its consumer task can neither finish nor be cancelled
    through it, and until it is undone the ring refuses drain(), start() and another
    attach(). Its coroutine is closed (its ``finally`` detaches the ring and closes the
    wake-up descriptors), and its tasks are marked so that their collection does not
    report them as destroyed while pending. Returns True if there was one to reap.
    """
    state = bus._registry._aio
    if state is None:
        return False
    reaped = False
    loop = state.loop
    if state.task is not None and loop is not None and loop.is_closed():
        task = state.task
        _forget_task(task)
        coro = task.get_coro()
        try:
            _close_quietly(coro)    # runs run_async's finally: detach, close the fds
        finally:
            # Whatever the close did, nothing of the dead consumer may stay registered.
            if state.task is task:
                state.dispatching = False
                bus._consumed._detach_loop()
                state.loop = state.thread = state.task = None
        reaped = True
        for t in list(state.tasks):   # its handler tasks are as dead as it is
            if t.get_loop() is loop:
                state.tasks.discard(t)
                _forget_task(t)
                _close_quietly(t.get_coro())
        state.waiter = None
        state.room_waiters = [(lp, f) for lp, f in state.room_waiters if lp is not loop]
    if state.attaching and state.attach_loop is not None and state.attach_loop.is_closed():
        coro = state.attach_coro
        state.attaching = False
        state.attach_loop = state.attach_coro = None
        if coro is not None:
            coro.close()            # never started: no "coroutine was never awaited"
        reaped = True
    return reaped


def _close_quietly(coro):
    try:
        coro.close()
    except Exception:       # a handler that awaited in its finally ("ignored GeneratorExit")
        log.warning("ringbus: a coroutine of a loop consumer whose event loop was closed "
                    "did not close cleanly", exc_info=True)


def _forget_task(task):
    # A pending task collected after its loop closed is reported as "destroyed but it is
    # pending"; for one reaped on purpose that report is noise.
    try:
        task._log_destroy_pending = False
    except AttributeError:
        pass


def detach(bus):
    """Cancel the bus's loop consumer, if one runs (from any thread)."""
    state = bus._registry._aio
    if state is None or reap_closed_loop(bus) or state.task is None:
        return
    task, loop = state.task, state.loop
    if _get_running_loop() is loop:
        task.cancel()
    else:
        loop.call_soon_threadsafe(task.cancel)


# -- awaitable publish -------------------------------------------------------------------------

async def publish_wait(bus, t, payload, timeout, ring=None):
    """The slow path of ``publish_async``: wait for room in ``ring`` (the event's lane;
    default: the bus's ring) without blocking the loop."""
    loop = asyncio.get_running_loop()
    state = bus._registry.aio
    state.ready(bus, loop)
    if ring is None:
        ring = bus.ring
    deadline = None
    if timeout is not None:
        if not timeout >= 0:
            raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
        deadline = loop.time() + timeout
    if ring.try_publish(t, payload):
        return True
    if state.task is not None and asyncio.current_task() is state.task:
        # An async handler of the loop consumer: only that consumer makes room, so the event
        # is its follow-up (the ring's backlog; past its bound, the overflow policy).
        return ring._publish_followup(t, payload)
    if timeout is None and ring.overflow != "block":
        # The overflow rule of every publish: no timeout is the policy's own wait, none
        # under "raise" and "drop". publish() without a timeout never blocks under those
        # policies: it publishes into room made meanwhile, drops (counted) or raises.
        return ring.publish(t, payload)
    while True:
        if ring._is_consumer_gone():
            if ring.overflow == "drop":
                return ring.publish(t, payload)
            raise ConsumerGone(
                f"ring full ({ring.capacity} events) and its consumer thread is gone: "
                f"nothing will make room; stop() re-raises what ended it, then start() or "
                f"drain() delivers the queued events")
        fut = loop.create_future()
        entry = (loop, fut)
        state.room_waiters.append(entry)
        try:
            if ring._arm_room(state.room_made):
                if deadline is None:
                    await fut
                else:
                    left = deadline - loop.time()
                    if left > 0:
                        handle = loop.call_later(left, _settle_now, fut)
                        try:
                            await fut
                        finally:
                            handle.cancel()
        finally:
            try:
                state.room_waiters.remove(entry)
            except ValueError:
                pass
        if ring.try_publish(t, payload):
            return True
        if deadline is not None and loop.time() >= deadline:
            if ring.overflow == "drop":
                return ring.publish(t, payload)
            raise RingFull(f"ring full ({ring.capacity} events): no room within "
                           f"timeout={timeout}s")


# -- request / response ------------------------------------------------------------------------

class ReplyFuture(concurrent.futures.Future):
    """What ``request()`` and ``expect()`` return when called outside a running event loop:
    a ``concurrent.futures.Future`` (``result(timeout)`` blocks the calling thread) that a
    coroutine may also ``await``, on any loop. So both kinds of their futures are awaitable,
    and ``await bus.request(...)`` type-checks wherever it is written."""

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


_current = contextvars.ContextVar("ringbus_request", default=None)


def current_request() -> Optional["Request"]:
    """The request whose handler is running (None outside one).

    A handler that takes it answers through it, now or later (``reply``/``fail``): the
    request then stays open after its handlers returned None, until answered or timed out.
    """
    req = _current.get()
    if req is not None:
        req._taken = True
    return req


class Request:
    """A request in flight, made by ``bus.request()``; its ``future`` gets the reply."""

    __slots__ = ("event_type", "payload", "future", "_loop", "_claim", "_settled", "_taken",
                 "_timer", "_served", "_bus", "__weakref__")

    def __init__(self, event_type, payload, future, loop):
        self.event_type = event_type
        self.payload = payload
        #: asyncio.Future (made in a running loop) or concurrent.futures.Future.
        self.future = future
        self._loop = loop
        self._claim = itertools.count()
        self._settled = False
        self._taken = False
        self._timer = None
        self._served = False        # a consumer has begun to run its handlers
        self._bus = None            # weakref to the bus, for the unserved-request warning

    def reply(self, value=None) -> bool:
        """Answer with ``value``; True if this was the answer (the first one wins)."""
        return self._resolve(value, None)

    def fail(self, exc: BaseException) -> bool:
        """Answer with an exception; True if this was the answer."""
        return self._resolve(None, exc)

    def done(self) -> bool:
        """Whether it was answered, failed, timed out or cancelled."""
        return self._settled or self.future.done()

    def _resolve(self, value, exc):
        if next(self._claim):       # atomic under the GIL: one answer
            return False
        self._settled = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        fut = self.future
        if self._loop is not None:
            if fut.done():          # cancelled by its caller
                return False
            _settle(self._loop, fut, value, exc)
            return True
        try:
            if exc is None:
                fut.set_result(value)
            else:
                fut.set_exception(exc)
        except concurrent.futures.InvalidStateError:
            return False            # cancelled by its caller
        return True

    def _expire(self, timeout):
        why = ""
        if not self._served:
            why = (" (it was never dispatched: " + _no_consumer_hint(self._bus) + ")"
                   if not _consumer_running(self._bus) else " (it was never dispatched)")
        self.fail(TimeoutError(f"no reply to the request on event type {self.event_type} "
                               f"within {timeout} s{why}"))

    def _unserved(self):
        # Fires UNSERVED_REQUEST_GRACE seconds after a request without a timeout was made.
        self._timer = None
        if self._served or self.done() or _consumer_running(self._bus):
            return
        msg = (f"ringbus: the request on event type {self.event_type} has waited "
               f"{UNSERVED_REQUEST_GRACE} s and was never dispatched, and it has no timeout: "
               f"{_no_consumer_hint(self._bus)}")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=1)

    def __repr__(self):
        state = "done" if self.done() else "pending"
        return f"<ringbus Request on event type {self.event_type}, {state}>"


#: Seconds after which a request made with ``timeout=None`` that no consumer has begun to
#: serve, while no consumer runs, gets a RuntimeWarning (and a warning on the ``ringbus``
#: logger): without one it would wait forever. Not raised at the call: a ``drain()`` may
#: legitimately follow it.
UNSERVED_REQUEST_GRACE = 5.0


def _consumer_running(bus_ref):
    """Whether a consumer is running for the bus: a loop consumer or consumer threads. (A
    drain in progress on some thread cannot be seen; the grace period covers it.)"""
    bus = bus_ref() if bus_ref is not None else None
    if bus is None:
        return False
    state = bus._registry._aio
    if state is not None and (state.task is not None or state.attaching):
        return True
    return bool(bus._consumed.started)


def _no_consumer_hint(bus_ref):
    return ("no consumer is running to dispatch it: attach one to an event loop "
            "(bus.attach() or await bus.run_async()), start consumer threads (bus.start() "
            "or with bus.running():), or call bus.drain()")


def request(bus, event_type, payload, timeout):
    """``bus.request(T, payload, timeout)``; see Bus.request.

    With ``timeout=None`` and no consumer running, the request would wait forever: after
    UNSERVED_REQUEST_GRACE seconds still undispatched with no consumer, it warns (once)."""
    registry = bus._registry
    t = registry._known(event_type, "event_type")
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    if not any(not s.batch for s in registry.subscriptions(t)):
        raise NoHandlerError(f"no handler is subscribed to event type {t} "
                             f"({registry.event_name(t)!r}): nothing would answer the request")
    loop = _get_running_loop()
    fut = loop.create_future() if loop is not None else ReplyFuture()
    req = Request(t, payload, fut, loop)
    req._bus = weakref.ref(bus)
    rt = registry.request_event_type(bus)
    if timeout is not None:
        if loop is not None:
            req._timer = loop.call_later(timeout, req._expire, timeout)
        else:
            req._timer = _timers.call_later(timeout, req._expire, timeout)
    else:
        # Answered (or cancelled: see _resolve) before the grace period: cancelled, freed.
        if loop is not None:
            req._timer = loop.call_later(UNSERVED_REQUEST_GRACE, req._unserved)
        else:
            req._timer = _timers.call_later(UNSERVED_REQUEST_GRACE, req._unserved)
    lane = bus._lane_arg_of(t)                 # the request goes where its type's events go
    if loop is not None:
        if not bus.try_publish(rt, req, lane=lane):
            # Full: wait for room in a task rather than block the loop.
            state = registry.aio
            task = loop.create_task(_publish_request(bus, rt, req, timeout, lane))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        return fut
    try:
        queued = bus.publish(rt, req, timeout=timeout, lane=lane)
    except BaseException:
        if req._timer is not None:          # the caller has the exception instead
            req._timer.cancel()
        raise
    if not queued:
        req.fail(RingFull("the request was dropped: the ring is full and overflow='drop'"))
    return fut


async def _publish_request(bus, rt, req, timeout, lane):
    try:
        await bus.publish_async(rt, req, timeout, lane)
    except Exception as exc:
        req.fail(exc)


def request_server(bus):
    """The handler of the internal request event type (Registry.request_event_type)."""
    bus_ref = weakref.ref(bus)

    async def serve_request(req):
        owner = bus_ref()
        req._served = True
        if owner is not None and not req.done():
            await _serve(owner, req)
    return serve_request


async def _serve(bus, req):
    """Run the handlers of a request's type, in order, async ones awaited; the first value
    other than None answers. Each runs in a Context where current_request() is ``req``."""
    t, payload = req.event_type, req.payload
    ran = 0
    raise_later = None
    # Its handlers handle the requested event (not the internal one carrying the request);
    # the request's ring sequence is theirs.
    carried = current_event()
    event = EventInfo(t, name=bus.event_name(t), payload=payload,
                      sequence=None if carried is None else carried.sequence)
    for sub in bus._registry.subscriptions(t):
        if sub.batch or not sub._active:
            continue
        handler = sub.handler
        if handler is None:
            continue
        if sub.once:
            if next(sub._fired):
                continue
            sub.unsubscribe()
        ran += 1
        ctx = contextvars.copy_context()
        ctx.run(_current.set, req)
        if sub.with_type:
            handler = functools.partial(handler, t)
        try:
            result = ctx.run(_in_event, event, handler, payload)
            if sub.is_async:
                result = await _drive(_coroutine(result), _START, ctx, event)
        except EmitDepthError:
            raise
        except Exception as exc:
            if not req.fail(exc):           # answered already: the policy gets it
                err = bus._handler_error(t, payload, sub, exc)
                raise_later = raise_later or err
            continue
        if result is STOP:          # a guard: no answer, and the later handlers do not run
            bus._stopped_add()
            break
        if result is not None:
            req.reply(result)
    bus._handler_calls_add(ran)
    if not req.done() and not req._taken:
        if ran:
            req.fail(NoReplyError(f"{ran} handler(s) of event type {t} ran and none replied "
                                  f"(return a value other than None, or answer through "
                                  f"ringbus.aio.current_request())"))
        else:
            req.fail(NoHandlerError(f"no handler of event type {t} was left to answer"))
    if raise_later is not None:
        raise raise_later


class _Timers:
    """One daemon thread for the timeouts of requests made outside an event loop."""

    def __init__(self):
        self._cv = threading.Condition(threading.Lock())
        self._heap = []
        self._seq = itertools.count()
        self._thread = None
        self._cancelled = 0         # cancelled entries still in the heap

    def call_later(self, delay, fn, *args):
        entry = _TimerEntry(self, fn, args)
        with self._cv:
            heapq.heappush(self._heap, (_monotonic() + delay, next(self._seq), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ringbus-timers",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()
        return entry

    def _forget(self):
        # A cancelled entry holds nothing of its request any more, but is still a heap row:
        # rebuild the heap once they are most of it, so that many long timeouts of requests
        # answered early do not pile up rows until they would have expired.
        with self._cv:
            self._cancelled += 1
            heap = self._heap
            if self._cancelled > 64 and self._cancelled * 2 > len(heap):
                heap[:] = [row for row in heap if not row[2].cancelled]
                heapq.heapify(heap)
                self._cancelled = 0

    def _run(self):
        # No locals survive an iteration: the thread, a daemon, may be stopped mid-wait at
        # interpreter exit, and what its frame still held would never be freed.
        while True:
            self._fire(self._next())

    def _next(self):
        with self._cv:
            while True:
                if not self._heap:
                    self._cv.wait()
                    continue
                left = self._heap[0][0] - _monotonic()
                if left <= 0:
                    row = heapq.heappop(self._heap)
                    if row[2].cancelled and self._cancelled:
                        self._cancelled -= 1
                    return row[2]
                self._cv.wait(left)

    @staticmethod
    def _fire(entry):
        fn, args = entry.take()
        if fn is not None:
            try:
                fn(*args)
            except Exception:
                log.exception("ringbus timer callback %r failed", fn)


class _TimerEntry:
    """A timeout on the timer thread. It holds the callback (and so the request, its
    payload, an expect's predicate) only until it fires or is cancelled: a request answered
    early frees what it holds now, not when its timeout would have expired."""

    __slots__ = ("cancelled", "_timers", "_fn", "_args")

    def __init__(self, timers, fn, args):
        self.cancelled = False
        self._timers = timers
        self._fn = fn
        self._args = args

    def take(self):
        # Under the GIL the swap is atomic: of a racing fire and cancel, one gets the callback.
        fn, self._fn = self._fn, None
        args, self._args = self._args, ()
        return fn, args

    def cancel(self):
        if self.cancelled:
            return
        self.cancelled = True
        fn, _ = self.take()
        if fn is not None:
            self._timers._forget()

_monotonic = time.monotonic


_timers = _Timers()


# -- expect ------------------------------------------------------------------------------------

def expect(bus, event_type, predicate=None, timeout=None):
    """``await bus.expect(T, predicate, timeout)``; see Bus.expect.

    Subscribes now (so that an event published right after the call is seen) and returns a
    future: an asyncio.Future in a running loop, else a concurrent.futures.Future.
    """
    if predicate is not None and not callable(predicate):
        raise TypeError(f"predicate must be callable or None, got {predicate!r}")
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    loop = _get_running_loop()
    fut = loop.create_future() if loop is not None else ReplyFuture()
    claim = itertools.count()
    holder = {}

    def resolve(value, exc):
        nonlocal predicate
        if next(claim):
            return
        holder.pop("sub").unsubscribe()
        timer = holder.pop("timer", None)
        if timer is not None:
            timer.cancel()
        # The future keeps its done callback (and so this closure) as long as the caller
        # keeps the future: drop the predicate now, not with the future.
        predicate = None
        if loop is not None:
            _settle(loop, fut, value, exc)
        else:
            try:
                if exc is None:
                    fut.set_result(value)
                else:
                    fut.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass

    def on_event(payload):
        check = predicate           # None once resolved: resolve() below is then a no-op
        try:
            if check is not None and not check(payload):
                return
        except Exception as exc:
            resolve(None, exc)      # the caller awaiting it gets the predicate's error
            return
        resolve(payload, None)

    holder["sub"] = bus.subscribe(event_type, on_event, weak=False)
    if timeout is not None:
        exc = TimeoutError(f"no matching event of type {event_type} within {timeout} s")
        if loop is not None:
            holder["timer"] = loop.call_later(timeout, resolve, None, exc)
        else:
            holder["timer"] = _timers.call_later(timeout, resolve, None, exc)
    # Cancelled by its caller (or done): nothing stays subscribed.
    fut.add_done_callback(lambda _f: resolve(None, None))
    return fut
