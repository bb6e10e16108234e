"""The order of the docs page's "What to do" table and which causes are edge cases.

The measure is lexicographic, so that it can be stated in one line and checked by hand:
1. **how much it changed a real training run**: causes measured on real data come first, the larger
   real-training loss gap first: the mean relative gap between the two frameworks' loss curves over the
   run (|a - b| / |a| per step, the quantity MindFormers' loss standard bounds at 1%), read from the
   `training` block of the run on a real dataset that shows the cause beside the fewest others
   (docs_page.real_training);
2. **how often the condition arises** in ordinary training code ported from PyTorch: the cause's
   impact `tier` in cases/causes.yaml (one judgement per cause, written there with its reason, `why`,
   so a reviewer can dispute it; the tiers are causes.TIERS);
3. **silent before loud**: within a tier a numerical divergence comes before a raised error, because
   an error announces itself and a divergence does not;
4. **measured size**: then the larger measured parameter difference (max |Δparam| of the cause's worst
   item in the run; state-only or zero differences count as 0, NaN/Inf as infinite) first.

Tier 4 causes are the page's "Edge cases", under their impact `topic`; the others are rows of "What to do".
"""
from __future__ import annotations

from conformance.cases import causes
from conformance.cases.causes import EDGE_TOPICS, TIERS, Impact

__all__ = ["EDGE_TOPICS", "TIERS", "impact", "is_edge", "order_key"]


def impact(cause_id: str) -> Impact:
    """The registry's impact of a cause (a KeyError naming the registry for an unknown id)."""
    registry = causes.load()
    if cause_id not in registry:
        raise KeyError(f"cause {cause_id!r} is not in {causes.registry_path()}")
    return registry[cause_id].impact


def order_key(cause_id: str, loud: bool, size: float,
              trained: float | None = None) -> tuple[bool, float, int, bool, float, str]:
    """Sort key: measured in real training (`trained`: its mean relative loss gap) first, the larger gap
    first; then tier, silent before loud, larger measured size, then id (stable)."""
    return trained is None, -(trained or 0.0), impact(cause_id).tier, loud, -size, cause_id


def is_edge(cause_id: str) -> bool:
    return impact(cause_id).tier == 4
