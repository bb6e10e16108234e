"""tools/gpu-run, tools/gpu-unpack, tools/fetch-gpu-wheels and the evidence they leave, without a GPU.

The GPU run itself needs the GPU machine; everything around it runs here on real torch: the rehearsal
(torch's `gpu` device set to the CPU) takes the GPU items through the same selection, CPU twin, oracle,
run context, packing, unpacking, merge and evidence as the GPU run will; without the rehearsal the GPU
items skip with the reason and the command still succeeds and writes its files.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import backends
from conformance.report import devices
from conformance.results import storage
from tests.conftest import REPO

pytestmark = pytest.mark.torch_only

# small GPU items: one that conforms on both devices, one that needs CUDA's graph capture
CONFORMING = "cases/gpu_variants.yaml::gpu_float16[gpu-float16]"
CAPTURABLE = "cases/gpu_variants.yaml::gpu_capturable.torch=capturable-True+foreach-True[gpu-float32]"
OUT_FILES = {"summary.json", "steps.tar.gz", "gpu-run.log", "figures.md"}


def _tool(name: str):
    """A tools/ script (no .py suffix) as a module."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(REPO / "tools" / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _gpu_run(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "gpu-run"), str(out), "--workers", "0", *args],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)


def _no_cuda() -> str | None:
    return backends.get("torch").unavailable("gpu", "float32")


def _torch_missing() -> bool:
    return backends.get("torch").unavailable("cpu", "float32") is not None


needs_torch = pytest.mark.skipif(_torch_missing(), reason="needs torch on the CPU")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """tools/gpu-run --rehearse-on-cpu on two GPU items; its output folder and process."""
    if _torch_missing():
        pytest.skip("needs torch on the CPU")
    out = tmp_path_factory.mktemp("gpu") / "out"
    return out, _gpu_run(out, "--rehearse-on-cpu", "--", CONFORMING, CAPTURABLE)


@pytest.mark.integration
@needs_torch
def test_rehearsal_runs_the_gpu_items_against_their_cpu_twin_and_oracle(rehearsal):
    out, done = rehearsal
    assert {p.name for p in out.iterdir()} == OUT_FILES, done.stdout + done.stderr
    # what the device tool brings back: at most 8 files of plain names, each under 16 MiB
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) and p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    data = storage.read_json(out / "summary.json")
    assert data["run"]["context"]["rehearsal"] is True and data["run"]["context"]["tool"] == "tools/gpu-run"
    assert data["run"]["build"]["torch"]["gpu_device"] == "cpu"
    items = {e["nodeid"]: e for e in data["items"]}
    assert set(items) == {CONFORMING, CAPTURABLE}
    twin = items[CONFORMING]["pairs"]["torch~torch@cpu"]
    # the same gradients and weights on two CPU sessions: bit-identical at every one of the 50 steps
    assert twin["role"] == "device" and twin["steps"] == 50 and twin["observed"] == "conform"
    assert twin["max"]["params"] == {"abs": 0.0, "rel": 0.0, "ulp": 0.0}
    assert items[CONFORMING]["pairs"]["torch~oracle"]["observed"] == "conform"
    assert items[CONFORMING]["hparams"]["torch"]["foreach"] is None
    # capturable needs a device that can capture graphs: the rehearsal's CPU refuses it, and says so
    assert items[CAPTURABLE]["outcome"] == "error" and "capturable" in items[CAPTURABLE]["reason"]
    assert done.returncode == 1
    figures = (out / "figures.md").read_text()
    assert f"| `{CONFORMING}` | skipped | torch~torch@cpu | - | 0 / 0 / 0 |" in figures
    assert "REHEARSAL on the CPU" in figures


@pytest.mark.integration
@needs_torch
def test_unpacked_rehearsal_merges_with_a_cpu_run_and_states_what_was_measured(rehearsal, tmp_path):
    out, _ = rehearsal
    gpu_dir = _tool("gpu-unpack").unpack(out, tmp_path / "gpu")
    data = storage.read_json(gpu_dir / "summary.json")
    assert all((gpu_dir / e["jsonl"]).stat().st_size > 0 for e in data["items"] if e["outcome"] != "error")
    # a CPU run of the same GPU item: skipped there (no CUDA), so the GPU run's copy, with figures, wins
    reports = tmp_path / "reports"
    cpu = subprocess.run([sys.executable, "-m", "conformance", "run", "-n", "0", f"--reports-dir={reports}",
                          "--run-id=cpu", "--no-html", "cases/gpu_variants.yaml", "-k", "gpu_float16 and not large"],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert cpu.returncode == 0, cpu.stdout + cpu.stderr
    merged = tmp_path / "merged"
    done = subprocess.run([sys.executable, "-m", "conformance", "report", str(gpu_dir), str(reports / "cpu"),
                           "--out", str(merged)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = storage.read_json(merged / "summary.json")
    item = {e["nodeid"]: e for e in summary["items"]}[CONFORMING]
    assert item["origin"]["run"] == data["run"]["id"] and "torch~torch@cpu" in item["pairs"]
    assert (merged / "index.html").exists()
    found = devices.devices(summary)
    gpu_rows = [r for r in found["measured"] if (r["framework"], r["device"]) == ("torch", "gpu")]
    assert gpu_rows and gpu_rows[0]["rehearsal"] and gpu_rows[0]["runs"] == [data["run"]["id"]]
    if backends.get("mindspore").unavailable("cpu", "float32"):  # the torch-only environment, as on the GPU machine
        (missing,) = [r for r in found["not_measured"] if (r["framework"], r["device"]) == ("mindspore", "gpu")]
        assert "cannot travel" not in missing["reasons"][0]["reason"]  # the adapter's reason ...
        assert any("800 MB" in s for s in missing["stated"])  # ... and what gpu-run recorded on why


@pytest.mark.integration
@needs_torch
@pytest.mark.skipif(not _no_cuda(), reason="this machine has a CUDA device: GPU items run here")
def test_without_a_gpu_the_gpu_items_skip_with_the_reason_and_the_command_succeeds(tmp_path):
    out = tmp_path / "out"
    done = _gpu_run(out, "--", CONFORMING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in out.iterdir()} == OUT_FILES
    (entry,) = storage.read_json(out / "summary.json")["items"]
    assert entry["outcome"] == "skipped" and _no_cuda() in entry["reason"]
    assert entry["pairs"] == {}


@pytest.mark.integration
def test_gpu_run_refuses_a_used_output_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    done = _gpu_run(tmp_path)
    assert done.returncode == 2 and "is not empty" in done.stderr


def test_every_travelling_wheel_names_its_module_and_a_pin():
    requirements = _tool("gpu-run").wheel_requirements()
    assert {module for _, module in requirements} >= {"jsonschema", "referencing", "rpds", "jsonschema_specifications"}
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", req) for req, _ in requirements)


def test_tox_torch_only_env_installs_the_travelling_pins():
    tox = (REPO / "tox.ini").read_text()
    section = tox[tox.index("[testenv:torch-only]"):]
    assert "-r tools/gpu-wheels.txt" in section.split("\n[", 1)[0]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tools/fetch-gpu-wheels into a fresh folder (needs PyPI; skipped where it cannot be reached)."""
    folder = tmp_path_factory.mktemp("whl")
    done = subprocess.run([str(REPO / "tools" / "fetch-gpu-wheels"), str(folder)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "total:" not in done.stdout and not list(folder.glob("*.whl")):
        pytest.skip(f"could not download the wheels here: {done.stderr.strip().splitlines()[-1:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.mark.integration
def test_fetched_wheels_are_one_per_pin_for_cpython_312_and_travel(wheels):
    names = sorted(w.name for w in wheels.glob("*.whl"))
    assert len(names) == len(_tool("gpu-run").wheel_requirements())
    assert all(("py3-none-any" in n) or ("cp312" in n and "x86_64" in n) for n in names), names
    assert sum(w.stat().st_size for w in wheels.glob("*.whl")) < 64 * 2**20


@pytest.mark.integration
def test_missing_modules_are_installed_from_the_wheels_and_a_missing_wheel_says_what_to_do(wheels, tmp_path):
    tool = _tool("gpu-run")
    site = tmp_path / "site"
    installed = tool.install_missing(wheels, site, [("jsonschema==4.26.0", "no_such_module_here")])
    assert installed == [w.name for w in wheels.glob("jsonschema-4.26.0-*.whl")]
    assert (site / "jsonschema" / "__init__.py").exists()
    with pytest.raises(SystemExit, match="run tools/fetch-gpu-wheels"):
        tool.install_missing(tmp_path / "empty", site, [("jsonschema==4.26.0", "no_such_module_here")])


def test_evidence_counts_sides_that_ran_and_keeps_each_reason():
    run = {"id": "g", "cpu": "Some CPU", "build": {"torch": {"gpus": ["NVIDIA H200"], "gpu_device": "cuda"}},
           "context": {"not_measured": {"mindspore@gpu": "no wheel travels"}}}
    item = {"nodeid": "n", "device": "gpu", "dtype": "float32", "hparams": {"torch": {}, "torch@cpu": {}},
            "skipped_sides": {"mindspore": "mindspore is not installed in this environment",
                              "mindspore@cpu": "mindspore is not installed in this environment"}}
    probe = {"nodeid": "p", "device": "cpu", "dtype": "float32", "skipped_sides": {"mindspore": "absent"}}
    found = devices.devices({"run": run, "items": [item, {**item, "dtype": "float16"}, probe]})
    assert found["measured"] == [
        {"framework": "torch", "device": "cpu", "items": 2, "dtypes": ["float16", "float32"], "runs": ["g"],
         "machines": ["Some CPU"], "rehearsal": False},
        {"framework": "torch", "device": "gpu", "items": 2, "dtypes": ["float16", "float32"], "runs": ["g"],
         "machines": ["NVIDIA H200"], "rehearsal": False}]
    assert found["not_measured"] == [
        {"framework": "mindspore", "device": "gpu", "items": 2, "dtypes": ["float16", "float32"],
         "reasons": [{"reason": "mindspore is not installed in this environment", "items": 2}],
         "stated": ["no wheel travels"]}]
    json.dumps(found)  # JSON-able, for templates and summary files
