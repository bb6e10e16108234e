"""`history`: AdaMax behaviour across framework releases, as a page (<name>.md and <name>.html).

Without --runs it runs the whole suite once per release, each in a virtualenv of its own
(conformance/release/virtualenvs.py, `.tox/releases/`), reusing a stored run whose fingerprint still
matches: by default once per MindSpore release (2.8.0, 2.9.0, 2.10.0) with the pinned torch; with --torch
alone once per torch release with the pinned MindSpore (`--torch 2.13.0 2.14.1 2.15.0 --out <folder>
--name torch` writes the committed torch page); with both, the MindSpore releases and then the torch ones.
With --runs it renders stored run folders, oldest release first, and runs nothing. Extra options go to each
suite run (e.g. -n 0).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.release import virtualenvs
from conformance.release.across_releases import history, load_runs
from conformance.release.pins import pinned_release
from conformance.results.storage import RunDirError

RELEASES = ("2.8.0", "2.9.0", "2.10.0")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("history", help="AdaMax behaviour across MindSpore releases (runs the suite per release)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mindspore", nargs="+", default=None,
                        help=f"MindSpore releases with the pinned torch, oldest first (default: {' '.join(RELEASES)}, "
                             "unless --torch is given alone)")
    parser.add_argument("--torch", nargs="+", default=None,
                        help="torch releases with the pinned MindSpore, oldest first (alone: the page across torch "
                             "releases, e.g. --torch 2.13.0 2.14.1 2.15.0)")
    parser.add_argument("--runs", nargs="+", type=Path, help="render these stored run folders; run nothing")
    parser.add_argument("--out", type=Path, default=Path("reports/history"),
                        help="where the page goes (default: %(default)s)")
    parser.add_argument("--name", default="history",
                        help="the page's file name, without .md/.html (default: %(default)s)")
    parser.add_argument("--project", default="pyproject.toml", help="where the pins are read (default: %(default)s)")
    parser.add_argument("--envs-dir", default=str(virtualenvs.ENVS_DIR), help="virtualenvs (default: %(default)s)")
    parser.add_argument("--reports-dir", default="reports/releases",
                        help="runs, one folder per pair (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="run every release again even if a stored run matches")
    parser.set_defaults(func=run_history, accepts_extra=True)


def pairs(args: argparse.Namespace) -> list[virtualenvs.Release]:
    """The (torch, MindSpore) pairs to run, in page order: one framework's releases beside the other's pin."""
    pinned = pinned_release(Path(args.project))
    if args.torch and not args.mindspore:
        return [virtualenvs.Release(t, pinned.mindspore) for t in args.torch]
    out = [virtualenvs.Release(pinned.torch, ms) for ms in (args.mindspore or RELEASES)]
    out += [virtualenvs.Release(t, pinned.mindspore) for t in (args.torch or []) if t != pinned.torch]
    return out


def run_history(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.report import history_page as page

    try:
        run_dirs = args.runs or []
        if not run_dirs:
            root = Path.cwd()
            for pair in pairs(args):
                python = virtualenvs.ensure_env(pair, root, Path(args.envs_dir))
                run_dirs.append(virtualenvs.run_suite(python, pair, root, Path(args.reports_dir), extra,
                                                       reuse=not args.fresh))
        data = history(load_runs(run_dirs))
    except (virtualenvs.ReleaseEnvError, RunDirError, FileNotFoundError, ValueError) as exc:
        print(f"history: {exc}", file=sys.stderr)
        return 2
    md_path, html_path = page.write(data, args.out, args.name)
    for release in data["releases"]:
        print(f"{release['label']}: run {release['run_id']}, "
              + ", ".join(f"{n} {o}" for o, n in sorted(release["counts"].items())))
    print(f"{len(data['rows'])} {'causes' if data['by_cause'] else 'cases'} diverge in at least one release; "
          f"{len(data['changed_rows'])} differ between releases" + (": " + ", ".join(data["changed_rows"])
                                                                    if data["changed_rows"] else ""))
    for change in data["steps"]:
        print(f"{change['from']} -> {change['to']}: "
              + ", ".join(f"{n} {label}" for label, n in change["counts"].items())
              + (f" ({', '.join(f'{n} {how}' for how, n in change['how'].items())})" if change["how"] else "")
              + f"; API: {'; '.join(change['api']) or 'no change'}")
    print(f"wrote {md_path} and {html_path}")
    return 0
