"""`docs`: the "Differences between torch.optim.Adamax and mindspore.nn.AdaMax" page and its appendix
(Markdown + HTML) from a stored run; every figure on them is that run's."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("docs", help="write the API-differences page and its appendix (measured) from a run")
    parser.add_argument("run_dir", help="a run folder, e.g. reports/latest")
    parser.add_argument("--out", default=None, help="folder for the pages (default: the run folder)")
    parser.add_argument("--report-url", default=None,
                        help="where the run's HTML report will be published (default: the run folder, relative)")
    parser.add_argument("--history", default=None, metavar="URL",
                        help="link for the Evidence section's 'AdaMax behaviour across releases'")
    parser.add_argument("--across", default=None, metavar="FILE.md",
                        help="a Markdown 'AdaMax across frameworks' table to include in the Evidence section")
    parser.set_defaults(func=docs)


def docs(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.cases.causes import RegistryError
    from conformance.report.docs_page import write_docs
    from conformance.results.storage import RunDirError, load_summary

    run_dir = Path(args.run_dir)
    try:
        across = Path(args.across).read_text(encoding="utf-8") if args.across else None
        data = load_summary(run_dir)
        paths = write_docs(data, Path(args.out) if args.out else run_dir, run_dir=run_dir,
                           report_url=args.report_url, history=args.history, across=across)
    except (RunDirError, RegistryError, OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
