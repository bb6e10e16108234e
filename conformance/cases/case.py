"""Typed cases: what one YAML entry asks for, after validation and matrix expansion.

Everything downstream (adapters, oracles, runner, comparator, report) reads these frozen dataclasses
and never the raw YAML, so a case means the same thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DTYPES = ("float16", "float32", "float64")
DEVICES = ("cpu", "gpu")
QUANTITIES = ("params", "state", "loss")

# Neutral hyper-parameter defaults (the AdaMax paper's, which torch also uses). `defaults: native`
# replaces them with each framework's own defaults instead.
NEUTRAL_DEFAULTS: dict[str, Any] = {"lr": 0.002, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


@dataclass(frozen=True)
class Bound:
    """Agreement bound for one quantity: an element agrees when abs <= atol + rtol*|ref|, or ulp <= max ULP.

    Either test suffices, because ULP distance explodes where a value crosses zero while abs/rel stay
    meaningful there, and abs/rel are blind to the dtype where ULP is exact.
    """

    atol: float = 0.0
    rtol: float = 0.0
    ulp: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "ulp": self.ulp}


@dataclass(frozen=True)
class Tolerance:
    params: Bound
    state: Bound
    loss: Bound

    def for_quantity(self, quantity: str) -> Bound:
        return getattr(self, quantity)

    def as_dict(self) -> dict[str, Any]:
        return {q: self.for_quantity(q).as_dict() for q in QUANTITIES}


@dataclass(frozen=True)
class ModelSpec:
    """A small architecture described neutrally; every adapter builds the same one. Kind `trace`: the
    parameters of a recorded torch model (conformance/traces), no layers: its gradients are replayed."""

    kind: str  # linear | mlp | layernorm_mlp | transformer | trace
    sizes: tuple[int, ...]  # linear: (in, out); mlp: (in, hidden..., out); transformer: (in, width, out); trace: ()
    activation: str = "relu"
    init_seed: int = 0
    init_scale: float | None = None  # None: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), as both frameworks do
    names: tuple[str, ...] | None = None  # optional layer names, e.g. ("gamma_proj", "norm", "head"); trace:
                                          # the parameters' torch names
    tokens: int = 8  # transformer: the input is read as `tokens` tokens of in/tokens features each
    shapes: tuple[tuple[int, ...], ...] = ()  # trace: each parameter's shape
    modules: tuple[str, ...] = ()  # trace: the torch module class owning each parameter (LayerNorm, ...)


@dataclass(frozen=True)
class DataSpec:
    """Generated inputs and targets (a seeded distribution), or a real dataset that a package ships
    (`dataset`: engine/datasets.py DATASETS): then `batch` samples of its training split per step, in
    an order shuffled by `seed` each epoch, and the held-out split scores the final accuracy."""

    batch: int = 4
    seed: int = 1
    distribution: str = "normal"  # normal | uniform
    resample: bool = False  # draw a new batch every step instead of reusing one
    dataset: str | None = None  # a name of engine/datasets.py DATASETS


@dataclass(frozen=True)
class GradientSpec:
    """`autograd`: each framework differentiates its own loss. `replay`: one sequence fed to both.

    Replay patterns (generated source): `zero_fraction` zeroes a seeded share of elements each step;
    `spikes` replace the scale at given steps (a spike after quiet steps); `nonfinite` writes NaN/Inf
    into element 0 of every tensor at given steps; `missing` names parameters that never get a
    gradient (frozen/unused); `prescale` multiplies one framework's copy (loss scaling, negation);
    `sign_flip` negates every even step (with `constant`, gradients alternate +s, -s: m cancels).
    """

    mode: str = "autograd"  # autograd | replay
    source: str = "generated"  # replay only: generated | trace | <framework name>
    trace: str | None = None  # source trace: the trace folder (resolved against the case file's folder)
    seed: int = 2
    distribution: str = "normal"  # normal | uniform | constant | zeros
    scale: float = 1.0
    zero_fraction: float = 0.0
    spikes: tuple[tuple[int, float], ...] = ()  # (step, scale)
    nonfinite: tuple[tuple[int, float], ...] = ()  # (step, nan | inf | -inf)
    missing: tuple[str, ...] = ()  # neutral parameter names without a gradient
    missing_until: int | None = None  # the last step they miss it (None: every step)
    prescale: tuple[tuple[str, float], ...] = ()  # (framework, factor)
    sign_flip: bool = False  # negate every even step's gradient (an alternating sequence)

    def factor(self, framework: str) -> float:
        return dict(self.prescale).get(framework, 1.0)


@dataclass(frozen=True)
class OptimizerSpec:
    defaults: str = "neutral"  # neutral | native
    hparams: dict[str, Any] = field(default_factory=dict)  # neutral keys given in the case; lr may be a list
    schedule: dict[str, Any] | None = None  # {kind: cosine, max_lr, min_lr, period}
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)  # framework name -> native-only options
    # parameter groups: each {"params": (neutral names...), and the neutral keys it sets (lr, betas, eps,
    # weight_decay)}; every parameter in one group. Empty: one group, as the hyper-parameters say.
    groups: tuple[dict[str, Any], ...] = ()

    def neutral(self) -> dict[str, Any]:
        """Hyper-parameters for a framework that takes neutral defaults: given keys over paper defaults."""
        if self.defaults == "native":
            return dict(self.hparams)
        return {**NEUTRAL_DEFAULTS, **self.hparams}


@dataclass(frozen=True)
class ResumeSpec:
    """`resume: {steps, from}`: `source` trains `steps` steps alone; every compared framework then starts
    from its parameters and its optimizer state, converted to its own layout (engine/resume.py)."""

    steps: int
    source: str  # the framework that trains the first steps (`from:` in the YAML)


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    file: str
    line: int
    model: ModelSpec
    loss: str  # l1 | mse | cross_entropy (a dataset's one-hot labels)
    data: DataSpec
    gradients: GradientSpec
    optimizer: OptimizerSpec
    steps: int
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    tolerance: Tolerance
    oracle_tolerance: Tolerance
    expect: str  # conform | diverge | error: the first primary pair's (frameworks[0]~frameworks[1])
    reason: str | None
    frameworks: tuple[str, ...]  # the first is compared with each of the others (primary pairs)
    oracle_expect: dict[str, str]  # framework -> conform | diverge (its formula check), default conform
    error_contains: str | None  # expect: error: text the framework's message must contain
    source_text: str  # the YAML entry as written, for reports and failure messages
    oracle_stride: str | int = "auto"  # oracle pairs every k-th step; auto: every step for small models
    causes: tuple[str, ...] = ()  # ids of cases/causes.yaml the divergence is declared to come from
    # framework -> expectation of the primary pair frameworks[0]~framework, where `expect:` was a mapping
    expect_pairs: dict[str, str] = field(default_factory=dict)
    resume: ResumeSpec | None = None  # start the compared steps from a state another framework trained
    rerun: str | None = None  # the command that reruns this case when `pytest <node id>` cannot (a generated file)

    @property
    def first_step(self) -> int:
        """The first compared step: 1, or after a resume the step after the ones trained alone."""
        return self.resume.steps + 1 if self.resume else 1

    @property
    def last_step(self) -> int:
        """The last compared step: `steps` compared steps follow the resumed ones."""
        return self.first_step + self.steps - 1

    def expect_for(self, framework: str) -> str:
        """What the primary pair frameworks[0]~framework should observe."""
        return self.expect_pairs.get(framework, self.expect)


@dataclass(frozen=True)
class Item:
    """One runnable unit: a case on one device in one dtype."""

    case: Case
    device: str
    dtype: str

    @property
    def param_id(self) -> str:
        return f"{self.device}-{self.dtype}"

    @property
    def name(self) -> str:
        return f"{self.case.id}[{self.param_id}]"

    @property
    def nodeid(self) -> str:
        return f"{self.case.file}::{self.name}"

    @property
    def slug(self) -> str:
        """File-system-safe name, used for the per-item JSONL file.

        Injective for every id the schema allows ([A-Za-z0-9_.=+-], no separator), so two items never
        share a file; any other character (never reaching here) would still be replaced.
        """
        return "".join(c if (c.isascii() and c.isalnum()) or c in "-_.=+" else "_"
                       for c in f"{self.case.id}__{self.param_id}")


@dataclass(frozen=True)
class ProbeCase:
    """An interface item: build each framework's optimizer on an unusual input and record whether it
    accepts it or raises (which error, which message). Behaviour, not numbers."""

    id: str
    description: str
    file: str
    line: int
    probe: dict[str, Any]  # hparams (neutral), param {shape, dtype}, empty_params, lr_as_tensor
    behaviour: dict[str, Any]  # framework -> "accepts" | {"raises": type name, "contains": text}
    reason: str | None
    frameworks: tuple[str, ...]
    source_text: str
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    causes: tuple[str, ...] = ()  # ids of cases/causes.yaml a difference in behaviour comes from

    @property
    def expect(self) -> str:
        kinds = {_behaviour_kind(b) for b in self.behaviour.values()}
        return "conform" if len(kinds) == 1 else "diverge"


@dataclass(frozen=True)
class ApiCase:
    """An interface item: the installed optimizer constructor's parameter names and defaults must be
    the ones the suite's mapping assumes; a rename or a new default fails with what changed."""

    id: str
    description: str
    file: str
    line: int
    framework: str
    cls: str
    params: dict[str, str | None]  # native name -> repr of the default (None: required)
    reason: str | None
    source_text: str
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    expect: str = "conform"
    causes: tuple[str, ...] = ()  # ids of cases/causes.yaml the documented difference comes from


def _behaviour_kind(behaviour: Any) -> str:
    return "accepts" if behaviour == "accepts" else f"raises {behaviour.get('raises')}"
