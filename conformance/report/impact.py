"""How much each known difference matters to someone porting a model from PyTorch: the documented order
of the documentation page's "What to do" table and which causes are edge cases.

The measure is lexicographic, so that it can be stated in one line and checked by hand:
1. **how often the condition arises** in ordinary training code ported from PyTorch, as a tier (below,
   one judgement per cause, written down with its reason so a reviewer can dispute it);
2. **silent before loud**: within a tier a numerical divergence comes before a raised error, because
   an error announces itself and a divergence does not;
3. **measured size**: then the larger measured parameter difference (max |Δparam| of the cause's worst
   item in the run; state-only or zero differences count as 0, NaN/Inf as infinite) first.

Tier 4 causes are the page's "Edge cases"; the others are rows of "What to do". A cause of the registry
missing here is refused (tests/test_docs.py): adding a cause means deciding how often it bites.
"""
from __future__ import annotations

from dataclasses import dataclass

TIERS = {
    1: "every port that keeps a default",
    2: "common model features (normalisation layers with weight decay; zero or tiny gradients)",
    3: "particular training setups (schedules, freezing, loss scaling, per-step learning-rate lists)",
    4: "unusual inputs, dtypes or a run that has already failed (NaN/Inf)",
}


@dataclass(frozen=True)
class Impact:
    tier: int
    why: str  # why this tier: the condition, and how common it is
    topic: str | None = None  # tier 4: the heading of the "Edge cases" list it belongs to


EDGE_TOPICS = ("NaN and Inf gradients", "float16", "float64", "betas near 1", "inputs one side rejects")

IMPACT: dict[str, Impact] = {
    "default_lr": Impact(1, "every optimizer built without an explicit learning rate"),
    "decay_name_filter": Impact(2, "weight_decay > 0 on any model with LayerNorm/BatchNorm (their gamma and "
                                   "beta), i.e. most transformers and CNNs"),
    "eps_placement": Impact(2, "exact-zero or eps-sized gradients: embedding rows absent from a batch, dead "
                               "ReLUs, masked or padded weights, late training"),
    "global_vs_per_parameter_step": Impact(3, "fine-tuning with layers frozen and later unfrozen"),
    "schedule_past_period": Impact(3, "a cosine schedule whose period is shorter than the run"),
    "loss_scale_division": Impact(3, "a static loss_scale without multiplying the loss by it"),
    "lr_list_shorter_than_steps": Impact(3, "a per-step learning-rate list shorter than the run"),
    "float32_scalars": Impact(4, "beta1 or beta2 of 0.999 and above over long runs", "betas near 1"),
    "float64_in_float32": Impact(4, "float64 parameters (rare in training)", "float64"),
    "float16_rounding": Impact(4, "pure float16 parameters (not mixed precision) with exact-zero or tiny gradients",
                                   "float16"),
    "nan_dropped_by_max": Impact(4, "NaN gradients: training has already failed", "NaN and Inf gradients"),
    "lerp_vs_mul_add": Impact(4, "infinite gradients: training has already failed", "NaN and Inf gradients"),
    "input_validation": Impact(4, "hyper-parameters or parameters outside the ordinary", "inputs one side rejects"),
    "torch_option_constraints": Impact(4, "torch-only options (differentiable, capturable) in ported code",
                                       "inputs one side rejects"),
}


class ImpactMissing(ValueError):
    """A registry cause has no tier here."""


def impact(cause_id: str) -> Impact:
    try:
        return IMPACT[cause_id]
    except KeyError:
        raise ImpactMissing(f"cause {cause_id!r} of cases/causes.yaml has no impact tier: add it to IMPACT in "
                            f"{__name__} (tiers: {TIERS})") from None


def order_key(cause_id: str, loud: bool, size: float) -> tuple[int, bool, float, str]:
    """Sort key: tier, then silent before loud, then larger measured size, then id (stable)."""
    return impact(cause_id).tier, loud, -size, cause_id


def is_edge(cause_id: str) -> bool:
    return impact(cause_id).tier == 4
