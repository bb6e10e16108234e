"""`report`: re-render stored runs from summary.json and their JSONL, or merge several into one, without
running anything."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.results import storage


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="re-render reports/<run-id>/index.html, or merge several runs into one",
                            description="One run folder: re-render its HTML in place. Several (or --out): merge "
                                        "them, keyed by item id, into a new run folder and render that.")
    parser.add_argument("run_dirs", nargs="+", help="run folders, e.g. reports/latest reports/<gpu-run-id>")
    parser.add_argument("--out", default=None,
                        help="folder of the merged run (default: a new reports/<run-id> beside the first run)")
    parser.set_defaults(func=report)


def report(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.report.run_report import write_report
    from conformance.results.merge import merge
    from conformance.results.storage import RunDirError, load_summary

    dirs = [Path(d) for d in args.run_dirs]
    try:
        if len(dirs) == 1 and args.out is None:
            print(write_report(dirs[0], load_summary(dirs[0])))
            return 0
        out = Path(args.out) if args.out else dirs[0].resolve().parent / storage.new_run_id()
        data = merge(dirs, out)
    except RunDirError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"merged {len(data['items'])} items from {len(dirs)} runs")
    print(write_report(out, data))
    return 0
