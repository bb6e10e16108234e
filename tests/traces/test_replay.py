"""Replaying recorded torch loops through the real frameworks: torch reproduces its own run bitwise; a port
with parameter groups and a schedule conforms in MindSpore; MindSpore sees the names the ported model
would have and the entry names the parameters its decay filter skips; `python -m conformance replay` on
the example loop (LayerNorm, weight decay) attributes the divergence to the decay name filter, and the
same loop without weight decay conforms."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import conformance
from conformance import backends
from conformance.backends.base import SessionSpec
from conformance.backends.mindspore_backend import ported_name
from conformance.cases.case import Item
from conformance.engine import feeding, models
from conformance.engine.runner import run_item
from conformance.report import advice
from tests.conftest import REPO, load_case, needs_frameworks


def _loop(path: Path, model: torch.nn.Module, optimizer, steps: int, scheduler=None, frozen=None) -> dict:
    """Train `model` on random data for `steps`, recording; returns the final parameters and state."""
    with conformance.record(optimizer, path, model=model):
        for step in range(steps):
            optimizer.zero_grad()
            x = torch.randn(6, 4) if not isinstance(model[0], torch.nn.Embedding) else torch.randint(0, 10, (6,))
            model(x).pow(2).mean().backward()
            if frozen is not None and step % 3 == 1:
                frozen.grad = None  # a parameter without a gradient at some steps: torch skips it
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    return {"params": [p.detach().numpy().copy() for p in model.parameters()],
            "m": [optimizer.state[p]["exp_avg"].numpy().copy() for p in model.parameters()],
            "u": [optimizer.state[p]["exp_inf"].numpy().copy() for p in model.parameters()]}


def _grouped_loop(path: Path, steps: int = 30, frozen: bool = False) -> dict:
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    decay = [model[0].weight, model[3].weight]
    optimizer = torch.optim.Adamax([{"params": decay, "weight_decay": 0.1},
                                    {"params": [p for p in model.parameters() if p.dim() == 1], "weight_decay": 0.0}],
                                   lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    return _loop(path, model, optimizer, steps, scheduler, frozen=model[3].bias if frozen else None)


def _case(tmp_path: Path, frameworks: str = "[torch, mindspore]", extra: str = "", trace: str = "t"):
    return load_case(tmp_path, f"  - id: own\n    gradients: {{mode: replay, source: trace, trace: {trace}}}\n"
                               f"    devices: [cpu]\n    frameworks: {frameworks}\n{extra}")


@pytest.mark.torch_only
def test_torch_replays_its_own_trace_bitwise(tmp_path):
    """Groups, a schedule, weight decay and a parameter without a gradient at some steps: the torch adapter
    fed the trace (as the runner feeds it) ends with the loop's own parameters and state, bit for bit."""
    final = _grouped_loop(tmp_path / "t", frozen=True)
    case = _case(tmp_path)
    item = Item(case, "cpu", "float32")
    init = models.initial(case)
    session = backends.get("torch").open(SessionSpec(item, "cpu", init, case.optimizer.neutral()))
    shapes = [a.shape for a in init.values()]
    for grads in models.gradient_stream(case, init):
        session.step(feeding.feed("torch", item, grads, shapes))
    state = session.state()
    for key, got in (("params", session.params()), ("m", state["m"]), ("u", state["u"])):
        for a, b in zip(got, final[key]):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), key


@needs_frameworks
def test_a_grouped_scheduled_port_conforms_in_every_mindspore(tmp_path):
    _grouped_loop(tmp_path / "t")
    entry = run_item(Item(_case(tmp_path, "[torch, mindspore, mindspore_experimental]"), "cpu", "float32"), tmp_path)
    assert entry["outcome"] == "passed", entry.get("message")
    assert {label: p["observed"] for label, p in entry["pairs"].items()} == {
        "torch~mindspore": "conform", "torch~mindspore_experimental": "conform", "torch~oracle": "conform",
        "mindspore~oracle": "conform", "mindspore_experimental~oracle": "conform"}
    groups = entry["hparams"]["mindspore"]["groups"]
    assert [(g["params"], g["weight_decay"], len(g["lr"])) for g in groups] == [([0, 4], 0.1, 30),
                                                                                ([1, 2, 3, 5], 0.0, 30)]
    assert entry["decay_skipped"] == {}  # a grouped nn.AdaMax decays by the group, names ignored


def test_ported_names_are_mindspores_cells_names():
    pairs = [("enc.norm.weight", "LayerNorm"), ("enc.norm.bias", "LayerNorm"), ("bn.weight", "BatchNorm2d"),
             ("bn3.bias", "BatchNorm3d"), ("emb.weight", "Embedding"), ("fc.weight", "Linear"), ("weight", "LayerNorm"),
             ("ls.gamma", "LayerScale"), ("act.weight", "PReLU")]
    assert [ported_name(n, m) for n, m in pairs] == [
        "enc.norm.gamma", "enc.norm.beta", "bn.gamma", "bn3.bn2d.beta", "emb.embedding_table", "fc.weight", "gamma",
        "ls.gamma", "act.a"]


@needs_frameworks
def test_mindspore_sees_the_ported_names_and_the_entry_names_the_skipped(tmp_path):
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LayerNorm(4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 2))
    _loop(tmp_path / "t", model, torch.optim.Adamax(model.parameters(), lr=0.01, weight_decay=0.05), steps=3)
    entry = run_item(Item(_case(tmp_path), "cpu", "float32"), tmp_path)
    names = [(p["name"], p["module"], p["names"]["mindspore"]) for p in entry["trace"]["parameters"]]
    assert names == [("0.weight", "Embedding", "0.embedding_table"), ("1.weight", "LayerNorm", "1.gamma"),
                     ("1.bias", "LayerNorm", "1.beta"), ("2.weight", "BatchNorm1d", "2.gamma"),
                     ("2.bias", "BatchNorm1d", "2.beta"), ("3.weight", "Linear", "3.weight"),
                     ("3.bias", "Linear", "3.bias")]
    assert entry["decay_skipped"] == {"mindspore": ["1.gamma", "1.beta", "2.gamma", "2.beta"]}
    assert entry["observed"] == "diverge" and "decay_name_filter" in entry["attribution"]["causes"]
    assert (entry["trace"]["steps"], entry["trace"]["status"]) == (3, "complete")


@needs_frameworks
def test_native_defaults_diverge_by_the_default_lr(tmp_path):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    _loop(tmp_path / "t", model, torch.optim.Adamax(model.parameters()), steps=5)  # torch's default lr 0.002
    native = run_item(Item(_case(tmp_path, extra="    optimizer: {defaults: native}\n"), "cpu", "float32"), tmp_path)
    assert (native["hparams"]["torch"]["lr"], native["hparams"]["mindspore"]["lr"]) == (0.002, 0.001)
    rows = advice.rows(native)  # the causes beyond the tolerance first
    assert native["observed"] == "diverge" and (rows[0]["id"], rows[0]["effect"]["beyond"]) == ("default_lr", True)
    ported = run_item(Item(_case(tmp_path), "cpu", "float32"), tmp_path)
    assert ported["outcome"] == "passed", ported.get("message")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "GLOG_v": "3"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
@needs_frameworks
def test_the_example_loop_recorded_and_replayed(tmp_path):
    """docs/traces.md's demonstration: with weight decay the divergence is attributed to the decay name filter
    and the skipped parameters are named (exit 1); without weight decay the same loop conforms (exit 0)."""
    example = str(REPO / "examples" / "record_layernorm_loop.py")
    for name, decay in (("wd", "0.01"), ("no_wd", "0")):
        done = _cli([example, f"traces/{name}", "--weight-decay", decay, "--steps", "60"], tmp_path)
        assert done.returncode == 0, done.stderr
    done = _cli(["-m", "conformance", "replay", "traces/wd", "--frameworks", "torch", "mindspore", "--run-id", "wd"],
                tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "wd_ported [cpu-float32]: failed; attributed to: decay_name_filter (beyond the tolerance)" in out, out
    assert "mindspore's weight decay skips 2 parameter(s): 1.gamma (torch 1.weight), 1.beta (torch 1.bias)" in out
    summary = json.loads((tmp_path / "reports" / "wd" / "summary.json").read_text())
    assert {e["case"]: e["decay_skipped"] for e in summary["items"]} == {
        "wd_ported": {"mindspore": ["1.gamma", "1.beta"]}, "wd_native_defaults": {"mindspore": ["1.gamma", "1.beta"]}}
    page = (tmp_path / "reports" / "wd" / "items" / "wd_ported__cpu-float32.html").read_text()
    assert "What to do for this trace" in page and "<code>1.gamma</code> ✗" in page
    done = _cli(["-m", "conformance", "replay", "traces/no_wd", "--frameworks", "torch", "mindspore"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("no_wd_ported [cpu-float32]: passed", "no_wd_native_defaults [cpu-float32]: passed"):
        assert line in done.stdout, done.stdout
