"""``python -m ringbus``: the command line: ``bench``, ``shm`` and ``bridge``.

    python -m ringbus bench                 # full run, < 5 minutes
    python -m ringbus bench --quick         # < 60 s, wider error bars
    python -m ringbus bench --markdown      # the tables for the README
    python -m ringbus bench --only one_to_one blinker
    python -m ringbus bench --only one_to_one_threads latency janus
    python -m ringbus bench --only xproc_records xproc_messages xproc_latency
    python -m ringbus bench --only workers_cpu workers_tiny workers_latency
    python -m ringbus shm ls                # shared-memory rings on this machine
    python -m ringbus shm rm NAME           # remove one (say, what a kill -9 left)
    python -m ringbus bridge nats --servers nats://127.0.0.1:4222 --stream md \
        --ring ticks --subject 'md.tick.{sym}'   # a shared ring -> JetStream, in this process

The work is in :mod:`ringbus.benchmarks`; this module only parses arguments.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _bridge_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """``bridge``: its arguments (the work is in :mod:`ringbus.bridge.process`)."""
    p = sub.add_parser(
        "bridge", help="drain a shared MessageRing into NATS JetStream or Redis Streams",
        description="Run a bridge in this process: attach the shared MessageRing --ring, "
                    "publish its messages to the engine and commit the ring only as far as "
                    "the engine acknowledged (a restart resumes there; copies are "
                    "de-duplicated). Stops on SIGTERM or SIGINT.")
    p.add_argument("engine", choices=("nats", "redis"))
    p.add_argument("--ring", required=True, metavar="NAME",
                   help="the shared ring's name (as given to shared=)")
    p.add_argument("--subject", metavar="SUBJECT",
                   help="subject (NATS) or stream key (Redis), a template like "
                        "'md.tick.{sym}' takes each message's key (default: the stream's)")
    p.add_argument("--key", metavar="FIELD",
                   help="the field that fills the subject's placeholder (default: its name)")
    p.add_argument("--servers", nargs="+", default=["nats://127.0.0.1:4222"], metavar="URL",
                   help="NATS server URLs (default nats://127.0.0.1:4222)")
    p.add_argument("--creds", metavar="FILE", help="NATS credentials file")
    p.add_argument("--url", default="redis://127.0.0.1:6379/0",
                   help="Redis URL (default redis://127.0.0.1:6379/0)")
    p.add_argument("--stream", default="ringbus",
                   help="JetStream stream / the Redis bridge's name (default ringbus)")
    p.add_argument("--codec", choices=("msgpack", "json"), default="msgpack",
                   help="how objects from the ring are encoded on the wire (default msgpack)")
    p.add_argument("--batch", type=int, default=500, help="messages per publish (500)")
    p.add_argument("--max-in-flight", type=int, default=10_000,
                   help="messages polled and not yet acknowledged, at most (10000)")
    p.add_argument("--ack-wait", type=float, default=5.0,
                   help="seconds before an unacknowledged message is published again (5)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ringbus",
                                     description="ringbus command line.")
    from ringbus import __version__
    parser.add_argument("--version", action="version", version=f"ringbus {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shm = sub.add_parser("shm", help="list or remove ringbus shared-memory segments",
                         description="The shared-memory rings ringbus made on this machine "
                                     "(/dev/shm/ringbus.*): their kind, size, creator and "
                                     "consumer, alive or gone; remove one by name.")
    shm_sub = shm.add_subparsers(dest="shm_command", metavar="ACTION", required=True)
    shm_sub.add_parser("ls", help="list the segments")
    rm = shm_sub.add_parser("rm", help="remove a segment by name")
    rm.add_argument("name", help="the segment's name (as given to shared=)")
    _bridge_parser(sub)
    bench = sub.add_parser(
        "bench", help="compare ringbus with direct calls and peer libraries",
        description="Time ringbus's emit against direct calls (the floor), a plain-Python "
                    "dict dispatcher, blinker, pyee, psygnal and pypubsub; its ring (publish, "
                    "drain, consumer threads, latency) against queue.SimpleQueue, "
                    "collections.deque + threading.Event and janus; and emit_batch against a "
                    "numpy argsort baseline; in one run, and print medians, ratios and the "
                    "issues' targets. Peers that are not installed are reported as such.")
    bench.add_argument("--quick", action="store_true",
                       help="fewer events and rounds: the same tables in < 60 s")
    bench.add_argument("--repeat", type=_positive, metavar="N",
                       help="timed rounds per implementation (default 15, --quick 5)")
    bench.add_argument("--warmup", type=int, metavar="N", help="untimed rounds first (default 1)")
    bench.add_argument("--events", type=_positive, metavar="N",
                       help="events per timed loop (default 100000, --quick 20000)")
    bench.add_argument("--fan-out-events", type=_positive, metavar="N",
                       help="events per timed loop in fan_out_10 (default events/5)")
    bench.add_argument("--types", type=_positive, nargs="+", metavar="K",
                       help="event type counts of the types_K cases (default 1000 100000)")
    bench.add_argument("--thread-events", type=_positive, metavar="N",
                       help="events per timed run of the thread cases (default 1000000, "
                            "--quick 100000)")
    bench.add_argument("--thread-repeat", type=_positive, metavar="N",
                       help="timed rounds of the thread and latency cases (default 5, "
                            "--quick 3)")
    bench.add_argument("--latency-events", type=_positive, metavar="N",
                       help="events per latency run, one every 30 us (default 5000, "
                            "--quick 1000)")
    bench.add_argument("--waits", nargs="+", choices=("block", "yield", "spin", "sleep"),
                       metavar="WAIT", help="ringbus wait strategies of the thread and "
                                            "latency cases (default: block yield spin sleep)")
    bench.add_argument("--batch-rows", type=_positive, metavar="N",
                       help="rows per batch in emit_batch_1m (default 1000000)")
    bench.add_argument("--xproc-messages", type=_positive, metavar="N",
                       help="messages per run of a ~1 us/message row of the process "
                            "cases; faster rows send proportionally more (default 250000, "
                            "--quick 60000)")
    bench.add_argument("--xproc-repeat", type=_positive, metavar="N",
                       help="timed rounds of the process cases (default 7, --quick 3)")
    bench.add_argument("--xproc-latency-messages", type=_positive, metavar="N",
                       help="messages per xproc_latency run, one every 50 us (default 4000, "
                            "--quick 1500)")
    bench.add_argument("--only", nargs="+", metavar="NAME",
                       help="run only these cases and/or peers (the floor, ringbus and "
                            "SimpleQueue always run); cases: one_to_one fan_out_10 types_K "
                            "no_subscriber one_thread_publish_drain one_to_one_threads "
                            "three_to_one_threads latency emit_batch_1m xproc_records "
                            "xproc_messages xproc_latency workers_cpu workers_tiny "
                            "workers_latency; peers: dict blinker "
                            "pyee psygnal pypubsub deque janus")
    bench.add_argument("--setup-budget", type=float, metavar="SECONDS",
                       help="seconds a peer may spend wiring one case before it is reported "
                            "as skipped (default 30, --quick 10)")
    bench.add_argument("--seed", type=int, help="seed of the random event type sequence")
    bench.add_argument("--markdown", action="store_true",
                       help="print README-ready markdown tables (every case run)")
    bench.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ringbus import benchmarks

    settings = benchmarks.Settings.quick() if args.quick else benchmarks.Settings()
    if args.repeat is not None:
        settings.rounds = args.repeat
    if args.warmup is not None:
        settings.warmup = max(0, args.warmup)
    if args.events is not None:
        settings.events = args.events
        settings.fan_out_events = max(1, args.events // 5)
    if args.fan_out_events is not None:
        settings.fan_out_events = args.fan_out_events
    if args.types is not None:
        settings.type_counts = tuple(args.types)
    if args.setup_budget is not None:
        settings.setup_budget = args.setup_budget
    if args.seed is not None:
        settings.seed = args.seed
    if args.thread_events is not None:
        settings.thread_events = args.thread_events
    if args.thread_repeat is not None:
        settings.thread_rounds = args.thread_repeat
    if args.latency_events is not None:
        settings.latency_events = args.latency_events
    if args.waits:
        settings.waits = tuple(dict.fromkeys(args.waits))
    if args.batch_rows is not None:
        settings.batch_rows = args.batch_rows
    if args.xproc_messages is not None:
        settings.xproc_messages = args.xproc_messages
    if args.xproc_repeat is not None:
        settings.xproc_rounds = args.xproc_repeat
    if args.xproc_latency_messages is not None:
        settings.xproc_latency_messages = args.xproc_latency_messages

    only_cases = None
    if args.only:
        cases = set(benchmarks.case_names(settings))
        peers = set(benchmarks.PEER_NAMES)
        unknown = [n for n in args.only if n not in cases and n not in peers]
        if unknown:
            parser.error(f"--only: unknown name(s) {', '.join(unknown)}; cases: "
                         f"{', '.join(benchmarks.case_names(settings))}; peers: "
                         f"{', '.join(benchmarks.PEER_NAMES)}")
        only_cases = [n for n in args.only if n in cases] or None
        picked = tuple(n for n in args.only if n in peers)
        if picked:
            settings.peers = picked

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = benchmarks.run(settings, only=only_cases,
                            progress=None if args.quiet else progress)
    sys.stdout.write(benchmarks.render(report, markdown=args.markdown))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args, parser)
    if args.command == "bridge":
        from ringbus.bridge.process import main as bridge_main
        return bridge_main(args)
    if args.command == "shm":
        from ringbus import shm
        return shm.main(args.shm_command, getattr(args, "name", None))
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
