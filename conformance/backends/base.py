"""The one small interface every framework adapter implements.

Values cross it as NumPy arrays under neutral names and in model order: parameters, and optimizer
state as `m` (first moment: torch exp_avg, MindSpore moment1) and `u` (infinity norm: torch exp_inf,
MindSpore moment2). Hyper-parameters cross it neutrally (lr, betas, eps, weight_decay) plus the
framework's own extras; each adapter alone knows its native names.
"""
from __future__ import annotations

import abc
import gc
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from conformance.cases.case import Item
from conformance.numerics.oracles import Formula, oracle


@dataclass(frozen=True)
class SessionSpec:
    """What an adapter needs to build one model + optimizer; derived from an Item by the runner."""

    item: Item
    device: str  # cpu | gpu: may differ from item.device for the CPU twin of a GPU run
    init: dict[str, np.ndarray]  # neutral name -> float64 initial value, model order
    hparams: dict[str, Any]  # neutral keys the case fixes; the rest are the framework's (native) defaults


class Session(abc.ABC):
    """One model and its optimizer in one framework, built from a SessionSpec by Backend.open. The runner
    calls only these methods; values cross as NumPy arrays, in model order."""

    native_names: list[str]  # native parameter names, model order (set by the constructor)

    @abc.abstractmethod
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Forward + backward on the framework's own model; keeps the native gradients for `step(None)`."""

    @abc.abstractmethod
    def step(self, grads: list[np.ndarray | None] | None) -> None:
        """One optimizer step, on the given gradients or (None) on those of the last loss_and_grads. A None
        entry is a parameter without a gradient this step (the runner feeds it per Backend.missing_grad)."""

    @abc.abstractmethod
    def lr_used(self) -> float | list[float]:
        """The learning rate the last step used, as the framework holds it (a schedule's value, a float32
        variable's value): the oracles step with it. One value per parameter group where the case has
        groups (`optimizer.groups`), in their order."""

    @abc.abstractmethod
    def params(self) -> list[np.ndarray]:
        """Current parameters, model order. May share the framework's memory (no copy: at 1M parameters
        copies cost as much as the comparison), so valid only until the next step; callers copy what
        they keep."""

    @abc.abstractmethod
    def state(self) -> dict[str, list[np.ndarray]]:
        """{'m': [...], 'u': [...]}, zeros before the first step; shared memory as in params()."""

    @abc.abstractmethod
    def hparams(self) -> dict[str, Any]:
        """Effective hyper-parameters, neutral names, extras that change the formula included; where the
        case has parameter groups, `groups`: each {"params": parameter indices, and its effective lr, betas,
        eps, weight_decay} (numerics/formulas.py per_parameter reads them)."""

    def native_state(self) -> dict[str, Any]:
        """The optimizer state in the framework's own layout (Backend.state_layout), NumPy arrays and plain
        numbers, copied: what conformance.convert_state reads. A case's `resume:` needs it."""
        raise NotImplementedError(f"{type(self).__name__}: exporting the optimizer state is not supported by "
                                  "this implementation (resume: works with torch and mindspore)")

    def load_native_state(self, state: dict[str, Any]) -> None:
        """Load an optimizer state in the framework's own layout (what conformance.convert_state writes),
        before the first step. A case's `resume:` needs it."""
        raise NotImplementedError(f"{type(self).__name__}: loading an optimizer state is not supported by "
                                  "this implementation (resume: works with torch and mindspore)")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs (logits) for inputs `x`, without gradients: after a run on a real dataset the
        runner scores the held-out split with them. A backend whose `losses` include cross_entropy has it."""
        raise NotImplementedError(f"{type(self).__name__} cannot score a held-out split (no predict)")


class Backend(abc.ABC):
    """One AdaMax implementation: everything the engine, the plugin and the reports ask of it.

    A new implementation is a module `conformance/backends/<name>_backend.py` defining `BACKEND`, an
    instance of a subclass of this class, plus its formula's entry in numerics/formulas.py FEATURES (and
    its package pin where it brings a new package). The registry (backends/__init__.py) finds the module
    by its name."""

    name: ClassVar[str]  # the name cases use under `frameworks:` and `optimizer.<name>:`
    # native-only options accepted under `optimizer.<name>:`, each with the JSON Schema of its value
    extra_options: ClassVar[dict[str, dict[str, Any]]] = {}
    # What the implementation does with a parameter that has no gradient this step: "skip" leaves it and
    # its state untouched (torch's `.grad is None`); "zeros": it must be given one, and is fed zeros.
    missing_grad: ClassVar[str] = "zeros"
    # the model kinds (engine/models.py) and losses its sessions build; a case asking for another skips it
    model_kinds: ClassVar[tuple[str, ...]] = ("linear", "mlp", "layernorm_mlp")
    losses: ClassVar[tuple[str, ...]] = ("l1", "mse")
    package: ClassVar[str | None] = None  # the distribution whose version a run records (default: name)
    # whether its sessions build a recorded trace's bare parameters (model kind `trace`, conformance/traces),
    # and apply a case's parameter groups (`optimizer.groups`)
    replays_traces: ClassVar[bool] = False
    takes_groups: ClassVar[bool] = False
    formula_of: ClassVar[str | None] = None  # its FEATURES entry when another's (default: name)
    # the layout of its optimizer state that conformance.convert_state reads and writes ("torch",
    # "mindspore"), or None: its sessions cannot export or load one (no `resume:`)
    state_layout: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.missing_grad not in ("skip", "zeros"):
            raise TypeError(f"{cls.__name__}.missing_grad is {cls.missing_grad!r}: use 'skip' or 'zeros'")

    @property
    def formula(self) -> Formula:
        """The float64 oracle of this implementation's documented update."""
        return oracle(self.formula_of or self.name)

    def distribution(self) -> str:
        """The installed distribution whose version the run records (paddle's is paddlepaddle)."""
        return self.package or self.name

    @abc.abstractmethod
    def unavailable(self, device: str, dtype: str) -> str | None:
        """None if this framework can run here, else the exact reason it cannot (for the skip message)."""

    def unsupported(self, item: Item) -> str | None:
        """None if this adapter can build the item's model and loss, else why not (for the skip message)."""
        case = item.case
        if case.model.kind == "trace":
            if not self.replays_traces:
                return (f"the {self.name} adapter builds only the suite's own models, not a recorded trace's "
                        "parameters (Backend.replays_traces)")
        elif case.model.kind not in self.model_kinds:
            return (f"the {self.name} adapter builds no {case.model.kind} model "
                    f"(it builds {', '.join(self.model_kinds)})")
        if case.loss not in self.losses:
            return f"the {self.name} adapter has no {case.loss} loss (it has {', '.join(self.losses)})"
        if case.optimizer.groups and not self.takes_groups:
            return f"the {self.name} adapter does not map parameter groups (Backend.takes_groups)"
        return None

    @abc.abstractmethod
    def version(self) -> str | None:
        """The installed version, or None where it is not installed."""

    @abc.abstractmethod
    def api(self) -> dict[str, Any]:
        """The installed optimizer's constructor as data, for mapping checks, docs and release compares:
        {"class": dotted name, "params": {native name: {"default": repr or None, "neutral": name or None}}}."""

    @abc.abstractmethod
    def build_info(self) -> dict[str, Any]:
        """How the installed framework was built and how it will run here (version, commit, build flags,
        device targets, thread counts): the environment fingerprint that release compares check."""

    @abc.abstractmethod
    def open(self, spec: SessionSpec) -> Session:
        """A new model and optimizer for one item's side."""

    @abc.abstractmethod
    def probe(self, request: dict[str, Any]) -> None:
        """Build the optimizer on an unusual input and take one step; raise what the framework raises.
        request: hparams (neutral, only those given), param {shape, dtype}, empty_params, lr_as_tensor."""


def param_groups(spec: SessionSpec) -> list[tuple[list[int], dict[str, Any]]]:
    """The case's parameter groups (`optimizer.groups`) as (parameter indices, model order; the neutral
    values the group sets); [] without groups."""
    index = {name: i for i, name in enumerate(spec.init)}
    return [([index[n] for n in group["params"]], {k: v for k, v in group.items() if k != "params"})
            for group in spec.item.case.optimizer.groups]


def lr_at(lr: Any, step: int) -> float:
    """A learning rate at a step (0-based): a number, or a per-step list holding its last value past its end."""
    return float(lr[min(step, len(lr) - 1)]) if isinstance(lr, (list, tuple)) else float(lr)


def import_problem(module: str, load: Callable[[], Any]) -> str | None:
    """None if `load()` imports the framework, else why not, in words for a skip message.

    A framework that is installed but broken (a missing shared library, an ABI mismatch, a failing
    plugin) raises more than ImportError on import; any exception there means "cannot run here", and
    its items are skipped with that reason rather than erroring. Not cached here: each adapter caches.
    """
    try:
        load()
        # The framework's modules live as long as the process: moved out of the cyclic GC's reach, a
        # full collection no longer walks their ~200,000 objects (suite with -n 2: ~1 s faster).
        gc.freeze()
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return f"{module} is not installed in this environment"
        return f"{module} failed to import: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any import failure is the reason to report
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"{module} failed to import: {type(exc).__name__}: {first}"
    return None


def doc_notices(doc: str | None) -> list[str]:
    """The `.. warning::` blocks of a reStructuredText docstring, each as one line: how frameworks announce
    changes to come (mindspore.nn.AdaMax since 2.9.0: the learning_rate -> lr rename)."""
    notices, lines = [], (doc or "").splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower() != ".. warning::":
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following.strip())
        notices.append(" ".join(" ".join(body).split()))
    return [n for n in notices if n]


def describe_signature(dotted: str, signature: inspect.Signature, neutral: dict[str, str],
                       doc: str | None = None) -> dict[str, Any]:
    """A constructor signature as JSON-able data; `neutral` maps native parameter names to neutral ones, and
    a keyword-only parameter says so (`keyword_only`); `notices` holds the class docstring's warnings
    (announced changes)."""
    params = {}
    for name, param in signature.parameters.items():
        if name in ("self", "params") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = None if param.default is inspect.Parameter.empty else repr(param.default)
        params[name] = {"default": default, "neutral": neutral.get(name)}
        if param.kind is param.KEYWORD_ONLY:  # after `*` in the signature (torch's maximize, differentiable, ...)
            params[name]["keyword_only"] = True
    return {"class": dotted, "params": params, "mapping": dict(neutral), "notices": doc_notices(doc)}


def decay_as_none_kwargs(hparams: dict[str, Any], native_names: dict[str, Any]) -> dict[str, Any]:
    """Neutral hyper-parameters -> keywords of an optimizer that takes betas as two names where its table
    says so, a weight_decay of 0 as None (Keras and Paddle then add no decay op at all) and one learning
    rate (a per-step list gives its first value; the adapter applies the rest step by step)."""
    out: dict[str, Any] = {}
    for neutral, value in hparams.items():
        native = native_names[neutral]
        if isinstance(native, tuple):
            out.update({n: float(v) for n, v in zip(native, value)})
        elif neutral == "weight_decay":
            out[native] = float(value) or None
        else:
            out[native] = value[0] if isinstance(value, (list, tuple)) else float(value)
    return out
