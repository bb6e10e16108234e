"""`replay`: a trace recorded by `conformance.record` fed to every installed AdaMax implementation,
written as an ordinary run folder (conformance/traces/replay.py; the format: docs/traces.md)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from conformance import backends

    parser = sub.add_parser(
        "replay", help="replay a recorded torch training loop (a trace) through every AdaMax implementation",
        description="Exit 0: every implementation conforms; 1: one diverges (the report says where and why); "
                    "2: the trace cannot be replayed (nothing is written). Other arguments go to pytest.")
    parser.add_argument("trace", help="the trace folder conformance.record wrote")
    parser.add_argument("--frameworks", nargs="+", choices=backends.names(), default=None,
                        help="implementations to run, torch first (default: every installed one that replays traces)")
    parser.add_argument("--reports-dir", default="reports", help="where the run folder goes (default: %(default)s)")
    parser.add_argument("--run-id", default=None, help="the run folder's name (default: time + random)")
    parser.add_argument("-n", "--workers", default="0", help="pytest-xdist workers (default: 0, serially)")
    parser.set_defaults(func=replay, accepts_extra=True)


def replay(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.traces.replay import replay as run_replay

    command = "python -m conformance " + shlex.join(sys.argv[1:])  # what the report shows as the run's command
    return run_replay(Path(args.trace), args.frameworks, Path(args.reports_dir), args.run_id, args.workers, extra,
                      command)
