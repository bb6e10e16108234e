"""`baseline`: turn a run of the pinned versions into the reviewed baseline file (cases/baseline.json).

Nothing else ever writes the baseline: refreshing it is this command, run on purpose, then reviewed
with `git diff`. It refuses runs that cannot serve as a reference: interrupted, with items that
errored or crashed, or made with framework versions other than the pins in pyproject.toml (its suite extra)
(--force overrides, e.g. to keep a baseline of another release for a side-by-side compare).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from packaging.version import InvalidVersion, Version

from conformance.release import baseline as baselines
from conformance.release import comparison
from conformance.release.pins import pins
from conformance.results.storage import atomic_write_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("baseline", help="write the baseline file from a run of the pinned versions",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder, e.g. reports/latest")
    parser.add_argument("--write", metavar="PATH",
                        help="write the baseline here (e.g. cases/baseline.json); without it, print it")
    parser.add_argument("--project", default="pyproject.toml",
                        help="where the pins are read from, its suite extra (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="write even if the run is not a clean pinned run")
    parser.set_defaults(func=run)


def problems(data: dict, pinned: dict[str, str]) -> list[str]:
    """Why this run should not become the baseline (empty when it may)."""
    found = []
    if not data["source"].get("complete"):
        found.append("the run was interrupted (summary marks it incomplete)")
    broken = [n for n, item in data["items"].items() if item.get("outcome") in ("error", "crashed")]
    found += [f"item errored: {n}" for n in broken]
    for name, version in data["source"]["versions"].items():
        want = pinned.get(name)
        try:
            off = want is not None and (version is None or Version(version).public != Version(want).public)
        except InvalidVersion:
            off = version != want
        if off:
            found.append(f"{name} {version} is not the pinned {name}=={want}")
    return found


def run(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        data = baselines.load(args.run)
    except baselines.BaselineError as exc:
        print(f"baseline: {exc}", file=sys.stderr)
        return 2
    project = Path(args.project)
    pinned = pins(project) if project.exists() else {}
    found = problems(data, pinned)
    if found and not args.force:
        print(f"baseline: refused: {args.run} is not a clean run of the pinned versions:", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        print("run the suite with the pinned versions (python -m conformance run), or pass --force", file=sys.stderr)
        return 3
    text = json.dumps(data, indent=1) + "\n"
    if not args.write:
        sys.stdout.write(text)
        return 0
    target = Path(args.write)
    if target.exists():
        try:
            old = baselines.load(target)
            counts = comparison.compare(old, data).label_counts()
            print("against the previous baseline: " + ", ".join(f"{n} {label}" for label, n in counts.items()))
        except baselines.BaselineError as exc:
            print(f"previous baseline unreadable ({exc}); replacing it", file=sys.stderr)
    atomic_write_text(target, text)
    v = data["source"]["versions"]
    print(f"wrote {target}: {len(data['items'])} items from run {data['source']['run_id']} "
          f"(torch {v['torch']}, mindspore {v['mindspore']}); review it with git diff before committing")
    return 0
