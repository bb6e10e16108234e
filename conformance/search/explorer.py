"""Divergence search: Hypothesis draws optimizer inputs, the real frameworks run them, findings become cases.

Every draw is a YAML case entry (replay mode: the optimizer alone) that goes through the real loader and
runner, so whatever the search finds is already a valid case. Each run is scored twice:
- primary: torch~mindspore divergence normalised by the case's tolerance (maps the known difference);
- oracle:  each framework against the float64 oracle of its own formula, normalised by the oracle bound
  (a departure is a candidate framework bug or undocumented behaviour).
Both scores guide Hypothesis with `target`. A diverging check is a finding, keyed by a category
(check | dtype | known cause, or `unexplained`); each category is its own exception type, so Hypothesis
shrinks every category separately (report_multiple_bugs). Hypothesis stops generating soon after its first
failure, so the search runs rounds: a round ignores the categories earlier rounds found, until the budget
is spent. The loop only restarts Hypothesis; drawing, targeting and shrinking are Hypothesis's.

A torch~mindspore divergence is labelled by its attribution (conformance/numerics/attribution.py: the smallest
set of formula and hyper-parameter switches that reproduces one framework's step with the other's
formula, mapped to the ids of cases/causes.yaml), not by features of the input; a found case declares
those ids as its `cause:` (`unknown` when nothing known explains it). Since the oracles model each
framework's precision, any departure of a framework from its own oracle is `unexplained`, except an
overflow (the exact result beyond the dtype's range).
"""
from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import (
    HealthCheck,
    Phase,
    Verbosity,
    given,
    reject,
    seed,
    settings,
    target,
)
from hypothesis.errors import Unsatisfiable
from hypothesis.internal.conjecture import engine as hypothesis_engine

from conformance.cases import loader
from conformance.cases.case import Case, Item
from conformance.engine import runner
from conformance.errors import CaseError
from conformance.search.found_cases import (
    Finding,
    _fmt_scores,
    case_text,
    finding_record,
    fingerprint,
)
from conformance.search.scoring import (
    ORACLE_PAIRS,
    PRIMARY,
    Category,
    categories,
    scores,
)
from conformance.search.strategies import DTYPES, entries


@dataclass(frozen=True)
class Budget:
    """How much a search may do: `examples` (deterministic) or `seconds` (wall clock, not deterministic).

    Examples count every run of the frameworks, shrinking included, so the same seed and budget give
    the same findings."""

    examples: int | None = None
    seconds: float | None = None

    @staticmethod
    def parse(text: str) -> Budget:
        """'300' -> 300 examples; '90s' / '20m' -> wall-clock seconds."""
        text = text.strip().lower()
        try:
            if text.endswith("s"):
                return Budget(seconds=float(text[:-1]))
            if text.endswith("m"):
                return Budget(seconds=60.0 * float(text[:-1]))
            value = int(text)
        except ValueError:
            raise ValueError(f"budget {text!r}: give a number of examples (e.g. 300) or a time "
                             "(e.g. 90s, 20m)") from None
        if value < 1:
            raise ValueError("budget must be at least 1 example")
        return Budget(examples=value)

    def describe(self) -> str:
        return f"{self.examples} examples" if self.examples else f"{self.seconds:g} s (not deterministic)"


# ----------------------------------------------------------------------------------------- drawing


# --------------------------------------------------------------------------------------- running


def load_case(entry: dict, workdir: Path) -> Case:
    """The entry through the real loader (schema, semantic checks): every draw is a valid case."""
    path = workdir / "draw.yaml"
    path.write_text(case_text(entry), encoding="utf-8")
    (case,) = loader.load_file(path)
    if isinstance(case, CaseError):
        raise AssertionError(f"the search drew an invalid case (a bug in conformance/search.py): {case}")
    return case


def run_entry(entry: dict, workdir: Path) -> dict:
    """Summary entry of the draw, run on the CPU by the real runner."""
    case = load_case(entry, workdir)
    with np.errstate(all="ignore"):  # overflow and NaN are data here, judged by the comparator
        return runner.run_item(Item(case, "cpu", entry["dtype"]), workdir)


# ------------------------------------------------------------------------------- known causes


# --------------------------------------------------------------------------------------- search


class FindingRaised(Exception):
    """Raised inside the Hypothesis test for a finding; one subclass per category (distinct bugs)."""

    finding: Finding


@dataclass
class Search:
    seed: int
    budget: Budget
    dtypes: tuple[str, ...] = DTYPES
    max_steps: int = 100
    log: Any = None  # callable(str) for progress lines
    runs: int = 0  # framework runs, replays of an input included
    rounds: int = 0
    found: dict[str, Finding] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)  # label -> highest score seen
    _raised: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)  # distinct inputs run: what an examples budget counts
    _classes: dict[str, type] = field(default_factory=dict)
    _started: float = 0.0

    def spent(self) -> bool:
        if self.budget.examples is not None:
            return len(self._seen) >= self.budget.examples
        return time.monotonic() - self._started >= (self.budget.seconds or 0)

    def _exception(self, category: Category) -> type:
        return self._classes.setdefault(category.key, type(f"Finding[{category.key}]", (FindingRaised,), {}))

    def _check(self, entry: dict, workdir: Path, ignore: set[str]) -> None:
        """The Hypothesis test body: run the draw, target its scores, raise its first new finding."""
        key = fingerprint(entry)
        if self.spent() and key not in self._raised:
            reject()  # out of budget: only replays of findings still run (Hypothesis's final replay)
        self.runs += 1
        self._seen.add(key)
        result = run_entry(entry, workdir)
        got = scores(result)
        for label, value in got.items():
            self.best[label] = max(self.best.get(label, -math.inf), value)
        target(got.get(PRIMARY, -30.0), label="torch~mindspore / tolerance (log10)")
        target(max([got.get(label, -30.0) for label in ORACLE_PAIRS]), label="framework / own oracle (log10)")
        new = [c for c in categories(entry, result) if c.key not in ignore]
        if new:
            self._raised.add(key)
            exc = self._exception(new[0])(new[0].key)
            exc.finding = Finding(new[0], entry, result, got)
            raise exc

    def _round(self, workdir: Path, ignore: set[str]) -> list[Finding]:
        remaining = self.budget.examples - len(self._seen) if self.budget.examples is not None else 10 ** 6

        @seed(self.seed * 1000 + self.rounds)
        @settings(max_examples=max(remaining, 1), database=None, deadline=None, derandomize=False,
                  report_multiple_bugs=True, verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
                  phases=(Phase.generate, Phase.target, Phase.shrink))
        @given(entries(self.dtypes, self.max_steps))
        def test(entry: dict) -> None:
            self._check(entry, workdir, ignore)

        try:
            test()
        except Unsatisfiable:
            return []
        except BaseException as exc:  # noqa: BLE001 - Hypothesis reports each distinct finding
            leaves = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
            if not all(isinstance(e, FindingRaised) for e in leaves):
                raise
            return [e.finding for e in leaves]
        return []

    def run(self) -> dict[str, Any]:
        """Rounds of Hypothesis until the budget is spent; returns the results (findings, figures)."""
        self._started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="conformance-search-") as tmp, _shrink_without_clock(self.budget):
            while not self.spent():
                before = len(self._seen)
                found = self._round(Path(tmp), set(self.found))
                self.rounds += 1
                for finding in found:
                    self.found[finding.category.key] = finding
                    self._say(f"round {self.rounds}: {finding.category.key} "
                              f"(scores {_fmt_scores(finding.scores)}; {finding.entry['steps']} steps)")
                if not found and len(self._seen) == before:
                    break  # nothing ran: Hypothesis has nothing left to draw
        return self.results()

    def _say(self, line: str) -> None:
        if self.log:
            self.log(line)

    def results(self) -> dict[str, Any]:
        return {"seed": self.seed, "budget": self.budget.describe(), "inputs": len(self._seen), "runs": self.runs,
                "rounds": self.rounds,
                "seconds": round(time.monotonic() - self._started, 1), "dtypes": list(self.dtypes),
                "max_steps": self.max_steps, "best_scores": self.best,
                "findings": [finding_record(f) for f in self.found.values()]}


@contextlib.contextmanager
def _shrink_without_clock(budget: Budget) -> Iterator[None]:
    """With an examples budget, Hypothesis's shrinking stops on the budget alone, not on its wall clock.

    Hypothesis ends shrinking after MAX_SHRINKING_SECONDS (300 s, an engine constant, not a setting); with
    the real frameworks under load (each input takes seconds) a shrink hit it and the same seed gave
    another shrunk case. The examples budget already bounds shrinking (it counts distinct inputs run), so
    the clock is lifted for the search's duration; a wall-clock budget keeps it."""
    engine = hypothesis_engine if budget.examples is not None else None
    saved = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if saved is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = 10 ** 9
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


# ----------------------------------------------------------------------------------- found cases


