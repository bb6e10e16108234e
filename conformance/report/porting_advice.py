"""Porting advice for the docs page, as data its templates place (`section`): nn.AdaMax's own announced
changes (quoted from the run), where loss_scale must equal the loss-scale manager's and how torch's
GradScaler maps, the keys MindSpore's parameter groups accept, and the optimizer state carried across
with conformance.convert_state, each with the case that proves it and its figures from summary.json.

Self-contained: it reads only a stored run (the items and run.api) and a measured.Figures to record each
figure it shows; the quotes below are the sources' words, read from MindSpore 2.10 (nn.AdaMax's and
FixedLossScaleManager's docstrings, mindspore/train/amp.py) and torch's GradScaler docstring.
"""
from __future__ import annotations

from typing import Any

from conformance.report.measured import Figures
from conformance.results.entry import RAN

# nn.AdaMax's docstring, `params`: "the string "params", "lr", "weight_decay", "grad_centralization" and
# "order_params" are the keys can be parsed" (no betas or eps: one value holds for every group)
PARAM_GROUP_KEYS = ("params", "lr", "weight_decay", "grad_centralization", "order_params")
LOSS_SCALE_QUOTE = ("Only when FixedLossScaleManager is used for training and the drop_overflow_update in "
                    "FixedLossScaleManager is set to False, then this value needs to be the same as the "
                    "loss_scale in FixedLossScaleManager.")  # nn.AdaMax's docstring, loss_scale (as rendered)
GRADSCALER_QUOTE = "scaler.step() first unscales the gradients of the optimizer's assigned params."
LOSS_SCALE_CASES = {"prescaled": "loss_scale_prescaled_gradients", "unscaled": "loss_scale_unscaled_gradients"}
RESUME_CASES = ("resume_torch_to_mindspore", "resume_mindspore_to_torch", "resume_torch_to_mindspore_eps",
                "resume_torch_to_mindspore_betas_near_1")
CONVERT_EXAMPLE = """\
from conformance import convert_state
state = convert_state(torch_optimizer.state_dict(), to="mindspore",
                      names=[p.name for p in net.trainable_params()])  # in torch's parameter order
ms.load_param_into_net(ms_optimizer, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in state.items()},
                       strict_load=True)  # before the first step"""


def _proof(items: list[dict[str, Any]], case: str) -> dict[str, Any] | None:
    """The CPU float32 item of a case that ran (the page's figures are CPU figures), or None."""
    return next((e for e in items if e.get("case") == case and e.get("device") == "cpu"
                 and e.get("dtype") == "float32" and e.get("outcome") in RAN), None)


def _resume_row(entry: dict[str, Any], figs: Figures) -> dict[str, Any]:
    probe = entry.get("msprobe") or {}
    causes = (entry.get("attribution") or {}).get("causes") or []
    return {"case": entry["case"], "nodeid": entry["nodeid"], "from": entry["resume"]["from"],
            "trained": figs(entry, "resume.steps"), "last": figs(entry, "steps"),
            "params_abs": figs(entry, "max.params.abs"), "state_abs": figs(entry, "max.state.abs"),
            "observed": entry["observed"], "outcome": entry["outcome"], "causes": causes,
            "msprobe_passes": probe.get("passes")}


def section(items: list[dict[str, Any]], run: dict[str, Any], figs: Figures) -> dict[str, Any]:
    """What the page's porting advice shows: `notices` (nn.AdaMax's warnings as the run recorded them),
    `loss_scale` (the rule, the sources' words, the two cases proving it), `group_keys`, and `state` (the
    conversion's example and one row per resume case that ran here)."""
    notices = (((run.get("api") or {}).get("mindspore") or {}).get("notices")) or []
    loss_scale = {key: _proof(items, case) for key, case in LOSS_SCALE_CASES.items()}
    resumed = [_resume_row(e, figs) for case in RESUME_CASES if (e := _proof(items, case))]
    return {
        "notices": list(notices),
        "loss_scale": {
            "rule": "With torch.amp's GradScaler, torch's Adamax receives unscaled gradients (scaler.step "
                    "unscales them first); keep nn.AdaMax's loss_scale at 1.0 unless the gradients reaching it "
                    "are still multiplied by the loss scale, as with FixedLossScaleManager("
                    "drop_overflow_update=False) (on the CPU the only manager mindspore.amp.build_train_network "
                    "accepts): then give it the manager's loss_scale.",
            "quotes": {"mindspore": LOSS_SCALE_QUOTE, "torch": GRADSCALER_QUOTE},
            "prescaled": loss_scale["prescaled"] and {"case": loss_scale["prescaled"]["case"],
                                                      "observed": loss_scale["prescaled"]["observed"]},
            "unscaled": loss_scale["unscaled"] and {"case": loss_scale["unscaled"]["case"],
                                                    "observed": loss_scale["unscaled"]["observed"],
                                                    "loss_scale": figs(loss_scale["unscaled"],
                                                                       "hparams.mindspore.loss_scale"),
                                                    "params_rel": figs(loss_scale["unscaled"], "max.params.rel")},
        },
        "group_keys": PARAM_GROUP_KEYS,
        "state": {"example": CONVERT_EXAMPLE, "rows": resumed},
    }
