"""`frameworks`: the "AdaMax across frameworks" table (Markdown + HTML) from a stored run's N-way items."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("frameworks",
                            help="write frameworks.md/.html (every implementation against torch) from a run")
    parser.add_argument("run_dir", help="a run folder holding N-way items, e.g. reports/latest")
    parser.add_argument("--out", default=None, help="folder for frameworks.md/.html (default: the run folder)")
    parser.set_defaults(func=frameworks)


def frameworks(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.report.frameworks_table import write
    from conformance.results.storage import RunDirError, load_summary

    try:
        paths = write(load_summary(Path(args.run_dir)), Path(args.out) if args.out else Path(args.run_dir))
    except RunDirError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not paths:
        print(f"{args.run_dir} holds no item of a case listing more than two frameworks "
              "(e.g. cases/frameworks_matrix.yaml); nothing written", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
