"""`compare`: what changed between the committed baseline and a run (e.g. of another framework release).

Exit status, for CI gates: 0 nothing changed, 1 something changed (an item or the optimizer API),
2 the inputs cannot be read, 3 refused because the two sides ran on different machines or covered
different devices/dtypes (pass --accept-environment to compare anyway).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import release
from ..results import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("compare", help="list what changed between a baseline and a run; exit 1 if anything did",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", help="baseline file (cases/baseline.json), or a run folder to compare two runs")
    parser.add_argument("run", help="run folder, e.g. reports/latest, or its summary.json")
    parser.add_argument("--factor", type=float, default=release.NoiseRule.factor,
                        help="a figure moved if it changed by more than this factor (default: %(default)s)")
    parser.add_argument("--min-ulp", type=float, default=release.NoiseRule.min_ulp,
                        help="quantities within this many ULP on both sides never count as moved (default: %(default)s)")
    parser.add_argument("--accept-environment", action="store_true",
                        help="compare although machine or device/dtype coverage differ (reported as a warning)")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON to PATH")
    parser.set_defaults(func=compare)


def compare(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        old, new = release.load(args.baseline), release.load(args.run)
    except release.BaselineError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    if args.factor <= 1:
        print("compare: --factor must be greater than 1 (2 means 'halved or doubled')", file=sys.stderr)
        return 2
    result = release.compare(old, new, release.NoiseRule(args.factor, args.min_ulp))
    if result.environment and not args.accept_environment:
        print("compare: refused: the two sides ran in different environments, so figures may differ for reasons "
              "other than the release:", file=sys.stderr)
        for line in result.environment:
            print(f"  {line}", file=sys.stderr)
        print("rerun the suite on the baseline's machine, refresh the baseline here, or pass "
              "--accept-environment to compare anyway", file=sys.stderr)
        return 3
    print(release.render(result, args.accept_environment))
    if args.json:
        write_json(Path(args.json), result.as_dict())
    return 1 if result.changed else 0
