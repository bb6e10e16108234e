"""The trace folder as conformance.record writes it and the reader checks it: a real torch loop recorded,
read back bitwise; every class of bad trace is one TraceError naming the file and the step, and
`python -m conformance replay` answers it with exit status 2 and nothing under reports/; a recording cut
off inside a step replays its complete prefix and says so; reading streams one step at a time."""
from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import conformance
from conformance.traces import format as trace_format
from conformance.traces import replay, writer
from conformance.traces.format import TraceError, open_trace

pytestmark = pytest.mark.torch_only  # torch records; nothing here needs MindSpore


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _record(path: Path, steps: int = 4, *, fail_at: int | None = None, groups: bool = False) -> dict:
    """Record a small real loop; returns what the loop itself saw (initial values, gradients, lrs, losses)."""
    model = _model()
    params = list(model.parameters())
    if groups:
        decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
        rest = [p for p in params if all(p is not q for q in decay)]
        optimizer = torch.optim.Adamax([{"params": decay, "weight_decay": 0.1}, {"params": rest}], lr=0.01)
    else:
        optimizer = torch.optim.Adamax(params, lr=0.01, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    seen = {"init": [p.detach().clone().numpy() for p in params], "grads": [], "lrs": [], "losses": []}
    with conformance.record(optimizer, path, model=model) as trace:
        for step in range(1, steps + 1):
            if step == fail_at:
                raise KeyboardInterrupt("stopped by the test")
            optimizer.zero_grad()
            loss = model(torch.randn(5, 4)).pow(2).mean()
            loss.backward()
            trace.loss(loss)
            seen["grads"].append([p.grad.clone().numpy() for p in params])
            seen["lrs"].append(tuple(g["lr"] for g in optimizer.param_groups))
            seen["losses"].append(loss.item())
            optimizer.step()
            scheduler.step()
    seen["final"] = [p.detach().clone().numpy() for p in params]
    return seen


def test_a_recorded_loop_reads_back_bitwise(tmp_path):
    seen = _record(tmp_path / "t", steps=5)
    trace = open_trace(tmp_path / "t")
    trace.verify()
    assert (trace.steps, trace.status, trace.note, trace.dtype) == (5, "complete", None, "float32")
    assert [(p.name, p.module) for p in trace.parameters] == [
        ("0.weight", "Linear"), ("0.bias", "Linear"), ("1.weight", "LayerNorm"), ("1.bias", "LayerNorm"),
        ("3.weight", "Linear"), ("3.bias", "Linear")]
    for got, want in zip(trace.init_arrays().values(), seen["init"]):
        assert got.tobytes() == want.tobytes()
    for got, want in zip(trace.gradients(), seen["grads"]):
        assert [g.tobytes() for g in got] == [w.tobytes() for w in want]
    assert trace.lrs == seen["lrs"] == [(0.01,), (0.01,), (0.005,), (0.005,), (0.0025,)]  # the scheduler's
    assert trace.losses == pytest.approx(seen["losses"], rel=0, abs=0)
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["optimizer"]["torch_defaults"] == {"lr": 0.002, "betas": [0.9, 0.999], "eps": 1e-08,
                                                       "weight_decay": 0}


def test_parameter_groups_and_a_parameter_without_gradient(tmp_path):
    model = _model()
    frozen = model[0].bias
    optimizer = torch.optim.Adamax([{"params": [model[0].weight, model[3].weight], "weight_decay": 0.1},
                                    {"params": [p for p in model.parameters() if p.dim() == 1]}], lr=0.01)
    with conformance.record(optimizer, tmp_path / "g", model=model):
        for step in range(3):
            optimizer.zero_grad()
            model(torch.randn(5, 4)).sum().backward()
            if step == 1:
                frozen.grad = None
            optimizer.step()
    trace = open_trace(tmp_path / "g")
    assert [g.params for g in trace.groups] == [(0, 4), (1, 2, 3, 5)]
    assert [g.hparams["weight_decay"] for g in trace.groups] == [0.1, 0]
    grads = list(trace.gradients())
    assert grads[1][1] is None and all(g is not None for g in grads[0] + grads[2])


def _bytes(path: Path, cut: int = 0, flip: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    if flip is not None:
        data[flip] ^= 0xFF
    path.write_bytes(bytes(data[:len(data) - cut]))


def _rewrite(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:
        np.lib.format.write_array(handle, array)


def _manifest(root: Path, **changes) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _no_steps(root: Path) -> None:
    """A loop that ended before its first step: no step folder, the manifest says 0 steps."""
    for step in (root / "steps").iterdir():
        shutil.rmtree(step)
    _manifest(root, steps=0)


# (how the trace is damaged, the file the error names relative to the trace (None: the folder), the step it
# names (None: none), words the message says)
BAD = {
    "truncated array": (lambda t: _bytes(t / "steps/000002/g00001.npy", cut=5), "steps/000002/g00001.npy", 2,
                        "truncated: 27 bytes of data where parameter '0.bias' needs 32"),
    "corrupt header": (lambda t: _bytes(t / "steps/000003/g00000.npy", flip=2), "steps/000003/g00000.npy", 3,
                       "corrupt: not a .npy array file"),
    "corrupt data": (lambda t: _bytes(t / "steps/000002/g00004.npy", flip=-1), "steps/000002/g00004.npy", 2,
                     "corrupt: its CRC-32 is"),
    "corrupt initial value": (lambda t: _bytes(t / "init/p00002.npy", flip=-3), "init/p00002.npy", None,
                              "corrupt: its CRC-32 is"),
    "another format version": (lambda t: _manifest(t, version=2), "manifest.json", None,
                               "format version 2; this suite reads version 1"),
    "not a trace manifest": (lambda t: _manifest(t, format="something-else"), "manifest.json", None,
                             "not a trace manifest"),
    "shape mismatch": (lambda t: _rewrite(t / "steps/000001/g00000.npy", np.zeros((4, 8), np.float32)),
                       "steps/000001/g00000.npy", 1, "shape (4, 8) but parameter '0.weight' is (8, 4)"),
    "dtype mismatch": (lambda t: _rewrite(t / "steps/000003/g00005.npy", np.zeros(3, np.float64)),
                       "steps/000003/g00005.npy", 3, "dtype float64 but parameter '3.bias' is float32"),
    "missing step": (lambda t: shutil.rmtree(t / "steps/000002"), "steps/000002", 2,
                     "missing: the trace has steps up to 4 but not this one"),
    "missing last step": (lambda t: shutil.rmtree(t / "steps/000004"), "steps/000004", 4,
                          "missing: the manifest says the recording completed 4 steps, 3 are here"),
    "missing array": (lambda t: (t / "steps/000001/g00003.npy").unlink(), "steps/000001/g00003.npy", 1,
                      "missing (the array of parameter '1.bias')"),
    "empty trace": (lambda t: _no_steps(t), "steps", None, "empty trace: no complete step was recorded"),
    "not a trace": (lambda t: (t / "manifest.json").unlink(), None, None, "not a trace: no manifest.json"),
    "bad step record": (lambda t: (t / "steps/000002/step.json").write_text("{\"step\": 3}"),
                        "steps/000002/step.json", 2, "says step 3; it is in the folder of step 2"),
}


@pytest.mark.parametrize("damage, file, step, words", BAD.values(), ids=list(BAD))
def test_each_bad_trace_is_one_error_naming_file_and_step_and_exit_2(tmp_path, damage, file, step, words):
    root = tmp_path / "t"
    _record(root)
    damage(root)
    with pytest.raises(TraceError) as caught:
        open_trace(root).verify()
    error = caught.value
    assert (error.file, error.step) == (file, step), str(error)
    assert words in str(error)
    assert str(error).startswith(str(root / file) if file else str(root))
    if step is not None:
        assert f": step {step}: " in str(error)
    reports = tmp_path / "reports"
    assert replay.replay(root, ["torch", "mindspore"], reports, None, "0", []) == 2
    assert not reports.exists()  # nothing half-written


def test_a_folder_that_is_not_a_trace(tmp_path, capsys):
    assert replay.replay(tmp_path, None, tmp_path / "reports", None, "0", []) == 2
    assert replay.replay(tmp_path / "nowhere", None, tmp_path / "reports", None, "0", []) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: not a trace: no manifest.json" in err and f"{tmp_path / 'nowhere'}: not a folder" in err
    assert not (tmp_path / "reports").exists()


def test_an_interrupted_loop_leaves_its_complete_steps(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _record(tmp_path / "t", steps=6, fail_at=4)
    trace = open_trace(tmp_path / "t")
    assert (trace.steps, trace.status) == (3, "interrupted")
    assert trace.note == "the recorded loop stopped with an exception: the 3 complete steps replay"
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["error"] == "KeyboardInterrupt: stopped by the test"
    trace.verify()


def test_a_step_cut_off_while_written_replays_the_complete_prefix(tmp_path, monkeypatch):
    """A crash inside step() (here: the disk fails at step 3's second array) leaves steps/000003.partial; the
    process dies before the manifest is rewritten (status stays `recording`)."""
    real = writer.write_array
    calls = []

    def failing(path, array):
        calls.append(path)
        if "000003.partial" in str(path) and len(calls) > 1 and "000003.partial" in str(calls[-2]):
            raise OSError("disk full")
        return real(path, array)

    monkeypatch.setattr(writer, "write_array", failing)
    monkeypatch.setattr(writer.TraceWriter, "finish", lambda self, error=None: None)  # the process died
    with pytest.raises(OSError):
        _record(tmp_path / "t", steps=5)
    assert sorted(p.name for p in (tmp_path / "t" / "steps").iterdir()) == ["000001", "000002", "000003.partial"]
    trace = open_trace(tmp_path / "t")
    assert (trace.steps, trace.status) == (2, "recording")
    assert trace.note == ("the recording did not finish (the process ended inside the recorded loop); step 3 is "
                          "incomplete (cut off while being written) and is left out: the 2 complete steps replay")
    assert len(list(trace.gradients())) == 2


def test_the_recorder_refuses_what_it_cannot_record(tmp_path):
    model = _model()
    with pytest.raises(TypeError, match="records a torch.optim.Adamax; got Adam"):
        conformance.record(torch.optim.Adam(model.parameters()), tmp_path / "a")
    optimizer = torch.optim.Adamax(model.parameters())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(FileExistsError, match="exists and is not an empty folder"):
        with conformance.record(optimizer, tmp_path / "full"):
            pass
    half = torch.nn.Linear(2, 2).to(torch.bfloat16)
    with pytest.raises(TypeError, match="a torch.bfloat16 tensor cannot be replayed"):
        with conformance.record(torch.optim.Adamax(half.parameters()), tmp_path / "b", model=half):
            pass
    assert not (tmp_path / "b").exists()
    with pytest.raises(RuntimeError, match=r"step\(closure\)"):
        with conformance.record(optimizer, tmp_path / "c", model=model):
            optimizer.step(lambda: model(torch.randn(2, 4)).sum())
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["status"] == "interrupted"


def _stream_peak(path: Path) -> int:
    trace = open_trace(path)
    tracemalloc.start()
    for grads in trace.gradients():
        del grads
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_reading_holds_one_step_of_gradients_whatever_the_steps(tmp_path):
    """tracemalloc sees numpy's buffers: reading 40 steps peaks where reading 5 does, about one step's
    gradients (400 KB here), not the 16 MB of all of them."""
    size = 100_000
    for steps in (5, 40):
        out = writer.TraceWriter(tmp_path / f"s{steps}", [{"name": "w", "shape": [size], "dtype": "float32"}],
                                 {"class": "torch.optim.Adamax", "constructor": {}, "torch_defaults": {},
                                  "groups": [{"params": [0], "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                                              "weight_decay": 0.0}]}, {"test": True})
        out.start([np.zeros(size, np.float32)])
        rng = np.random.default_rng(0)
        for _ in range(steps):
            out.step([0.01], None, [(0, rng.standard_normal(size, dtype=np.float32))])
        out.finish()
    step_bytes = 4 * size
    few, many = _stream_peak(tmp_path / "s5"), _stream_peak(tmp_path / "s40")
    assert many < 3 * step_bytes, (few, many)
    assert many < few + step_bytes // 4, (few, many)
    assert trace_format.open_trace(tmp_path / "s40").steps == 40
