"""`docs`: the "Differences between torch.optim.Adamax and mindspore.nn.AdaMax" page (Markdown + HTML)
from a stored run; every figure on it is that run's."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("docs", help="write differences.md/.html (API differences, measured) from a run")
    parser.add_argument("run_dir", help="a run folder, e.g. reports/latest")
    parser.add_argument("--out", default=None, help="folder for differences.md/.html (default: the run folder)")
    parser.set_defaults(func=docs)


def docs(args: argparse.Namespace, extra: list[str]) -> int:
    from ..report.differences import write_docs
    from ..report.merge import RunDirError, load

    try:
        data = load(Path(args.run_dir))
        paths = write_docs(data, Path(args.out) if args.out else Path(args.run_dir))
    except (RunDirError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
