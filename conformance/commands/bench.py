"""`bench`: measure the harness against the frameworks' bare work, its memory, suite scaling, start-up."""
from __future__ import annotations

import argparse

from conformance.bench.measure import LOADS, SIZES


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="benchmark the harness (overhead, memory, suite scaling, start-up)")
    parser.add_argument("--sizes", nargs="*", default=["1k", "100k", "1M"], choices=list(SIZES),
                        help="model sizes for the overhead table (default: 1k 100k 1M; none: skip)")
    parser.add_argument("--steps", type=int, default=200, help="steps per overhead run (default: 200)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; medians reported")
    parser.add_argument("--memory-sizes", "--memory-size", nargs="+", default=list(SIZES), choices=list(SIZES),
                        help="models for peak RSS (default: all)")
    parser.add_argument("--memory-steps", type=int, nargs="*", default=[100, 5000],
                        help="step counts for peak RSS, one fresh process each (none: skip); growth is "
                             "reported from the fewest to the most")
    parser.add_argument("--replay-size", default="1M", choices=list(SIZES),
                        help="model of the synthetic trace whose replay is measured (default: %(default)s)")
    parser.add_argument("--replay-steps", type=int, nargs="*", default=[100, 1000],
                        help="step counts for the replay's peak RSS (none: no replay rows); the trace holds the most "
                             "of these and --steps (at 1M x 1,000 steps: 4 GB in a temporary folder)")
    parser.add_argument("--loads", nargs="+", default=list(LOADS), choices=list(LOADS),
                        help="overhead and memory under each: idle (the bench alone) and busy (a spinning "
                             "process on every other CPU) (default: both)")
    parser.add_argument("--startup-size", default="1M", choices=list(SIZES), help="model for start-up")
    parser.add_argument("--suite", default="cases",
                        help="case folder timed with `python -m conformance run` (the main job); '' skips it")
    parser.add_argument("--workers", nargs="+", default=["0", "2"], help="-n values to time (0: serial)")
    parser.add_argument("--suite-repeats", type=int, default=2,
                        help="suite runs per -n value, in alternating order; medians reported (default: 2)")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurement")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per subprocess")
    parser.add_argument("-o", "--output", help="JSON path (default: reports/bench-<time>.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.bench.measure import main

    return main(args)
