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

A torch~mindspore divergence is labelled by its attribution (conformance/attribution.py: the smallest
set of formula and hyper-parameter switches that reproduces one framework's step with the other's
formula, mapped to the ids of cases/causes.yaml), not by features of the input; a found case declares
those ids as its `cause:` (`unknown` when nothing known explains it). Since the oracles model each
framework's precision, any departure of a framework from its own oracle is `unexplained`, except an
overflow (the exact result beyond the dtype's range).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings, target
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.internal.conjecture import engine as hypothesis_engine

from . import causes as causes_registry
from . import loader, models, runner
from .case import Case, Item
from .errors import CaseError

PRIMARY = "torch~mindspore"
ORACLE_PAIRS = ("torch~oracle", "mindspore~oracle")
SCORE_CAP = 1e30  # ratios are clipped here so log10 stays finite (inf means NaN-vs-number)
# Layer names: MindSpore's ungrouped weight decay skips parameters whose name holds 'beta' or 'gamma'
# ('alphabet' holds 'beta' by accident).
NAME_POOL = ("dense", "head", "proj", "gamma_proj", "beta_head", "alphabet", "norm", "embed")
# sampled_from shrinks toward the first value: the first is always the ordinary one.
LRS = (1e-3, 1e-1, 1.0, 1e-5, 10.0, 1e-8)
BETA1S = (0.9, 0.5, 0.99, 0.999, 0.9999, 0.99999, 1e-8, 0.0)
BETA2S = (0.999, 0.9, 0.5, 0.99, 0.9999, 0.999999, 1e-8, 0.0)
EPSS = (1e-8, 1e-16, 1e-30, 1e-12, 1e-6, 1e-3, 0.1, 1.0, 10.0)
DECAYS = (0.0, 1e-2, 0.1, 1.0, 1e-4)
SCALES = (1.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 1e2, 1e4, 1e6)
ZERO_FRACTIONS = (0.0, 0.5, 0.9, 0.99)
DTYPES = ("float32", "float16", "float64")


@dataclass(frozen=True)
class Budget:
    """How much a search may do: `examples` (deterministic) or `seconds` (wall clock, not deterministic).

    Examples count every run of the frameworks, shrinking included, so the same seed and budget give
    the same findings."""

    examples: int | None = None
    seconds: float | None = None

    @staticmethod
    def parse(text: str) -> "Budget":
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

def _layer_count(model: dict) -> int:
    sizes = [model["in"], model["out"]] if model["kind"] == "linear" else model["sizes"]
    return len(sizes) - 1 + (len(sizes) - 2 if model["kind"] == "layernorm_mlp" else 0)


@st.composite
def models_(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(("linear", "mlp", "layernorm_mlp")))
    size = st.integers(1, 4)
    if kind == "linear":
        model: dict[str, Any] = {"kind": "linear", "in": draw(size), "out": draw(size)}
    else:
        model = {"kind": kind, "sizes": [draw(size), draw(st.integers(1, 6)), draw(size)], "activation": "tanh"}
    if draw(st.booleans()):
        n = _layer_count(model)
        model["names"] = draw(st.lists(st.sampled_from(NAME_POOL), min_size=n, max_size=n, unique=True))
    model["init_seed"] = draw(st.integers(0, 3))
    return model


def _unit_interval(special: tuple[float, ...]) -> st.SearchStrategy[float]:
    """Usual values first (shrink targets), then any float in [0, 1): values near 0 and near 1."""
    return st.one_of(st.sampled_from(special), st.floats(0.0, 1.0, exclude_max=True))


@st.composite
def entries(draw: st.DrawFn, dtypes: tuple[str, ...] = DTYPES, max_steps: int = 100) -> dict:
    """One case entry (replay mode) as the YAML would hold it."""
    steps = draw(st.integers(1, max_steps))
    grads: dict[str, Any] = {
        "mode": "replay",
        "seed": draw(st.integers(0, 1000)),
        "distribution": draw(st.sampled_from(("normal", "uniform", "constant", "zeros"))),
        "scale": draw(st.sampled_from(SCALES)),
        "zero_fraction": draw(st.sampled_from(ZERO_FRACTIONS)),
        "sign_flip": draw(st.booleans()),
    }
    if steps > 1 and draw(st.booleans()):  # a single spike after quiet steps
        grads["spikes"] = [{"step": draw(st.integers(2, steps)), "scale": draw(st.sampled_from(SCALES))}]
    entry = {
        "id": "search",
        "model": draw(models_()),
        "gradients": grads,
        "optimizer": {"lr": draw(st.sampled_from(LRS)),
                      "betas": [draw(_unit_interval(BETA1S)), draw(_unit_interval(BETA2S))],
                      "eps": draw(st.sampled_from(EPSS)), "weight_decay": draw(st.sampled_from(DECAYS))},
        "steps": steps,
        "dtype": draw(st.sampled_from(dtypes)),
        "devices": ["cpu"],
    }
    entry["tolerance"] = tolerance(entry)
    return entry


def tolerance(entry: dict) -> dict:
    """torch~mindspore bound of a search case: 64 ULP of its dtype, or an absolute floor of 64 eps at
    the magnitude of the terms (parameters ~1 + lr, state ~ the largest gradient or decay term) where
    values cancel toward 0.

    Loose enough that differing operation order alone (rounding accumulated over <= 100 steps) passes;
    every known cause exceeds it by orders of magnitude."""
    eps = float(np.finfo(entry["dtype"]).eps)
    grads, opt = entry["gradients"], entry["optimizer"]
    largest = max([grads["scale"], *(s["scale"] for s in grads.get("spikes", ()))])
    params = 1.0 + opt["lr"]  # |p| ~ 1 plus updates of size ~lr: rounding of the larger term
    return {"params": {"ulp": 64, "atol": float(f"{64 * eps * params:.3g}")},
            "state": {"ulp": 64, "atol": float(f"{64 * eps * max(largest, opt['weight_decay'] * params):.3g}")}}


# --------------------------------------------------------------------------------------- running

def case_text(entry: dict, header: str = "") -> str:
    return header + yaml.safe_dump({"cases": [entry]}, sort_keys=False, default_flow_style=None, width=110)


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


def pair_ratio(pair: dict) -> float:
    """How far a pair went past its bound (1 = at the bound), from its running maxima.

    Per quantity min(max abs / atol, max rel / rtol, max ulp / ulp); the maxima may come from different
    elements, so this over-estimates; it is then clamped to agree with the pair's verdict. An oracle
    pair's atol is relative to operand magnitude, which the maxima do not carry: ULP decides there."""
    ratio = 0.0
    oracle = pair["role"] == "oracle"
    for quantity, got in pair["max"].items():
        if not got:
            continue
        bound = pair["tolerance"][quantity]
        parts = [got["ulp"] / bound["ulp"] if bound["ulp"] else math.inf]
        if bound["atol"] and not oracle:
            parts.append(got["abs"] / bound["atol"])
        if bound["rtol"]:
            parts.append(got["rel"] / bound["rtol"])
        ratio = max(ratio, min(parts))
    ratio = max(ratio, 1.0) if pair["observed"] in DEPARTED else min(ratio, 1.0)
    return min(ratio, SCORE_CAP)


DEPARTED = ("diverge", "nonfinite")  # a pair outside its bound, by a finite distance or by NaN/Inf on one side


def log_score(ratio: float) -> float:
    return math.log10(min(max(ratio, 1e-30), SCORE_CAP))


# ------------------------------------------------------------------------------- known causes

# An oracle departure the harness itself explains: the exact float64 result lies beyond the dtype's range
# and the framework's value is infinite (an overflow, not a difference between implementations).
OVERFLOW = "result-overflows-dtype"


def _primary_cause(result: dict) -> str:
    """The attributed causes of a torch~mindspore divergence (cases/causes.yaml ids, joined by '+'), or
    `unexplained`: found by computation (conformance/attribution.py), not guessed from the input."""
    attribution = result.get("attribution") or {}
    found = sorted(attribution.get("causes") or [])
    return "+".join(found) if found and attribution.get("explained") else "unexplained"


def _overflow(pair: dict, dtype: str) -> bool:
    """The pair's first departure is an infinity where the float64 value lies beyond the dtype's range."""
    first = pair.get("first_divergence") or {}
    a, b = first.get("a"), first.get("b")
    return a is not None and b is not None and math.isinf(a) and abs(b) >= float(np.finfo(dtype).max)


@dataclass(frozen=True)
class Category:
    check: str  # torch~mindspore | torch~oracle | mindspore~oracle | error
    dtype: str
    cause: str  # a known cause, `unexplained`, or the framework error's type

    @property
    def key(self) -> str:
        return f"{self.check}|{self.dtype}|{self.cause}"

    @property
    def explained(self) -> bool:
        return self.cause != "unexplained"

    @property
    def cause_ids(self) -> list[str]:
        """The registry ids this finding is attributed to (for the found case's `cause:`)."""
        known = causes_registry.load()
        return [c for c in self.cause.split("+") if c in known]


def categories(entry: dict, result: dict) -> list[Category]:
    """Every finding this run holds, most important first: errors, oracle departures, then the primary."""
    dtype = entry["dtype"]
    if result["observed"] == "error":
        error = result.get("error") or {}
        if error.get("step") == 0:  # refused at construction: which inputs each accepts is known ground
            return [Category("error", "any", "input_validation")]
        return [Category("error", dtype, f"{error.get('framework', '?')}:{error.get('type', '?')}")]
    out = []
    for label in ORACLE_PAIRS:  # the oracles model each framework's precision: a departure is unexplained
        pair = result["pairs"].get(label)
        if pair and pair["observed"] in DEPARTED:
            out.append(Category(label, dtype, OVERFLOW if _overflow(pair, dtype) else "unexplained"))
    out.sort(key=lambda c: c.cause != "unexplained")
    primary = result["pairs"].get(PRIMARY)
    if primary and primary["observed"] in DEPARTED:
        out.append(Category(PRIMARY, dtype, _primary_cause(result)))
    return out


def scores(result: dict) -> dict[str, float]:
    """log10 of each check's ratio to its bound (0 = at the bound, > 0 = past it)."""
    return {label: log_score(pair_ratio(pair)) for label, pair in result.get("pairs", {}).items()}


# --------------------------------------------------------------------------------------- search

@dataclass
class Finding:
    category: Category
    entry: dict
    result: dict
    scores: dict[str, float]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.entry)


def fingerprint(entry: dict) -> str:
    """Stable over runs and machines: the canonical JSON of the input, without its id."""
    data = {k: v for k, v in entry.items() if k not in ("id", "description", "reason", "expect", "oracle_expect",
                                                        "tolerance", "cause")}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


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
def _shrink_without_clock(budget: "Budget") -> Iterator[None]:
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


def _fmt_scores(got: dict[str, float]) -> str:
    return ", ".join(f"{k} 1e{v:.1f}" for k, v in got.items())


def finding_record(finding: Finding) -> dict[str, Any]:
    cat = finding.category
    return {"category": cat.key, "check": cat.check, "dtype": cat.dtype, "cause": cat.cause,
            "explained": cat.explained, "fingerprint": finding.fingerprint, "scores": finding.scores,
            "observed": {label: pair["observed"] for label, pair in finding.result.get("pairs", {}).items()},
            "outcome": finding.result["observed"], "entry": finding.entry, "file": None}


# ----------------------------------------------------------------------------------- found cases

def _reason(finding: Finding) -> str:
    cat = finding.category
    if cat.check == "error":
        what = f"{cat.cause.split(':')[0]} raised {cat.cause.split(':')[-1]}"
    elif cat.check == PRIMARY:
        what = "torch and MindSpore diverge"
    else:
        what = f"{cat.check.split('~')[0]} departs from its own formula's float64 oracle"
    known = causes_registry.load()
    if cat.cause_ids:
        why = "attributed: " + "; ".join(f"{c} ({known[c].title})" for c in cat.cause_ids)
    elif cat.cause == OVERFLOW:
        why = "the exact result exceeds the dtype's range, the framework's is infinite"
    elif cat.cause == "unexplained":
        why = "UNEXPLAINED: no known cause reproduces it"
    else:
        why = f"error {cat.cause}"
    return f"FOUND BY SEARCH, needs review: {what} in {cat.dtype} ({why})."


def case_entry(finding: Finding) -> dict:
    """The finding as a ready case: expectations as observed, so it passes until behaviour changes; its
    `cause:` the attributed causes (`unknown` where nothing known explains it)."""
    entry = dict(finding.entry)
    result = finding.result
    cat = finding.category
    entry["id"] = f"found_{cat.check.replace('~', '_')}_{cat.dtype}_{finding.fingerprint}"
    entry["description"] = (f"Found by the divergence search ({cat.key}); scores (log10 of ratio to bound): "
                            f"{_fmt_scores(finding.scores)}.")
    entry["expect"] = "error" if result["observed"] == "error" else result["observed"]
    if entry["expect"] != "conform":
        primary = _primary_cause(result) if entry["expect"] != "error" else cat.cause
        ids = [c for c in primary.split("+") if c in causes_registry.load()]
        entry["cause"] = ids or causes_registry.UNKNOWN
    entry["reason"] = _reason(finding)
    oracle = {label.split("~")[0]: result["pairs"][label]["observed"] for label in ORACLE_PAIRS
              if result.get("pairs", {}).get(label, {}).get("observed") in DEPARTED}
    if oracle and entry["expect"] != "error":
        entry["oracle_expect"] = oracle
    return entry


def write_case(finding: Finding, found_dir: Path, command: str, workdir: Path) -> tuple[Path, str]:
    """Write the finding as found_dir/<id>.yaml unless a case of that fingerprint exists; the case is
    re-run first and must pass. Returns (path, 'written' | 'exists' | 'does not reproduce: ...')."""
    entry = case_entry(finding)
    path = found_dir / f"{entry['id']}.yaml"
    if path.exists():
        return path, "exists"  # never overwrite: an existing file may have been reviewed and edited
    header = (f"# FOUND BY SEARCH — needs review (not reviewed). Finding: {finding.category.key}\n"
              f"# Reproduce the search: {command}\n"
              f"# Fingerprint of the shrunk input: {finding.fingerprint}\n")
    text = case_text(entry, header)
    check = workdir / "check.yaml"
    check.write_text(text, encoding="utf-8")
    (case,) = loader.load_file(check)
    with np.errstate(all="ignore"):
        outcome = runner.run_item(Item(case, "cpu", entry["dtype"]), workdir)
    if outcome["outcome"] != "passed":
        return path, f"does not reproduce: {outcome.get('message', outcome['outcome'])}"
    found_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, "written"
