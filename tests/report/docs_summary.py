"""A summary.json the docs-page tests render (the page reads stored results only, so a summary is its whole
input): evidence for every cause of the real registry (cases/causes.yaml), each fix case conforming, a GPU
item that did not run; and the helper that renders it into a folder."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from conformance.cases import causes
from conformance.report import docs_site

API = {
    "torch": {"class": "torch.optim.Adamax", "params": {
        "lr": {"default": "0.002", "neutral": "lr"}, "betas": {"default": "(0.9, 0.999)", "neutral": "betas"},
        "eps": {"default": "1e-08", "neutral": "eps"}, "weight_decay": {"default": "0", "neutral": "weight_decay"},
        "foreach": {"default": "None", "neutral": None},
        "maximize": {"default": "False", "neutral": None, "keyword_only": True},
        "differentiable": {"default": "False", "neutral": None, "keyword_only": True},
        "capturable": {"default": "False", "neutral": None, "keyword_only": True}}, "notices": []},
    "mindspore": {"class": "mindspore.nn.AdaMax", "params": {
        "learning_rate": {"default": "0.001", "neutral": "lr"}, "beta1": {"default": "0.9", "neutral": "betas[0]"},
        "beta2": {"default": "0.999", "neutral": "betas[1]"}, "eps": {"default": "1e-08", "neutral": "eps"},
        "weight_decay": {"default": "0.0", "neutral": "weight_decay"},
        "loss_scale": {"default": "1.0", "neutral": None}},
        "notices": ["Non-backward-compatible change after version 2.9.0: `learning_rate` will be renamed to `lr`, "
                    "and the default learning rate will change from `0.001` to `0.002`."]},
    "mindspore_experimental": {"class": "mindspore.experimental.optim.Adamax", "params": {},
                               "notices": ["This is an experimental optimizer API that is subject to change. See "
                                           "`LRScheduler Class <https://www.mindspore.cn/x.html#lr>`_ ."]},
}
RUN = {"id": "r1", "start": "2026-11-30T04:00:00Z", "end": "2026-11-30T04:05:00Z", "complete": True,
       "python": "3.11.7", "numpy": "1.26.4", "torch": "2.13.0+cpu", "mindspore": "2.10.0", "platform": "Linux",
       "cpu": "Xeon", "cpu_count": 2, "git_commit": "abc", "api": API}
TOL = {"params": {"atol": 2.5e-7, "rtol": 0.0, "ulp": 4.0}, "state": {"atol": 1e-6, "rtol": 0.0, "ulp": 4.0},
       "loss": {"atol": 0.0, "rtol": 0.0, "ulp": 16.0}}


def item(nodeid: str, expect: str = "diverge", observed: str | None = None, cause=(), outcome: str = "passed",
         params: float = 1.23456e-3, state: float = 4.5e-5, steps: int = 50, first: tuple | None = (1, 0.5, 0.501),
         pair: str = "torch~mindspore", **extra) -> dict:
    """One summary.json entry as verdict.judge writes it."""
    file, rest = nodeid.split("::")
    case, params_id = rest.split("[")
    device, dtype = params_id.rstrip("]").split("-")
    observed = observed or expect
    metric = {"params": {"abs": params, "rel": params, "ulp": 12.0}, "state": {"abs": state, "rel": state, "ulp": 3.0},
              "loss": None}
    divergence = None
    if first and observed != "conform":
        step, a, b = first
        divergence = {"step": step, "quantity": "params", "tensor": "dense0.weight", "at": [0, 1], "a": a, "b": b,
                      "abs": abs(a - b) if a == a and b == b else float("inf"), "rel": 0.002, "ulp": 33554.0,
                      "bad": 3, "tolerance": TOL["params"], "nonfinite": None}
    entry = {"nodeid": nodeid, "case": case, "file": file, "line": 3, "device": device, "dtype": dtype,
             "expect": expect, "observed": observed, "outcome": outcome, "reason": None if expect == "conform" else "r",
             "cause": list(cause), "description": "d", "source": f"- id: {case}\n  expect: {expect}\n",
             "steps": steps, "requested_steps": steps,
             "first_divergent_step": divergence["step"] if divergence else None, "first_divergence": divergence,
             "final": metric, "max": metric, "rerun": f"pytest '{nodeid}'",
             "hparams": {side: {"lr": 0.002} for side in pair.split("~")},
             "pairs": {pair: {"role": "primary", "expect": expect, "observed": observed, "tolerance": TOL,
                              "max": metric, "final": metric, "first_divergence": divergence}},
             "nonfinite": {"torch": {"params": None, "state": None, "loss": None},
                           "mindspore": {"params": None, "state": None, "loss": None}}}
    entry.update(extra)
    return entry


def summary() -> dict:
    """A run with evidence for every cause of the registry and every fix case conforming."""
    registry = causes.load()
    items = [
        item("cases/docs_example.yaml::docs_example_defaults[cpu-float32]", cause=["default_lr"], params=0.0500008,
             first=(1, -0.3235707, -0.3245707)),
        item("cases/eps_placement.yaml::eps_small_gradients[cpu-float32]", cause=["eps_placement"], params=1.4117e-4,
             first=(1, 2.6e-8, 1.6e-8)),
        item("cases/dtypes.yaml::float16_zero_gradient_nan[cpu-float16]", expect="nonfinite",
             cause=["eps_placement", "float16_rounding"], params=float("inf"), first=(1, float("nan"), 0.365),
             reason=None),
        item("cases/weight_decay.yaml::weight_decay_layernorm_gamma_beta_skipped[cpu-float32]",
             cause=["decay_name_filter"], params=8.745e-3, first=(1, 0.998, 1.002)),
        item("cases/loss_scale.yaml::loss_scale_unscaled_gradients[cpu-float32]", cause=["loss_scale_division"],
             params=1.31e-6),
        item("cases/loss_scale.yaml::loss_scale_unscaled_with_weight_decay[cpu-float32]", cause=["loss_scale_division"],
             params=0.11043381690979004, hparams={"torch": {"lr": 0.002}, "mindspore": {"loss_scale": 1024}}),
        item("cases/long_horizon.yaml::long_horizon_beta1_0999_10k[cpu-float32]", cause=["float32_scalars"],
             params=1.07e-6, steps=10000, first=(2533, 0.15004970, 0.15004995)),
        item("cases/dtypes.yaml::float64_mindspore_computes_in_float32[cpu-float64]",
             cause=["float64_in_float32", "float32_scalars"], params=2.08e-7),
        item("cases/zero_and_missing_gradients.yaml::parameter_unfrozen_after_10_steps[cpu-float32]",
             cause=["global_vs_per_parameter_step"], params=7.97e-3, first=(11, -0.0384, -0.0367)),
        item("cases/nonfinite_gradients.yaml::nan_gradient_at_step_5[cpu-float32]", expect="nonfinite",
             cause=["nan_dropped_by_max"], params=0.0, first=(5, float("nan"), 0.87)),
        item("cases/nonfinite_gradients.yaml::inf_gradient_at_step_5[cpu-float32]", cause=["lerp_vs_mul_add"],
             params=0.0, first=(6, float("nan"), float("inf"))),
        item("cases/lr_schedules.yaml::cosine_schedule_past_period[cpu-float32]", cause=["schedule_past_period"],
             params=0.0175, first=(22, 0.0246, 0.0245)),
        item("cases/lr_schedules.yaml::lr_list_shorter_than_steps[cpu-float32]", expect="error",
             cause=["lr_list_shorter_than_steps"], first=None, steps=5,
             error={"framework": "mindspore", "step": 6, "type": "RuntimeError", "message": "Gather out of range"}),
        item("cases/torch_variants.yaml::torch_capturable_on_cpu[cpu-float32]", expect="error",
             cause=["torch_option_constraints"], first=None, steps=0,
             error={"framework": "torch", "step": 1, "type": "AssertionError", "message": "capturable"}),
        item("cases/torch_variants.yaml::torch_differentiable_on_leaf_parameters[cpu-float32]", expect="error",
             cause=["torch_option_constraints"], first=None, steps=0,
             error={"framework": "torch", "step": 1, "type": "RuntimeError", "message": "a leaf Variable"}),
        {"nodeid": "cases/input_validation.yaml::validation_eps_zero[cpu-float32]", "case": "validation_eps_zero",
         "file": "cases/input_validation.yaml", "line": 5, "device": "cpu", "dtype": "float32", "expect": "diverge",
         "observed": "diverge", "outcome": "passed", "reason": "eps > 0", "cause": ["input_validation"],
         "description": "eps = 0", "steps": 0, "first_divergent_step": None, "first_divergence": None,
         "final": None, "max": None, "rerun": "pytest x", "probe": {"hparams": {"eps": 0.0}},
         "behaviour": {"torch": {"behaviour": "accepts"},
                       "mindspore": {"behaviour": "raises", "type": "ValueError", "message": "eps must > 0"}}},
        item("cases/replay.yaml::replay_matched_1000[cpu-float32]", expect="conform", params=5.96e-8, steps=1000),
        item("cases/replay.yaml::replay_matched_1000[gpu-float32]", expect="conform", outcome="skipped",
             observed="skipped", reason="torch has no CUDA device on this machine", hparams={},
             skipped_sides={"torch": "torch has no CUDA device on this machine",
                            "mindspore": "MindSpore GPU needs an NVIDIA GPU and driver"}),
    ]
    for cause in registry.values():
        if cause.fix_case:
            pair = "torch~mindspore_experimental" if "experimental" in cause.fix_case else "torch~mindspore"
            items.append(item(cause.fix_case, expect="conform", params=3.3527e-8, steps=200, pair=pair))
    for case in ("docs_example_matched", "experimental_adamax_docs_example_autograd"):
        nodeid = f"cases/x.yaml::{case}[cpu-float32]"
        if all(e["case"] != case for e in items):
            items.append(item(nodeid, expect="conform", params=2.98e-8, steps=100))
    return {"run": copy.deepcopy(RUN), "items": items}


def render(tmp_path: Path, data: dict | None = None, **options) -> dict[str, str]:
    """Every file `docs` writes for `data` (default: summary()), by file name (pages in --out)."""
    data = data or summary()
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "summary.json").write_text(json.dumps(data))
    paths = docs_site.write_docs(data, tmp_path / "docs", run_dir=tmp_path, **options)
    return {p.name: p.read_text(encoding="utf-8") for p in paths}
