"""Command line: `python -m conformance run` (the case suite + report) and `report` (re-render)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import results


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    """The whole case suite on this machine's backends, through pytest, writing reports/<run-id>/."""
    import pytest

    argv = [*(args.cases or ["cases"]), "-p", "no:cacheprovider", "-rfEs"]
    if args.workers != "0":
        argv += ["-n", args.workers]
    code = int(pytest.main(argv + extra))
    latest = Path("reports/latest/index.html")
    if latest.exists():
        print(f"report: {latest.resolve()}")
    return code


def _report(args: argparse.Namespace, extra: list[str]) -> int:
    """Re-render the HTML of stored runs from their summary.json, without running anything."""
    from .report import write_report

    for run_dir in args.run_dirs:
        summary = Path(run_dir) / "summary.json"
        if not summary.exists():
            print(f"{run_dir}: no summary.json here; pass a folder under reports/", file=sys.stderr)
            return 2
        print(write_report(Path(run_dir), results.read_json(summary)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the case suite and write reports/<run-id>/ (extra args go to pytest)")
    run.add_argument("cases", nargs="*", help="case files or folders (default: cases/)")
    run.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers; 0 runs serially (default: auto)")
    run.set_defaults(func=_run)
    report = sub.add_parser("report", help="re-render reports/<run-id>/index.html from summary.json")
    report.add_argument("run_dirs", nargs="+", help="run folders, e.g. reports/latest")
    report.set_defaults(func=_report)
    args, extra = parser.parse_known_args(argv)
    return args.func(args, extra)


if __name__ == "__main__":
    sys.exit(main())
