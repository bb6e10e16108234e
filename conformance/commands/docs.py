"""`docs`: the API-mapping page "Differences between torch.optim.Adamax and mindspore.nn.AdaMax" in English
and Chinese (Markdown and its HTML rendering) and its appendix, from a stored run; every figure on them is
that run's. With --docs-repo, the pages and each language's mapping-index row go into a checkout of
MindSpore's docs repository, where it keeps them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("docs", help="write the API-mapping page (English and Chinese) and its appendix from a run")
    parser.add_argument("run_dir", help="a run folder, e.g. reports/latest")
    parser.add_argument("--out", default=None,
                        help="folder for the pages, their HTML renderings and the appendix (default: the run folder)")
    parser.add_argument("--docs-repo", default=None, metavar="DIR",
                        help="a checkout of MindSpore's docs repository: write the pages under "
                             "docs/mindspore/source_en|source_zh_cn/note/api_mapping/pytorch_diff/ and add their row "
                             "to each language's pytorch_api_mapping.md")
    parser.add_argument("--report-url", default=None,
                        help="where the run's HTML report is published: the pages then link their evidence there "
                             "(default: no links, case names only)")
    parser.set_defaults(func=docs)


def docs(args: argparse.Namespace, extra: list[str]) -> int:
    from conformance.cases.causes import RegistryError
    from conformance.report.docs_site import write_docs
    from conformance.results.storage import RunDirError, load_summary

    run_dir = Path(args.run_dir)
    try:
        data = load_summary(run_dir)
        paths = write_docs(data, Path(args.out) if args.out else run_dir, run_dir=run_dir,
                           report_url=args.report_url, docs_repo=Path(args.docs_repo) if args.docs_repo else None)
    except (RunDirError, RegistryError, OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
