"""`run`: the whole case suite on this machine's backends, through pytest, writing reports/<run-id>/."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run the case suite and write reports/<run-id>/ (other options go to pytest)")
    parser.add_argument("cases", nargs="*", help="case files or folders (default: cases/)")
    parser.add_argument("--reports-dir", default="reports", help="where run folders go (default: %(default)s)")
    parser.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers; 0 runs serially (default: auto)")
    parser.set_defaults(func=run, accepts_extra=True)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    argv = [*(args.cases or ["cases"]), "-p", "no:cacheprovider", "-rfEs", f"--reports-dir={args.reports_dir}"]
    if args.workers != "0":
        argv += ["-n", args.workers]
    code = int(pytest.main(argv + extra))
    latest = Path(args.reports_dir) / "latest" / "index.html"
    if latest.exists() and code in (0, 1):  # 1: some verdicts failed, the report still stands
        print(f"report: {latest.resolve()}")
    return code
