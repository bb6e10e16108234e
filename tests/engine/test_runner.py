"""The runner on real frameworks: oracles agree with their framework, and the oracle check can fail."""
from __future__ import annotations

import dataclasses

import pytest

from conformance import backends
from conformance.cases.case import Item
from conformance.cases.loader import load_file
from conformance.engine.runner import run_item
from conformance.errors import CaseError
from conformance.numerics import oracles
from tests.conftest import load_case, needs_frameworks

pytestmark = needs_frameworks


@pytest.mark.parametrize("gradients", ["{mode: replay, seed: 3}", "autograd"])
def test_each_oracle_agrees_with_its_framework(tmp_path, gradients):
    case = load_case(tmp_path, f"""
  - id: oracle_check
    model: {{kind: layernorm_mlp, sizes: [3, 5, 2]}}
    gradients: {gradients}
    optimizer: {{lr: 0.01, weight_decay: 0.1}}
    steps: 30
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    for label in ("torch~oracle", "mindspore~oracle"):
        pair = entry["pairs"][label]
        assert pair["observed"] == "conform", pair["first_divergence"]
        # stated bound: 8 float32 ULP, or 8 eps times the operands' magnitude where values cancel
        assert pair["max"]["params"]["abs"] < 1e-6
    assert entry["hparams"]["mindspore"]["lr"] == 0.01 and entry["hparams"]["torch"]["weight_decay"] == 0.1


MLP = "{kind: mlp, sizes: [4, 8, 3]}"


def _eps_sized_case(tmp_path, case_id: str, steps: int, model: str = "{kind: linear, in: 2, out: 3}",
                    stride: int | None = None):
    """A small model on eps-sized replayed gradients: torch and MindSpore diverge by eps placement."""
    stride_line = f"\n    oracle_stride: {stride}" if stride is not None else ""
    return load_case(tmp_path, f"""
  - id: {case_id}
    model: {model}
    gradients: {{mode: replay, seed: 3, scale: 1.0e-8}}
    steps: {steps}{stride_line}
    expect: diverge
    cause: eps_placement
    reason: eps placement
""")


def test_oracle_check_catches_a_framework_that_leaves_its_formula(tmp_path, monkeypatch):
    """Give torch MindSpore's formula as its oracle: with eps-sized gradients the check must fail."""
    case = _eps_sized_case(tmp_path, "wrong_formula", 3)
    torch_backend = backends.get("torch")
    monkeypatch.setattr(type(torch_backend), "formula", staticmethod(oracles.oracle("mindspore")))
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["pairs"]["torch~oracle"]["observed"] == "diverge"
    assert entry["outcome"] == "failed"
    assert "torch departs from its own formula's float64 oracle" in entry["message"]


@pytest.mark.parametrize("loss_scale", [1.0, 3.0])
def test_float16_weight_decay_is_rounded_by_both_frameworks(tmp_path, monkeypatch, loss_scale):
    """Parameters ~1e-2, weight decay 1e-3 and 90% zero gradients in float16: the decayed gradient is a
    few hundred float16 subnormal units and m a few dozen, so each rounding of the decay (and, with
    loss_scale 3, MindSpore's product with float16(1/3)) decides a unit (tests/numerics/test_float16.py).
    Both frameworks meet their oracles to the last bit of every parameter, and leave them by hundreds of
    ULP once the oracles compute the decay unrounded (Features.float16_decay off)."""
    case = load_case(tmp_path, f"""
  - id: float16_decay
    model: {{kind: mlp, sizes: [1, 3, 4], activation: tanh, init_seed: 0, init_scale: 0.01}}
    gradients: {{mode: replay, seed: 0, scale: 1.0e-4, zero_fraction: 0.9, prescale: {{mindspore: {loss_scale}}}}}
    optimizer: {{lr: 0.001, betas: [0.9, 0.5], eps: 1.0e-8, weight_decay: 0.001,
                mindspore: {{loss_scale: {loss_scale}}}}}
    steps: 60
    tolerance: {{params: {{atol: 1.0}}, state: {{atol: 1.0}}}}
""")
    entry = run_item(Item(case, "cpu", "float16"), tmp_path / "steps")
    for label in ("torch~oracle", "mindspore~oracle"):
        pair = entry["pairs"][label]
        assert pair["observed"] == "conform" and pair["max"]["params"]["ulp"] == 0, pair["first_divergence"]
    for name in ("torch", "mindspore"):
        backend = backends.get(name)
        monkeypatch.setattr(type(backend), "formula", staticmethod(backend.formula.replace(float16_decay=False)))
    entry = run_item(Item(case, "cpu", "float16"), tmp_path / "unrounded")
    for label in ("torch~oracle", "mindspore~oracle"):
        pair = entry["pairs"][label]
        assert pair["observed"] == "diverge" and pair["max"]["params"]["ulp"] > 100, pair["max"]


def test_native_defaults_are_introspected(tmp_path):
    case = load_case(tmp_path, """
  - id: native
    model: {kind: linear, in: 2, out: 3}
    optimizer: {defaults: native}
    steps: 1
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["hparams"]["torch"]["lr"] == 0.002
    assert entry["hparams"]["mindspore"]["lr"] == 0.001


def test_gpu_item_without_gpu_is_skipped_with_reason(tmp_path):
    case = load_case(tmp_path, """
  - id: gpu_only
    model: {kind: linear, in: 2, out: 3}
    steps: 2
    devices: [gpu]
""")
    if backends.get("torch").unavailable("gpu", "float32") is None:
        pytest.skip("this machine has a CUDA device; the skip path is not reachable")
    entry = run_item(dataclasses.replace(Item(case, "gpu", "float32")), tmp_path / "steps")
    assert entry["outcome"] == "skipped" and "CUDA" in entry["reason"]


def test_oracle_stride_checks_every_kth_step_plus_first_and_last(tmp_path):
    case = load_case(tmp_path, """
  - id: strided
    model: {kind: linear, in: 2, out: 3}
    gradients: {mode: replay, seed: 3}
    oracle_stride: 3
    steps: 8
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["oracle"] == {"stride": 3, "setting": 3, "steps_checked": 4}  # steps 1, 4, 7 and 8
    assert entry["pairs"]["torch~oracle"]["steps"] == 8 and entry["pairs"]["torch~mindspore"]["steps"] == 8
    lines = (tmp_path / "steps" / f"{Item(case, 'cpu', 'float32').slug}.jsonl").read_text().splitlines()
    checked = [i + 1 for i, line in enumerate(lines) if '"torch~oracle"' in line]
    assert checked == [1, 4, 7, 8]


def test_oracle_stride_auto_is_every_step_for_small_models(tmp_path):
    from conformance.engine.runner import AUTO_ORACLE_PARAMS, oracle_stride

    case = load_case(tmp_path, """
  - id: auto
    model: {kind: linear, in: 2, out: 3}
    steps: 1
""")
    item = Item(case, "cpu", "float32")
    assert case.oracle_stride == "auto"
    assert oracle_stride(item, 1000) == 1
    assert oracle_stride(item, AUTO_ORACLE_PARAMS) == 1
    assert oracle_stride(item, 1_001_000) == 8


def test_oracle_stride_must_be_auto_or_positive(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cases:\n  - id: bad\n    model: {kind: linear}\n    steps: 2\n    oracle_stride: 0\n")
    (error,) = load_file(path)
    assert isinstance(error, CaseError) and error.key == "oracle_stride" and error.line == 5


@pytest.mark.parametrize("extras", ["", "torch: {maximize: true}, mindspore: {loss_scale: 4.0}",
                                    "torch: {foreach: true}"])
def test_no_framework_writes_into_the_gradients_it_is_given(tmp_path, extras):
    """The runner hands sides fed alike one shared copy of a replayed gradient, and the oracles read
    it after the step: every adapter's step must leave it as it was."""
    import numpy as np

    from conformance.backends.base import SessionSpec
    from conformance.engine import models

    case = load_case(tmp_path, f"""
  - id: shared_grads
    model: {{kind: layernorm_mlp, sizes: [3, 4, 2]}}
    optimizer: {{lr: 0.01, weight_decay: 0.1, {extras}}}
    steps: 1
""")
    item = Item(case, "cpu", "float32")
    init = models.init_arrays(case.model)
    grads = [np.full(a.shape, 0.5, dtype=np.float32) for a in init.values()]
    for name in case.frameworks:
        session = backends.get(name).open(SessionSpec(item, "cpu", init, case.optimizer.neutral()))
        for _ in range(2):
            session.step(grads)
        assert all((g == 0.5).all() for g in grads), name


def test_checks_on_a_thread_record_exactly_what_inline_checks_record(tmp_path, monkeypatch):
    """Large models check each step on a second thread (checker.Checker) while the frameworks step:
    forced on for a small model, every figure and every JSONL byte must match the inline run."""
    from conformance.engine import runner

    case = _eps_sized_case(tmp_path, "threaded", 40, MLP, stride=3)
    entries = {}
    for mode, threshold in (("inline", 10**12), ("thread", 0)):
        monkeypatch.setattr(runner, "PIPELINE_PARAMS", threshold)
        entries[mode] = run_item(Item(case, "cpu", "float32"), tmp_path / mode)
    inline, thread = ((tmp_path / m / "threaded__cpu-float32.jsonl").read_bytes() for m in ("inline", "thread"))
    assert inline == thread and len(inline.splitlines()) == 40
    for entry in entries.values():
        entry.pop("seconds")
        entry.pop("jsonl", None)
    assert entries["inline"] == entries["thread"]
    assert entries["thread"]["oracle"]["steps_checked"] == 14  # steps 1, 4, ..., 40


@pytest.mark.parametrize("ahead", ["torch", "mindspore"])
def test_a_side_stepping_ahead_of_a_slow_checker_records_what_inline_checks_record(tmp_path, monkeypatch, ahead):
    """A side that steps before the previous step's checks end (stepping.ahead: its values were copied)
    must not change what they read: with a checker slowed down so that the step would land while it is
    still reading, every JSONL byte matches the inline run."""
    import time

    from conformance.engine import runner, stepping

    case = _eps_sized_case(tmp_path, "ahead", 12, MLP, stride=5)
    monkeypatch.setattr(runner, "PIPELINE_PARAMS", 10**12)
    run_item(Item(case, "cpu", "float32"), tmp_path / "inline")
    checks = runner._checks

    def slow_checks(*args):
        check = checks(*args)

        def slow(observation):
            time.sleep(0.02)  # the ahead side steps meanwhile
            check(observation)
        return slow

    monkeypatch.setattr(runner, "PIPELINE_PARAMS", 0)
    monkeypatch.setattr(runner, "_checks", slow_checks)
    monkeypatch.setattr(stepping, "ahead", lambda sides, checks, inputs: frozenset({ahead}))
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "ahead")
    inline, threaded = ((tmp_path / m / "ahead__cpu-float32.jsonl").read_bytes() for m in ("inline", "ahead"))
    assert inline == threaded and len(inline.splitlines()) == 12
    assert entry["seconds"] >= 12 * 0.02  # the whole item's time, its checks included


def test_only_checks_slower_than_the_inputs_send_a_side_ahead():
    from conformance.engine import stepping

    sides = {label: stepping.Side(label, label, None, {}, seconds=seconds)
             for label, seconds in (("torch", 0.4), ("mindspore", 0.9))}
    assert stepping.ahead(sides, None, 0.001) == frozenset()  # nothing measured yet
    assert stepping.ahead(sides, 0.010, 0.013) == frozenset()  # drawn gradients: the checks fit beside them
    assert stepping.ahead(sides, 0.010, 0.001) == frozenset({"mindspore"})  # a trace: the slower side goes ahead


def test_a_failing_checker_thread_surfaces_in_the_main_thread():
    from conformance.engine.checker import Checker

    def broken(observation):
        raise ValueError(f"bad {observation}")

    checker = Checker(broken, threaded=True)
    checker.submit(1, holds_views=True)
    with pytest.raises(RuntimeError, match="step checker failed") as info:
        checker.wait()  # the barrier before the frameworks step again
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(RuntimeError, match="step checker failed") as info:
        checker.submit(2, holds_views=False)
    assert isinstance(info.value.__cause__, ValueError)


def test_a_slow_checker_holds_the_frameworks_back_instead_of_queueing_copies():
    """Backpressure: with a checker slower than the frameworks, at most PENDING observations wait and
    one is in progress, however many steps are submitted (memory does not grow with the step count)."""
    import threading

    from conformance.engine.checker import PENDING, Checker

    gate = threading.Semaphore(0)
    alive = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow(observation):
        gate.acquire()  # each check waits for the test to let it through
        with lock:
            alive["now"] -= 1

    checker = Checker(slow, threaded=True)

    def frameworks():
        for step in range(50):
            with lock:
                alive["now"] += 1
                alive["most"] = max(alive["most"], alive["now"])
            checker.submit(step, holds_views=False)

    producer = threading.Thread(target=frameworks)
    producer.start()
    producer.join(timeout=1.0)
    assert producer.is_alive(), "submit must block while the checker is behind"
    # one taken by the thread, PENDING queued, the next one waiting in submit
    assert checker.queue.qsize() == PENDING and checker.submitted == PENDING + 2
    for _ in range(50):
        gate.release()
    producer.join(timeout=30)
    checker.close()
    assert not producer.is_alive() and checker.checked == 50
    assert alive["most"] <= PENDING + 2  # queued + in progress + the one being submitted


def test_msprobe_figures_at_the_last_and_worst_step_computed_a_bounded_number_of_times(tmp_path, monkeypatch):
    """msprobe's metrics are computed only at the last step and where the pair's largest difference more
    than doubled: a handful of times in 300 steps whose difference grows, and the worst snapshot is
    within a factor 2 of the run's largest difference."""
    from conformance.engine import runner

    calls = []
    real = runner.msprobe
    monkeypatch.setattr(runner, "msprobe", lambda a, b: calls.append(1) or real(a, b))
    case = _eps_sized_case(tmp_path, "growing", 300)
    entry = run_item(Item(case, "cpu", "float32"), tmp_path)
    probe = entry["msprobe"]
    assert probe["last"]["step"] == 300 and probe["last"]["params"]["tensors"].keys() == {"dense0.weight",
                                                                                         "dense0.bias"}
    largest = max(entry["max"]["params"]["abs"], entry["max"]["state"]["abs"])
    assert largest / 2 < probe["worst"]["max_abs_difference"] <= largest
    snapshots = len(calls) // 6  # 2 parameters x (params, m, u) per computed step
    assert snapshots < 40, snapshots
    in_pair = entry["pairs"]["torch~mindspore"]["msprobe"]  # the same figures, without the per-tensor rows
    assert in_pair["last"]["state"]["cosine"] == probe["last"]["state"]["cosine"]
    assert in_pair["last"]["state"]["tensors"] is None and in_pair["passes"] == probe["passes"]
    assert entry["pairs"]["torch~oracle"]["msprobe"] is None
