"""`report`: re-render the HTML of stored runs from their summary.json, without running anything."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import results


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="re-render reports/<run-id>/index.html from summary.json")
    parser.add_argument("run_dirs", nargs="+", help="run folders, e.g. reports/latest")
    parser.set_defaults(func=report)


def report(args: argparse.Namespace, extra: list[str]) -> int:
    from ..report import write_report

    for run_dir in args.run_dirs:
        summary = Path(run_dir) / "summary.json"
        if not summary.exists():
            print(f"{run_dir}: no summary.json here; pass a run folder such as reports/latest", file=sys.stderr)
            return 2
        print(write_report(Path(run_dir), results.read_json(summary)))
    return 0
