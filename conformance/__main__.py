"""Command line: `python -m conformance <command>`. Each command lives in its own module under
conformance/commands/ and exposes `add_parser(subparsers)`; adding a command is one line below."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["run", "replay", "report", "docs", "frameworks", "baseline", "compare", "validate", "history", "bench",
            "search"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance",
                                     description="AdaMax conformance suite: torch.optim.Adamax vs mindspore.nn.AdaMax")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"conformance.commands.{name}").add_parser(sub)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.func(args, extra) or 0)


if __name__ == "__main__":
    code = main()
    from conformance import backends

    backends.exit_now(code)  # skips a framework's slow teardown (MindSpore's: seconds) once all is written
    sys.exit(code)
