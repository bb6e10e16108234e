"""Each AdaMax implementation's choices as data: the Features of each formula, and their description.

An implementation's formula is one entry of FEATURES (its name, as in the backends registry -> its
Features). The oracles (numerics/oracles.py) evaluate any Features; attribution switches one feature at a
time; the reports describe each formula with words derived from its features, never written per
implementation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# Where eps enters the update (Features.eps):
EPS_MODES = {
    "max": 0.0,          # u = max(b2*u, |g| + eps); p -= clr * m/u             (torch)
    "denominator": 1.0,  # u = max(b2*u, |g|);       p -= clr * m/(u + eps)     (mindspore.nn.AdaMax)
    "decayed_u": 2.0,    # u = max(b2*u + eps, |g|); p -= clr * m/u             (Paddle)
}


@dataclass(frozen=True)
class Features:
    """One implementation's choices, each a mechanism that can make two AdaMax implementations differ.
    The defaults are torch's."""

    eps: str = "max"                 # see EPS_MODES
    moment: str = "lerp"             # "lerp": m + (1-b1)*(g-m) | "mul_add": b1*m + (1-b1)*g
    nan_in_max: str = "propagate"    # "propagate": max(x, NaN) = NaN | "drop": std::max keeps x, drops a NaN |g|
    scalars: str = "float64"         # "float64" | "float32": b1, b2, eps, lr held in float32, beta1_power
                                     # a float32 running product | "float32_pow": the same, b1**t one float32 pow
    float64_compute: str = "float64"  # the dtype float64 parameters are computed in ("float32": MindSpore)
    decay_filter: bool = False       # decay skipped for names holding 'beta'/'gamma' unless grouped
    loss_scale: bool = False         # the (decayed) gradient is divided by loss_scale
    float16_ops: bool = True         # in float16 each op rounds (torch's tensor ops): |g| + eps before the max,
                                     # m and u before the step reads them (an underflowed m moves nothing);
                                     # with lerp, m is float32 arithmetic with weight float32(1 - b1)
    step_count: str = "parameter"    # "parameter": the steps this parameter took | "global": optimizer steps
    decay: str = "l2"                # "l2": wd*p added to the gradient | "decoupled": p*(1 - wd*lr) before the
                                     # step, the gradient untouched (Keras)
    float16_denominator: bool = False  # with float16_ops and eps in the denominator, u + eps is rounded
                                       # to float16 as well (Keras's foreach add): 1e-8 becomes 0
    float16_decay: bool = True       # in float16 the decay is float16 tensor ops, each rounded: L2 stores
                                     # fl16(fl16(wd)*p), then g + that (below 2^-14 in whole units of
                                     # 2^-24: 7.35 units of decay are 7); MindSpore's 1/loss_scale multiply
                                     # rounds too; decoupled stores p*(1 - wd*lr). False: computed in float32
    decay_factor: str = "exact"      # decoupled decay's factor 1 - wd*lr: "exact" (in the formula's
                                     # precision, optax) | "float32": formed as a float32 tensor (Keras)

    def differences(self, other: Features) -> list[str]:
        """Names of the features whose values differ."""
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


# Each implementation's features, keyed by its name in the backends registry (conformance/backends):
# the one place an implementation's formula is written. The formulas as read from their sources:
FEATURES: dict[str, Features] = {
    # torch.optim.Adamax 2.13 (torch/optim/adamax.py, _single_tensor_adamax and _multi_tensor_adamax): the
    # defaults above. Its decay grad.add(param, alpha=wd) takes alpha as float16; the CPU kernel's scalar loop
    # (tensors shorter than two of its vectors, and the tail of longer ones) rounds wd*p and then the sum, its
    # vectorised body computes g + wd*p in float32 and rounds once (CUDA: not measured): within half a
    # float16 unit of wd*p of the model, which the oracle bound's gradient terms cover.
    "torch": Features(),
    # mindspore.nn.AdaMax 2.10 (nn/optim/adamax.py, nn/optim/optimizer.py, the ApplyAdaMax CPU kernel). Before
    # the kernel (float32 arithmetic), nn.Optimizer's _apply_decay (Mul, then AddN) and scale_grad (Mul by
    # 1/loss_scale) run in the parameter's dtype, their float32 scalars cast to it: float16_decay.
    "mindspore": Features(eps="denominator", moment="mul_add", nan_in_max="drop", scalars="float32",
                          float64_compute="float32", decay_filter=True, loss_scale=True, float16_ops=False,
                          step_count="global"),
    # mindspore.experimental.optim.Adamax 2.10 (mindspore/experimental/optim/adamax.py): torch's eps placement
    # (u = amax(b2*u, |g| + eps)), m = m*b1 + g*(1 - b1), with beta1, beta2, eps Python numbers that the
    # compiled step holds in float32 beside a float32 lr, and the bias correction 1 - b1**step_t one float32
    # pow of an int32 step counted per optimizer step. Its decay is Mul then AddN in the parameter's dtype, as
    # nn.AdaMax's.
    "mindspore_experimental": Features(moment="mul_add", scalars="float32_pow", step_count="global"),
    # torch.optim.Adamax's step under torch.compile (Inductor, CPU): torch's formula, but Inductor computes a
    # float16 kernel's arithmetic in float32 and rounds only what it stores, so |g| + eps keeps eps (a zero
    # gradient gives u = 1e-8 in the step and no NaN; the stored u rounds to 0). Its bias correction
    # 1 - b1**step is a float32 tensor op (step is a tensor there): evaluated here in float64 and bounded.
    # The decay g + wd*p is fused into that float32 arithmetic too (float16_decay off).
    "torch_compile": Features(float16_ops=False, float16_decay=False),
    # keras.optimizers.Adamax, Keras 3.15 on its torch backend (keras/src/backend/torch/optimizers/
    # torch_adamax.py, torch_optimizer.py): p *= 1 - wd*lr (decoupled, every variable, before the step);
    # m = b1*m + (1-b1)*g; u = max(b2*u, |g|); p -= (m*lr) / ((u + eps) * (1 - b1**t)), t = the optimizer's
    # iterations + 1, every op in the variable's dtype (lr is a float32 variable: the runner passes its
    # value). b1**t is a float32 power there, evaluated here in float64 and bounded, as is optax's. The decay
    # (torch_optimizer.py _apply_weight_decay) is torch._foreach_mul_ by 1 - wd*lr, a float32 0-d tensor
    # (its lr is a float32 variable): the factor is float32, the product rounded to the variable's dtype.
    "keras": Features(eps="denominator", moment="mul_add", step_count="global", decay="decoupled",
                      decay_factor="float32", float16_denominator=True),
    # optax.adamax 0.2.8 (optax/_src/transform.py scale_by_adamax, tree_utils): m = (1-b1)*g + b1*m;
    # u = max(|g| + eps, b2*u) (jnp.maximum propagates NaN); p += -lr * (m / (1 - b1**count)) / u with one
    # count for the whole tree; weight decay as the suite chains it: add_decayed_weights (L2) before adamax,
    # g + wd*p in the parameter's dtype (wd a weak-typed Python float), each op rounded as JAX's ops are.
    "optax": Features(moment="mul_add", step_count="global"),
    # optax.adamaxw 0.2.8 (optax/_src/alias.py adamaxw): scale_by_adamax as optax.adamax, then
    # add_decayed_weights(wd) on the update and scale_by_learning_rate: p - lr*(m/(1 - b1**count)/u + wd*p),
    # the decay decoupled from the moments (Keras's p*(1 - wd*lr) in exact arithmetic; the float64 oracle
    # evaluates both the same way, the order of the rounding is within its bound).
    "optax_adamaxw": Features(moment="mul_add", step_count="global", decay="decoupled"),
    # paddle.optimizer.Adamax 3.3.1 (paddle/phi/kernels/impl/adamax_kernel_impl.h, python/paddle/optimizer/
    # adamax.py): m = b1*m + (1-b1)*g; u = max(b2*u + eps, |g|); p -= lr/(1 - beta1_pow) * m/u; beta1, beta2,
    # eps are float attributes and lr a float32 tensor; beta1_pow a per-parameter float32 accumulator
    # multiplied by beta1 after each step (for float64 parameters the accumulator is float64: not modelled,
    # the matrix runs float32). A float weight_decay is an L2Decay regularizer added to the gradient. No
    # float16 CPU kernel: float16_decay is never exercised.
    "paddle": Features(eps="decayed_u", moment="mul_add", scalars="float32"),
}
# What the features cannot say about an implementation, for its description.
NOTES = {"optax": "optax.adamax has no weight decay; the suite chains add_decayed_weights (L2) before it",
         "optax_adamaxw": "optax.adamaxw adds wd*p to the update before the lr scales it; default weight_decay 1e-4"}

# The words for each feature value, from which every description is derived.
CAMPS = {"max": "torch-like", "denominator": "MindSpore-like", "decayed_u": "Paddle (its own)"}
EPS_WORDS = {"max": "inside the max: u = max(b2*u, |g| + eps)",
             "denominator": "denominator: m/(u + eps), u = max(b2*u, |g|)",
             "decayed_u": "inside the max, on the decayed norm: u = max(b2*u + eps, |g|)"}


def _decay_words(features: Features) -> str:
    if features.decay == "decoupled":
        factor = ", the factor in float32" if features.decay_factor == "float32" else ""
        return f"decoupled: p*(1 - wd*lr) before the step, every variable{factor}"
    if features.decay_filter:
        return "L2 into the gradient, skipped for names holding beta/gamma"
    return "L2 into the gradient, every parameter"


def decays(name: str, hp: dict[str, Any]) -> bool:
    """MindSpore's decay filter: ungrouped, parameters whose name holds 'beta' or 'gamma' are skipped;
    a parameter group that sets weight_decay decays all of its parameters."""
    return bool(hp.get("param_groups")) or ("beta" not in name and "gamma" not in name)


def decay_skipped(features: Features, names: list[str], hp: dict[str, Any]) -> list[str]:
    """The parameters a formula with the decay filter leaves undecayed although weight decay is set (a
    port's surprise: torch decays them); [] for a formula without the filter or without weight decay."""
    if not features.decay_filter:
        return []
    hps = per_parameter(hp, len(names))
    return [n for n, h in zip(names, hps) if float(h.get("weight_decay") or 0.0) > 0 and not decays(n, h)]


def per_parameter(hp: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Each parameter's hyper-parameters: the top-level ones, or where the optimizer has parameter groups
    (hp["groups"]: each {"params": indices, and its values}) its group's values over them; a grouped
    parameter has `param_groups` set (MindSpore's decay filter does not act on groups)."""
    out = [hp] * count
    for group in hp.get("groups") or ():
        merged = {**hp, **{k: v for k, v in group.items() if k != "params"}, "param_groups": True}
        for index in group["params"]:
            out[index] = merged
    return out


def with_lr(hp: dict[str, Any], lr: float | list[float]) -> dict[str, Any]:
    """Hyper-parameters with the learning rate a step used: one value, or one per parameter group."""
    if isinstance(lr, (list, tuple)):
        groups = [{**g, "lr": v} for g, v in zip(hp.get("groups") or (), lr)]
        return {**hp, "lr": lr[0], **({"groups": groups} if groups else {})}
    return {**hp, "lr": lr}


def describe(name: str, features: Features) -> dict[str, Any]:
    """{"kind", "camp", "eps", "weight_decay", "features"} of an implementation's formula, for run.api;
    every word derived from its features (and NOTES)."""
    eps = EPS_WORDS[features.eps] + ("" if features.float16_ops else ", float16 computed in float32")
    decay = _decay_words(features) + (f" ({NOTES[name]})" if name in NOTES else "")
    return {"kind": name, "camp": CAMPS[features.eps], "eps": eps, "weight_decay": decay,
            "features": asdict(features)}
