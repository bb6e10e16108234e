"""`compare`: what changed between a reference (the committed baseline, or a run of the pinned versions
on this machine) and a run, e.g. of another framework release.

It opens with counts per status and the optimizer API changes, then names how the two environments
differ (ignored where that cannot change bits, such as a kernel build string; named where it can, such
as the CPU ISA level or thread counts), then lists the changed items; unchanged ones only with -v.

Exit status, for CI gates: 0 nothing changed, 1 something changed (an item or the optimizer API),
2 no comparison was made: an input cannot be read, or comparing would mislead (an interrupted run, or no
device/dtype that ran on both sides; the message says what to do, --accept-environment compares anyway).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.release import baseline as baselines
from conformance.release import comparison, rules
from conformance.release.comparison import refused
from conformance.report.changes import into_report
from conformance.results.storage import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("compare", help="list what changed between a baseline and a run; exit 1 if anything did",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", help="baseline file (cases/baseline.json), or a run folder to compare two runs")
    parser.add_argument("run", help="run folder, e.g. reports/latest, or its summary.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the unchanged items")
    parser.add_argument("--factor", type=float, default=rules.NoiseRule.factor,
                        help="a figure moved if it changed by more than this factor (default: %(default)s)")
    parser.add_argument("--min-ulp", type=float, default=rules.NoiseRule.min_ulp,
                        help="quantities within this many ULP on both sides never count as moved "
                             "(default: %(default)s)")
    parser.add_argument("--accept-environment", action="store_true",
                        help="compare although the comparison would mislead (reported as a warning)")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON to PATH")
    parser.add_argument("--into-report", action="store_true",
                        help="add a 'Changes since <baseline>' section to the run's index.html (the run must be a "
                             "run folder; writes changes.json there)")
    parser.set_defaults(func=compare)


def rule_from(args: argparse.Namespace) -> rules.NoiseRule | None:
    """The noise rule the options ask for, or None (after saying why) when they make no sense."""
    if args.factor <= 1:
        print("compare: --factor must be greater than 1 (2 means 'halved or doubled')", file=sys.stderr)
        return None
    if args.min_ulp < 0:
        print("compare: --min-ulp must be 0 or more (0: every ULP counts)", file=sys.stderr)
        return None
    return rules.NoiseRule(args.factor, args.min_ulp)


def compare(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        old, new = baselines.load(args.baseline), baselines.load(args.run)
    except baselines.BaselineError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    rule = rule_from(args)
    if rule is None:
        return 2
    if args.into_report and not (Path(args.run) / "summary.json").exists():
        print(f"compare: --into-report needs a run folder (with summary.json), not {args.run}", file=sys.stderr)
        return 2
    result = comparison.compare(old, new, rule)
    if refused(result, args.accept_environment):
        return 2
    print(comparison.render(result, verbose=args.verbose))
    if args.json:
        write_json(Path(args.json), result.as_dict())
    if args.into_report:
        print(f"report: {into_report(Path(args.run), args.baseline, result.as_dict()).resolve()}")
    return 1 if result.changed else 0
