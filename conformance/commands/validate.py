"""`validate`: a candidate framework release against the pinned versions, both run here, like with like.

Each side runs in a virtualenv of its own (conformance/release/virtualenvs.py: `.tox/releases/torch<T>-mindspore<M>/`,
built once), so the comparison that decides the exit status sets two fresh runs on this machine side by side:
on one machine the suite is bitwise deterministic, so every difference it lists comes from the releases.
A side's earlier run is reused when its fingerprint (installed packages, suite files, machine, settings)
is unchanged. The candidate run's report gets a "Changes since torch <T> + MindSpore <M>" section.

Then the pinned run here is set against the committed cross-machine reference, cases/baseline.json, under
the environment rule (what differs between the machines: ignored where it cannot change bits, named where it
can): whether this machine reproduces the reference. That part informs; it does not change the exit status.

Exit status: 0 the candidate changed nothing, 1 it changed an item or the optimizer API, 2 no comparison
(an environment could not be built, a run failed, or comparing would mislead; the message says what to do).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.release import baseline as baselines
from conformance.release import comparison, virtualenvs
from conformance.release.comparison import refused
from conformance.release.pins import pinned_release
from conformance.report.changes import into_report
from conformance.results.storage import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="run the pinned versions and a candidate release here and compare them",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mindspore", help="candidate MindSpore release, e.g. 2.9.0 (default: the pin)")
    parser.add_argument("--torch", help="candidate torch release (default: the pin; others are multi-GB CUDA builds)")
    parser.add_argument("--project", default="pyproject.toml", help="where the pins are read (default: %(default)s)")
    parser.add_argument("--baseline", default="cases/baseline.json",
                        help="the committed cross-machine reference (default: %(default)s)")
    parser.add_argument("--envs-dir", default=str(virtualenvs.ENVS_DIR),
                        help="where the virtualenvs go (default: %(default)s)")
    parser.add_argument("--reports-dir", default="reports/releases",
                        help="where the runs go, one folder per release pair (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="run both sides again even if a stored run matches")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the unchanged items")
    parser.set_defaults(func=validate, accepts_extra=True)


def prepared_run(pair: virtualenvs.Release, args: argparse.Namespace, extra: list[str]) -> Path:
    root = Path.cwd()
    python = virtualenvs.ensure_env(pair, root, Path(args.envs_dir))
    return virtualenvs.run_suite(python, pair, root, Path(args.reports_dir), extra, reuse=not args.fresh)


def label(pair: virtualenvs.Release) -> str:
    return f"torch {pair.torch} + MindSpore {pair.mindspore}"


def against_baseline(baseline: Path, pinned_run: Path) -> list[str]:
    """The pinned run here vs the committed baseline, summarised (this machine reproduces it, or not)."""
    head = f"this machine's pinned run vs the committed reference {baseline} (informs; not the exit status):"
    try:
        result = comparison.compare(baselines.load(baseline), baselines.load(pinned_run))
    except baselines.BaselineError as exc:
        return [head, f"  not compared: {exc}"]
    if result.environment.refusals:
        return [head, *(f"  not compared: {line}" for line in result.environment.refusals)]
    lines = [f"  {line}" for line in comparison.render(result, names=("reference", "here")).splitlines()]
    return [head, *lines]


def validate(args: argparse.Namespace, extra: list[str]) -> int:
    try:
        pinned = pinned_release(Path(args.project))
        candidate = virtualenvs.Release(args.torch or pinned.torch, args.mindspore or pinned.mindspore)
        if candidate == pinned:
            print(f"validate: the candidate is the pinned pair ({label(pinned)}): this checks that two runs agree")
        reference_run = prepared_run(pinned, args, extra)
        same = candidate == pinned and not args.fresh
        candidate_run = reference_run if same else prepared_run(candidate, args, extra)
        old, new = baselines.load(reference_run), baselines.load(candidate_run)
    except (virtualenvs.ReleaseEnvError, baselines.BaselineError) as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 2
    result = comparison.compare(old, new)
    if refused(result, False, "validate"):
        return 2
    print(f"\n== {label(candidate)} (candidate) vs {label(pinned)} (pinned), both run on this machine ==")
    print(comparison.render(result, verbose=args.verbose, names=("pinned", "candidate")))
    write_json(candidate_run / "compare.json", result.as_dict())
    page = into_report(candidate_run, f"{label(pinned)} (pinned, this machine)", result.as_dict())
    print(f"report: {page.resolve()}")
    print("\n" + "\n".join(against_baseline(Path(args.baseline), reference_run)))
    print(f"\nvalidate: {label(candidate)} " + ("CHANGED something (exit 1)" if result.changed
                                               else "changed nothing (exit 0)"))
    return 1 if result.changed else 0
