"""Optimizer state between torch.optim.Adamax and mindspore.nn.AdaMax, both ways: `convert_state`.

Why: a training run ported from PyTorch resumes from a torch checkpoint (or goes back to torch for a
comparison run). The two optimizers keep the same two moments under other names, and count steps
differently:

    torch: Adamax.state_dict()                   MindSpore: nn.AdaMax's Parameters (and checkpoints)
    ["state"][i]["exp_avg"]  first moment m       "moment1.<name>"
    ["state"][i]["exp_inf"]  infinity norm u      "moment2.<name>"
    ["state"][i]["step"]     steps parameter i    "global_step"  int32, shape [1]: one count for all
                             has taken            "beta1_power"  float32, shape [1]: float32(beta1)
                                                  multiplied in float32 once per step (torch instead
                                                  computes beta1**step from the step)

`i` is a parameter's position in the torch optimizer; `names[i]` is the same parameter's name in
MindSpore. What cannot carry over exactly, by construction:
- eps_placement: torch's u holds eps inside its max (max(b2*u, |g| + eps)), MindSpore's does not. u is
  copied as it is (the max has no inverse), so MindSpore continues from a u up to eps larger than its
  own would be, and torch from one up to eps smaller;
- global_vs_per_parameter_step: MindSpore has one step count, so a torch state whose parameters took
  different numbers of steps (one without a gradient for a while) is refused, naming them;
- per-group betas or eps: nn.AdaMax's parameter groups accept params, lr, weight_decay,
  grad_centralization and order_params only, so a torch state whose groups differ in betas or eps is
  refused; lr and weight_decay per group are constructor arguments, not state.
beta1_power is computed as MindSpore keeps it (oracles.float32_power): a converted state continues
exactly as if nn.AdaMax had taken those steps itself. cases/resume.yaml trains in one framework,
converts with this function and continues in the other; its items measure what carries over.

Values are read with numpy.asarray (NumPy arrays, CPU torch tensors, MindSpore Tensors: no framework is
imported here) and returned as NumPy copies and plain numbers. Loading the result, as
conformance/backends/torch_backend.py and conformance/backends/mindspore_backend.py do (the latter says
why strict_load=True, and why before the first step):
    torch:     optimizer.load_state_dict({**optimizer.state_dict(), "state": {i: {k: torch.as_tensor(v)
               for k, v in s.items()} for i, s in converted["state"].items()}})
    MindSpore: ms.load_param_into_net(optimizer, {k: ms.Parameter(ms.Tensor(v), name=k)
               for k, v in converted.items()}, strict_load=True)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LAYOUTS = ("torch", "mindspore")
_TORCH_KEYS = ("step", "exp_avg", "exp_inf")
# MindSpore's beta1_power is a float32 running product; a saved one that differs from float32(beta1)
# multiplied global_step times by more than this (relative) was made with another beta1 or step count
BETA1_POWER_RTOL = 1e-5


@dataclass
class _Neutral:
    """A state between the layouts: per parameter position (m, u) or None (no state yet), and its step."""

    moments: list[tuple[np.ndarray, np.ndarray] | None]
    steps: list[int | None]
    names: list[str] | None
    betas: set[float]  # beta1 of each torch parameter group (empty: not recorded)
    eps: set[float]
    groups: list[dict[str, Any]] | None  # torch's param_groups, kept for a torch -> torch copy
    beta1_power: float | None = None


def _array(value: Any, where: str) -> np.ndarray:
    try:
        return np.array(value.asnumpy() if hasattr(value, "asnumpy") else value, copy=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{where} cannot be read as an array ({type(exc).__name__}: {exc}); pass NumPy arrays, "
                         "CPU torch tensors or MindSpore Tensors") from exc


def _count(value: Any, where: str) -> int:
    count = float(np.asarray(_array(value, where), dtype=np.float64).reshape(-1)[0])
    if not count.is_integer() or count < 0:
        raise ValueError(f"{where} is {count}: a step count is a whole number >= 0")
    return int(count)


def layout_of(state: Any) -> str:
    """Which framework's layout `state` is in: "torch" (a mapping with "state") or "mindspore" (names
    such as "moment1.<name>", "beta1_power", "global_step")."""
    if isinstance(state, Mapping) and "state" in state:
        return "torch"
    if isinstance(state, Mapping) and ("global_step" in state or any(str(k).startswith("moment1.") for k in state)):
        return "mindspore"
    raise ValueError("not an AdaMax state: expected torch's Adamax.state_dict() (keys 'state' and "
                     "'param_groups') or nn.AdaMax's Parameters by name ('moment1.<name>', 'moment2.<name>', "
                     f"'beta1_power', 'global_step'); got {type(state).__name__}"
                     + (f" with keys {', '.join(map(str, list(state)[:6]))}" if isinstance(state, Mapping) else ""))


def _read_torch(state: Mapping, names: Sequence[str] | None) -> _Neutral:
    per_param = state["state"]
    if not isinstance(per_param, Mapping):
        raise ValueError("state['state'] must map parameter positions to {step, exp_avg, exp_inf}")
    groups = [dict(g) for g in state.get("param_groups") or []]
    positions = {int(i) for i in per_param} | {int(i) for g in groups for i in g.get("params", ())}
    count = len(names) if names is not None else (max(positions) + 1 if positions else 0)
    beyond = sorted(i for i in positions if i >= count)
    if beyond:
        raise ValueError(f"state['state'] or param_groups name parameter position {beyond[0]}, but `names` lists "
                         f"{count} parameters: give one name per parameter of the torch optimizer, in its order")
    moments: list = [None] * count
    steps: list = [None] * count
    for key, entry in per_param.items():
        i = int(key)
        missing = [k for k in _TORCH_KEYS if k not in entry]
        if missing:
            raise ValueError(f"state['state'][{i}] lacks {', '.join(missing)}: a torch.optim.Adamax state holds "
                             "step, exp_avg and exp_inf per parameter")
        m, u = _array(entry["exp_avg"], f"state['state'][{i}]['exp_avg']"), _array(entry["exp_inf"],
                                                                                 f"state['state'][{i}]['exp_inf']")
        if m.shape != u.shape:
            raise ValueError(f"state['state'][{i}]: exp_avg has shape {m.shape}, exp_inf {u.shape}")
        moments[i], steps[i] = (m, u), _count(entry["step"], f"state['state'][{i}]['step']")
    betas = {float(g["betas"][0]) for g in groups if "betas" in g}
    eps = {float(g["eps"]) for g in groups if "eps" in g}
    return _Neutral(moments, steps, list(names) if names is not None else None, betas, eps, groups or None)


def _read_mindspore(state: Mapping, names: Sequence[str] | None) -> _Neutral:
    if names is None:
        names = [str(k)[len("moment1."):] for k in state if str(k).startswith("moment1.")]
    missing = [k for k in ("beta1_power", "global_step") if k not in state]
    missing += [f"{prefix}.{n}" for n in names for prefix in ("moment1", "moment2") if f"{prefix}.{n}" not in state]
    if missing:
        raise ValueError(f"the MindSpore state lacks {', '.join(missing[:4])}: nn.AdaMax keeps moment1.<name>, "
                         "moment2.<name> per parameter, beta1_power and global_step")
    step = _count(state["global_step"], "global_step")
    moments = []
    for n in names:
        m, u = _array(state[f"moment1.{n}"], f"moment1.{n}"), _array(state[f"moment2.{n}"], f"moment2.{n}")
        if m.shape != u.shape:
            raise ValueError(f"moment1.{n} has shape {m.shape}, moment2.{n} {u.shape}")
        moments.append((m, u))
    power = float(np.asarray(_array(state["beta1_power"], "beta1_power"), dtype=np.float64).reshape(-1)[0])
    return _Neutral(moments, [step] * len(names), list(names), set(), set(), None, power)


def _one_beta1(neutral: _Neutral, beta1: float | None) -> float | None:
    """The beta1 every parameter shares: the argument, else the torch groups' one; per-group values refused."""
    if len(neutral.betas) > 1 or len(neutral.eps) > 1:
        raise ValueError(f"the torch param_groups differ in betas ({sorted(neutral.betas)}) or eps "
                         f"({sorted(neutral.eps)}): nn.AdaMax's parameter groups take params, lr, weight_decay, "
                         "grad_centralization and order_params only; one beta1, beta2 and eps hold for all")
    if beta1 is not None and neutral.betas and float(beta1) != next(iter(neutral.betas)):
        raise ValueError(f"beta1={beta1} was given, but the torch param_groups say {next(iter(neutral.betas))}")
    return float(beta1) if beta1 is not None else next(iter(neutral.betas), None)


def _global_step(neutral: _Neutral) -> int:
    taken = {n: s for n, s in zip(neutral.names or range(len(neutral.steps)), neutral.steps) if s is not None}
    if len(set(taken.values())) > 1:
        shown = ", ".join(f"{n}: {s}" for n, s in list(taken.items())[:6])
        raise ValueError(f"the parameters took different numbers of steps ({shown}); nn.AdaMax keeps one global "
                         "step count for all (cause global_vs_per_parameter_step), so this state has no MindSpore "
                         "equivalent")
    return next(iter(taken.values()), 0)


def _to_mindspore(neutral: _Neutral, names: Sequence[str] | None, beta1: float | None) -> dict[str, np.ndarray]:
    from conformance.numerics.oracles import float32_power  # the one definition of MindSpore's product

    names = list(names) if names is not None else neutral.names
    if names is None:
        raise ValueError("to='mindspore' needs `names`: the nn.AdaMax parameters' names in the order of the torch "
                         "optimizer's parameters, e.g. [p.name for p in net.trainable_params()]")
    if len(names) != len(neutral.moments):
        raise ValueError(f"`names` lists {len(names)} parameters, the state has {len(neutral.moments)}")
    beta1 = _one_beta1(neutral, beta1)
    step = _global_step(neutral)
    if step > np.iinfo(np.int32).max:
        raise ValueError(f"step {step} does not fit MindSpore's int32 global_step")
    if beta1 is None and neutral.beta1_power is None:
        raise ValueError("to='mindspore' needs beta1 (the state's param_groups do not record betas): give beta1=")
    out: dict[str, np.ndarray] = {}
    for name, pair in zip(names, neutral.moments):
        if pair is not None:  # a parameter without a torch state keeps nn.AdaMax's zero moments
            out[f"moment1.{name}"], out[f"moment2.{name}"] = pair
    power = neutral.beta1_power if beta1 is None else float32_power(float(np.float32(beta1)), step)
    out["beta1_power"] = np.array([power], dtype=np.float32)
    out["global_step"] = np.array([step], dtype=np.int32)
    return out


def _to_torch(neutral: _Neutral, beta1: float | None) -> dict[str, Any]:
    from conformance.numerics.oracles import float32_power

    beta1 = _one_beta1(neutral, beta1)
    if neutral.beta1_power is not None and beta1 is not None:
        step = neutral.steps[0] if neutral.steps else 0
        expected = float32_power(float(np.float32(beta1)), step)
        if abs(neutral.beta1_power - expected) > BETA1_POWER_RTOL * expected + 1e-38:
            raise ValueError(f"beta1_power is {neutral.beta1_power:.9g}, but float32({beta1}) multiplied "
                             f"global_step={step} times is {expected:.9g}: the state was saved with another beta1 "
                             "or step count; torch recomputes beta1**step from the step, so it would not continue "
                             "this state")
    out: dict[str, Any] = {"state": {i: {"step": float(s), "exp_avg": pair[0], "exp_inf": pair[1]}
                                     for i, (pair, s) in enumerate(zip(neutral.moments, neutral.steps))
                                     if pair is not None}}
    if neutral.groups is not None:
        out["param_groups"] = neutral.groups
    return out


def convert_state(state: Mapping[str, Any], to: str, names: Sequence[str] | None = None,
                  beta1: float | None = None) -> dict[str, Any]:
    """`state` in torch's or MindSpore's AdaMax layout (detected), converted to the layout `to`.

    names: the MindSpore parameter names, in the order of the torch optimizer's parameters (needed for
    to="mindspore"; from MindSpore it picks the parameters, else every moment1.<name> in order).
    beta1: the beta1 of the optimizer that continues; from torch it defaults to the param_groups' one,
    from MindSpore it is optional and checks beta1_power against the global step.
    Raises ValueError naming the key and what is allowed when the state cannot be converted."""
    if to not in LAYOUTS:
        raise ValueError(f"to={to!r}: allowed layouts are {', '.join(LAYOUTS)}")
    source = layout_of(state)
    neutral = _read_torch(state, names) if source == "torch" else _read_mindspore(state, names)
    if to == "mindspore":
        return _to_mindspore(neutral, names, beta1)
    return _to_torch(neutral, beta1)
