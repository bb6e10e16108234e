"""`run`: the whole case suite on this machine's backends, through pytest, writing reports/<run-id>/."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run", help="run the case suite and write reports/<run-id>/",
        description="Everything not listed here goes to pytest unchanged (case files or node ids, -k, -m, "
                    "--run-id=..., --dist worksteal, ...); without a case path, all of cases/ runs.")
    parser.add_argument("--reports-dir", default="reports", help="where run folders go (default: %(default)s)")
    parser.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers; 0 runs serially (default: auto)")
    parser.set_defaults(func=run, accepts_extra=True)


def _names_cases(extra: list[str]) -> bool:
    """Whether the pytest arguments already name case files, folders or node ids."""
    return any(not a.startswith("-") and (Path(a.split("::")[0]).exists()) for a in extra)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    # hypothesis's pytest plugin (installed for tests/) imports hypothesis at the end of every session,
    # 1.3 s in each xdist worker while the controller waits; no case uses it.
    argv = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-rfEs", f"--reports-dir={args.reports_dir}"]
    if args.workers != "0":
        argv += ["-n", args.workers]
    argv += extra if _names_cases(extra) else ["cases", *extra]
    code = int(pytest.main(argv))
    latest = Path(args.reports_dir) / "latest" / "index.html"
    if latest.exists() and code in (0, 1):  # 1: some verdicts failed, the report still stands
        print(f"report: {latest.resolve()}")
    return code
