"""Parity: random programs run against ``ringbus.Bus`` and the reference model in lockstep.

A program is a sequence of event-type registrations, subscribes (random priority, after= /
before= edges to existing subscriptions, handlers that fail, unsubscribe themselves or
another, subscribe a new handler, or emit a nested event while dispatching), unsubscribes and
emits; topic-pattern subscriptions (issue 13: members on matching types, now and registered
later), guards that return ringbus.STOP, and ids another bus registered (process-wide
identity: refused by both). After every step the delivery log (every handler call, every error the policy saw),
the counters, the dispatch order of every event type and the liveness of every
subscription must be identical.
"""
import logging
import os

import hypothesis.strategies as st
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import ringbus

import reference

# "fail" twice: several failures in one event (other_errors) need to be common enough.
KINDS = ("ok", "fail", "fail", "unsub_self", "unsub_self_then_fail", "unsub_other", "spawn",
         "relay", "guard")
MAX_TYPES = 4
# Registered in this order: a pattern subscribed early meets types registered after it.
NAMES = ("md.tick", "ord.new", "md.trade", "md.tick.deep")
PATTERNS = ("md.*", "md.>", "*.new", ">", "md.tick.*")


class HandlerError(Exception):
    """Raised by failing handlers; ``args[0]`` is the handler's label."""


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


class Side:
    """One bus (compiled or model) and the log of what its handlers did, in order."""

    def __init__(self, factory, policy, log_capture):
        self.log = []
        self.subs = {}              # label -> Subscription, every one ever made
        self.log_capture = log_capture
        on_error = self._on_error if policy == "callable" else policy
        self.bus = factory(on_error=on_error)

    def _on_error(self, event_type, payload, sub, exc):
        self.log.append(("error", event_type, payload, self.label_of(sub), exc.args))

    def label_of(self, sub):
        # A pattern's member is known by its pattern's label.
        sub = getattr(sub, "_parent", None) or getattr(sub, "parent", None) or sub
        for label, s in self.subs.items():
            if s is sub:
                return label
        return None

    def handler(self, label, kind, arg, with_type=False):
        spawned = []
        if with_type:
            inner = self.handler(label, kind, arg)

            def typed(event_type, payload):
                self.log.append(("typed", label, event_type))
                return inner(payload)
            return typed

        def handle(payload):
            self.log.append(("call", label, payload))
            if kind in ("unsub_self", "unsub_self_then_fail"):
                self.subs[label].unsubscribe()
            elif kind == "unsub_other":
                self.subs[arg].unsubscribe()
            elif kind == "spawn" and not spawned:
                spawned.append(True)
                event_type, priority = arg
                child = label + ".child"
                self.subs[child] = self.bus.subscribe(
                    event_type, self.handler(child, "ok", None), priority=priority, name=child)
            elif kind == "relay" and not isinstance(payload, tuple):
                # One level of nesting only, so that relays cannot multiply without end.
                self.log.append(("relayed", label, self.bus.emit(arg, (label, payload))))
            if kind in ("fail", "unsub_self_then_fail"):
                raise HandlerError(label)
            if kind == "guard":
                return ringbus.STOP
            return None

        handle.__qualname__ = f"handler_{label}"
        return handle

    def emit(self, event_type, payload):
        """Run one emit; return ("ok", n) or ("raised", type, args, other args)."""
        before = len(self.log_capture.records)
        try:
            outcome = ("ok", self.bus.emit(event_type, payload))
        except HandlerError as exc:
            others = [e.args for e in getattr(exc, "other_errors", ())]
            outcome = ("raised", "HandlerError", exc.args, others)
        except (TypeError, ValueError) as exc:
            outcome = ("raised", type(exc).__name__)
        for record in self.log_capture.records[before:]:
            assert record.exc_info is not None, "an error was logged without its traceback"
            self.log.append(("logged", record.exc_info[1].args))
        return outcome

    def subscribe(self, label, event_type, handler, **options):
        try:
            self.subs[label] = self.bus.subscribe(event_type, handler, **options)
            return "ok"
        except ValueError:
            return "ValueError"
        except TypeError:
            return "TypeError"


class BusParity(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.types = []
        self.labels = []            # every label a subscribe was tried with, in order
        self.names = {}             # label -> the name it was given (or None)
        self.type_of = {}           # label -> event type
        self.counter = 0
        self.payload = 0
        self.logger = logging.getLogger("ringbus")
        self.capture = ListHandler()
        self._saved = (self.logger.propagate, self.logger.level)
        self.logger.addHandler(self.capture)
        self.logger.propagate = False       # keep thousands of records out of pytest's capture
        self.logger.setLevel(logging.DEBUG)

    def teardown(self):
        self.logger.removeHandler(self.capture)
        self.logger.propagate, level = self._saved
        self.logger.setLevel(level)

    @initialize(policy=st.sampled_from(["log", "raise", "callable"]),
                n_types=st.integers(1, 3), n_subs=st.integers(0, 8), data=st.data())
    def setup(self, policy, n_types, n_subs, data):
        self.policy = policy
        self.real = Side(ringbus.Bus, policy, self.capture)
        self.model = Side(reference.Bus, policy, self.capture)
        for _ in range(n_types):
            self.add_event_type()
        # Start from a populated bus: random programs are short, and most of what is worth
        # checking needs several subscriptions on one event type.
        for _ in range(n_subs):
            self.subscribe(data)

    # -- rules -------------------------------------------------------------------------------

    @precondition(lambda self: len(self.types) < MAX_TYPES)
    @rule()
    def add_event_type(self):
        name = NAMES[len(self.types)]
        r = self.real.bus.event_type(name)
        m = self.model.bus.event_type(name)
        assert r == m
        assert self.real.bus.event_type(r) == r
        assert self.real.bus.event_type(name) == r
        assert self.real.bus.event_name(r) == name
        self.types.append(r)

    @rule(data=st.data())
    def subscribe(self, data):
        t = data.draw(st.sampled_from(self.types), label="event_type")
        priority = data.draw(st.integers(-2, 2), label="priority")
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        named = data.draw(st.booleans(), label="named")
        self.counter += 1
        label = f"s{self.counter}"
        name = label if named else None

        arg = None
        if kind == "unsub_other":
            # Prefer a live victim of the same event type: it may run later in this
            # very dispatch, which must not notice the unsubscribe.
            live = sorted(label for label, sub in self.real.subs.items() if sub.active)
            same = [label for label in live if self.type_of.get(label) == t]
            pool = (same if same and data.draw(st.booleans(), label="same type victim")
                    else live or sorted(self.real.subs))
            if pool:
                arg = data.draw(st.sampled_from(pool), label="victim")
            else:
                kind = "ok"
        elif kind == "spawn":
            arg = (data.draw(st.sampled_from(self.types), label="spawn type"),
                   data.draw(st.integers(-2, 2), label="spawn priority"))
        elif kind == "relay":
            later = [x for x in self.types if x > t]
            if later:
                arg = data.draw(st.sampled_from(later), label="relay to")
            else:
                kind = "ok"

        after_real, after_model = self._draw_refs(data, t, "after")
        before_real, before_model = self._draw_refs(data, t, "before")
        if named and data.draw(st.integers(0, 9), label="self edge") == 0:
            after_real.append(name)          # after= its own name: a cycle
            after_model.append(name)

        r = self.real.subscribe(label, t, self.real.handler(label, kind, arg),
                                priority=priority, name=name, after=tuple(after_real),
                                before=tuple(before_real))
        m = self.model.subscribe(label, t, self.model.handler(label, kind, arg),
                                 priority=priority, name=name, after=tuple(after_model),
                                 before=tuple(before_model))
        assert r == m, f"subscribe: ringbus {r}, reference {m}"
        self.labels.append(label)
        self.names[label] = name
        self.type_of[label] = t

    def _draw_refs(self, data, t, arg):
        """Edges to earlier subscriptions: by name (any name ever used, so possibly unknown
        here) or by Subscription object (a live one of this event type)."""
        real, model = [], []
        for label in data.draw(st.lists(st.sampled_from(self.labels), max_size=2)
                               if self.labels else st.just([]), label=arg):
            name = self.names[label]
            live_here = (label in self.real.subs and self.real.subs[label].active
                         and self.type_of[label] == t)
            if name is not None and (not live_here or data.draw(st.booleans())):
                real.append(name)
                model.append(name)
            elif live_here:
                real.append(self.real.subs[label])
                model.append(self.model.subs[label])
        return real, model

    @rule(data=st.data())
    def subscribe_pattern(self, data):
        pattern = data.draw(st.sampled_from(PATTERNS), label="pattern")
        priority = data.draw(st.integers(-2, 2), label="priority")
        kind = data.draw(st.sampled_from(("ok", "fail", "guard", "unsub_self")), label="kind")
        with_type = data.draw(st.booleans(), label="with_type")
        self.counter += 1
        label = f"p{self.counter}"
        named = data.draw(st.booleans(), label="named")
        name = label if named else None
        # Edges by name only: a name a matching type lacks is no edge there.
        known = [n for n in self.names.values() if n]
        refs = data.draw(st.lists(st.sampled_from(known), max_size=1) if known
                         else st.just([]), label="after")
        options = dict(priority=priority, name=name, after=tuple(refs))
        r = self.real.subscribe(label, pattern,
                                self.real.handler(label, kind, None, with_type),
                                with_type=with_type, **options)
        m = self.model.subscribe(label, pattern,
                                 self.model.handler(label, kind, None, with_type),
                                 with_type=with_type, **options)
        assert r == m, f"subscribe({pattern!r}): ringbus {r}, reference {m}"
        self.labels.append(label)
        self.names[label] = name
        self.type_of[label] = None

    @rule()
    def emit_foreign_id(self):
        # An id another bus registered (ids are process-wide): both refuse it, by name.
        other = ringbus.Bus()
        t = other.event_type("parity.elsewhere")
        r = self.real.emit(t, None)
        m = self.model.emit(t, None)
        assert r == m == ("raised", "ValueError"), f"foreign id: ringbus {r}, reference {m}"

    @precondition(lambda self: hasattr(self, "real") and self.real.subs)
    @rule(data=st.data())
    def unsubscribe(self, data):
        label = data.draw(st.sampled_from(sorted(self.real.subs)), label="unsubscribe")
        self.real.subs[label].unsubscribe()
        self.model.subs[label].unsubscribe()

    @rule(data=st.data())
    def emit(self, data):
        t = data.draw(st.sampled_from(self.types), label="emit")
        self.payload += 1
        r = self.real.emit(t, self.payload)
        m = self.model.emit(t, self.payload)
        assert r == m, f"emit: ringbus {r}, reference {m}"

    @rule(bad=st.sampled_from([-1, MAX_TYPES + 1, "type0", 1.0, None]))
    def emit_bad_id(self, bad):
        if isinstance(bad, int) and bad == MAX_TYPES + 1:
            bad = len(self.types)            # just beyond the table
        r = self.real.emit(bad, None)
        m = self.model.emit(bad, None)
        assert r == m and r[0] == "raised", f"emit({bad!r}): ringbus {r}, reference {m}"

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def same_delivery_log(self):
        if hasattr(self, "real"):
            assert self.real.log == self.model.log

    @invariant()
    def same_counters(self):
        if hasattr(self, "real"):
            real, model = self.real.bus.stats(), self.model.bus.stats()
            for key in ("emitted", "handler_calls", "handler_errors", "subscriptions",
                        "event_types", "stopped"):
                assert real[key] == model[key], f"stats()[{key!r}]: {real} vs {model}"

    @invariant()
    def same_dispatch_order_and_liveness(self):
        if not hasattr(self, "real"):
            return
        for t in self.types:
            r = [self.real.label_of(s) for s in self.real.bus.subscriptions(t)]
            m = [self.model.label_of(s) for s in self.model.bus.subscriptions(t)]
            assert r == m, f"subscriptions({t}): {r} vs {m}"
        assert sorted(self.real.subs) == sorted(self.model.subs)
        for label, sub in self.real.subs.items():
            assert sub.active == self.model.subs[label].active, label


# Shrinking a failing program takes Hypothesis up to five minutes here; the unshrunk
# program (at most ~40 steps) is printed either way. RINGBUS_PARITY_SHRINK=1 shrinks it.
_PHASES = tuple(p for p in Phase
                if p is not Phase.shrink or os.environ.get("RINGBUS_PARITY_SHRINK") == "1")

BusParity.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestBusParity = BusParity.TestCase
