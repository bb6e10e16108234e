"""The one writer of a trace folder (the layout is conformance/traces/format.py's): the torch recorder
(conformance/traces/record.py) and the benchmark's synthetic traces both write through it.

A step is written into `steps/<n>.partial/`, its step.json last, and renamed to `steps/<n>/` in one
rename once everything is on disk; the manifest is written before the first step (status `recording`)
and again by `finish` (`complete`, or `interrupted` with the error), each time through a temporary
name and one rename. Gradients arrive one at a time (an iterable), so the writer never holds more
than one array.
"""
from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from conformance.traces.format import FORMAT, MANIFEST, VERSION, init_file, step_dir


def crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes in C order (what the .npy file holds after its header)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def absmax(array: np.ndarray) -> float | None:
    """The largest finite magnitude in an array (None if it has none), without a temporary copy."""
    if not array.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        top = max(abs(float(np.fmax.reduce(array, axis=None))), abs(float(np.fmin.reduce(array, axis=None))))
    return top if np.isfinite(top) else None


def write_array(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Write one .npy file (no pickle); returns what the trace keeps of it: its CRC-32 and absmax."""
    array = np.ascontiguousarray(array)
    with path.open("wb") as handle:
        np.lib.format.write_array(handle, array, allow_pickle=False)
    return {"crc32": crc32(array), "absmax": absmax(array)}


def write_json(path: Path, data: Any) -> None:
    """Write a JSON file through a temporary name and one rename: never half a manifest."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class TraceWriter:
    """Writes one trace: `start` (initial parameters and manifest), `step` per optimizer step, `finish`.

    parameters: [{"name", "shape", "dtype", "module", "module_class"}], model order; optimizer: {"class",
    "constructor", "torch_defaults", "groups"} as format.py reads them; producer: who wrote it."""

    def __init__(self, path: str | os.PathLike, parameters: list[dict[str, Any]], optimizer: dict[str, Any],
                 producer: dict[str, Any]):
        self.path, self.steps = Path(path), 0
        self.manifest: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "producer": producer, "parameters": parameters, "init": [], "optimizer": optimizer,
            "status": "recording", "steps": 0, "error": None}

    def start(self, init: Iterable[np.ndarray]) -> None:
        """Create the folder (it must not exist, or be empty), write the initial parameters and the manifest."""
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(f"{self.path}: exists and is not an empty folder; a trace is written into a "
                                  "new folder")
        (self.path / "steps").mkdir(parents=True, exist_ok=True)
        (self.path / "init").mkdir()
        self.manifest["init"] = [write_array(self.path / init_file(i), array) for i, array in enumerate(init)]
        write_json(self.path / MANIFEST, self.manifest)

    def step(self, lrs: list[float], loss: float | None, grads: Iterable[tuple[int, np.ndarray]]) -> None:
        """One complete step: each group's learning rate, the loss (or None), and (index, gradient) of every
        parameter that has one, written one at a time."""
        step = self.steps + 1
        partial = self.path / f"{step_dir(step)}.partial"
        partial.mkdir()
        facts = {str(index): write_array(partial / f"g{index:05d}.npy", grad) for index, grad in grads}
        record = {"step": step, "lr": [float(v) for v in lrs], "loss": loss, "grads": facts}
        (partial / "step.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.rename(partial, self.path / step_dir(step))
        self.steps = step

    def finish(self, error: str | None = None) -> None:
        """The manifest's last word: complete, or interrupted by `error`, and the number of complete steps."""
        self.manifest.update(status="complete" if error is None else "interrupted", steps=self.steps, error=error)
        write_json(self.path / MANIFEST, self.manifest)
