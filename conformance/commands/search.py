"""`search`: let Hypothesis look for inputs where torch and MindSpore part, or where either departs from
its own formula, and keep each finding as a ready case under cases/found/ (see conformance/search/)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

from conformance.results import storage


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("search", help="search for divergences with Hypothesis; findings become cases/found/*.yaml",
                            description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default: %(default)s)")
    parser.add_argument("--budget", default="200",
                        help="examples (e.g. 300: deterministic, counts every framework run, shrinking included) "
                             "or wall-clock time (90s, 20m: not deterministic) (default: %(default)s)")
    parser.add_argument("--dtype", action="append", choices=["float32", "float16", "float64"],
                        help="dtypes to draw (repeatable; default: all three)")
    parser.add_argument("--max-steps", type=int, default=100, help="longest drawn run (default: %(default)s)")
    parser.add_argument("--found-dir", default="cases/found",
                        help="where new cases go; existing files are never overwritten (default: %(default)s)")
    parser.add_argument("--no-cases", action="store_true", help="only report findings, write no case files")
    parser.add_argument("--run-dir", default=None,
                        help="run folder for search.json (default: a new reports/<run-id>); a run folder with a "
                             "summary.json gets its HTML report re-rendered with a Search section")
    parser.set_defaults(func=search)


def _command(args: argparse.Namespace) -> str:
    parts = ["python -m conformance search", f"--seed {args.seed}", f"--budget {shlex.quote(args.budget)}",
             *(f"--dtype {d}" for d in args.dtype or []), f"--max-steps {args.max_steps}"]
    return " ".join(parts)


def search(args: argparse.Namespace, extra: list[str]) -> int:
    import warnings

    from conformance.search import explorer, found_cases

    # MindSpore raises the recursion limit on import; Hypothesis warns that it cannot restore it.
    warnings.filterwarnings("ignore", message="The recursion limit will not be reset")

    try:
        budget = explorer.Budget.parse(args.budget)
    except ValueError as exc:
        print(f"search: {exc}", file=sys.stderr)
        return 2
    command = _command(args)
    print(f"search: seed {args.seed}, budget {budget.describe()}: {command}", flush=True)
    run = explorer.Search(seed=args.seed, budget=budget, dtypes=tuple(args.dtype or explorer.DTYPES),
                        max_steps=args.max_steps, log=lambda line: print(line, flush=True))
    data = run.run()
    data["command"] = command
    if not args.no_cases:
        with tempfile.TemporaryDirectory(prefix="conformance-found-") as tmp:
            for record, finding in zip(data["findings"], run.found.values()):
                path, status = found_cases.write_case(finding, Path(args.found_dir), command, Path(tmp))
                record["file"], record["status"] = str(path), status
    run_dir = Path(args.run_dir) if args.run_dir else Path("reports") / storage.new_run_id()
    run_dir.mkdir(parents=True, exist_ok=True)
    storage.atomic_write_text(run_dir / "search.json", json.dumps(data, indent=1) + "\n")
    _print(data, run_dir)
    if (run_dir / "summary.json").exists():
        from conformance.report.run_report import write_report
        from conformance.results.storage import load_summary
        print(f"report: {write_report(run_dir, load_summary(run_dir))}")
    return 0


def _print(data: dict, run_dir: Path) -> None:
    print(f"{data['inputs']} inputs ({data['runs']} framework runs with replays) in {data['rounds']} "
          f"Hypothesis rounds, {data['seconds']} s; "
          f"{len(data['findings'])} finding(s)")
    for f in data["findings"]:
        tag = "explained" if f["explained"] else "UNEXPLAINED"
        top = max(f["scores"].items(), key=lambda kv: kv[1]) if f["scores"] else ("-", 0.0)
        print(f"  {f['category']:<58} {tag:<11} top {top[0]} 1e{top[1]:.1f}  "
              f"{f.get('status', '')} {f.get('file') or ''}")
    print(f"results: {run_dir / 'search.json'}")
