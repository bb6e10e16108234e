"""The trace folder: a versioned manifest plus one NumPy `.npy` file per array, and its reader.

A trace is what `conformance.record` writes while a user's torch loop trains (docs/traces.md):

    TRACE/manifest.json            format, version, parameters (name, shape, dtype, owning module), the
                                   optimizer's class, defaults and groups, and the recording's status
    TRACE/init/p00000.npy ...      the initial parameters, model order (index = position in `parameters`)
    TRACE/steps/000001/step.json   that step: the learning rate of each group, the loss (or null), and
                                   which parameters had a gradient, each with the CRC-32 of its bytes and
                                   its largest magnitude (the default tolerance of a replay scales with it)
    TRACE/steps/000001/g00000.npy  the gradient parameter 0 had at `optimizer.step()`

A step is written into `steps/<n>.partial/` and renamed to `steps/<n>/` once all its files are on disk,
so a folder without the suffix is a complete step whatever happened afterwards; the manifest is
rewritten (atomically) at the end with the status `complete` or `interrupted` and the step count. `.npy`
is numpy's own documented format (a header with dtype and shape, then the raw bytes), read here without
pickle; nothing in a trace is executable.

Reading checks everything a replay depends on and says what is wrong in one TraceError naming the file
and the step: not a trace folder, another format version, a bad manifest key, a missing or stray step, a
truncated or corrupt array (header, size, CRC-32), a shape or dtype that is not the parameter's, no
complete step at all. A last step left `.partial` (a crash or Ctrl-C inside `step()`) is not an error:
the complete prefix replays and `Trace.note` says so.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "adamax-trace"
VERSION = 1
MANIFEST = "manifest.json"
STATUSES = ("recording", "complete", "interrupted")
DTYPES = ("float16", "float32", "float64")
HPARAMS = ("lr", "betas", "eps", "weight_decay")  # each group's neutral hyper-parameters
_STEP = re.compile(r"^(\d{6})(\.partial)?$")


class TraceError(Exception):
    """A trace cannot be replayed: the message names the trace, the file inside it, the step and what
    is wrong; the command line turns it into exit status 2."""

    def __init__(self, trace: Path | str, file: str | None, message: str, step: int | None = None):
        self.trace, self.file, self.step, self.message = str(trace), file, step, message
        where = os.path.join(self.trace, file) if file else self.trace
        super().__init__(f"{where}: " + (f"step {step}: " if step is not None else "") + message)


def init_file(index: int) -> str:
    return f"init/p{index:05d}.npy"


def step_dir(step: int) -> str:
    return f"steps/{step:06d}"


def grad_file(step: int, index: int) -> str:
    return f"{step_dir(step)}/g{index:05d}.npy"


@dataclass(frozen=True)
class Parameter:
    name: str  # the torch name (model.named_parameters()), or group<g>.param<i> without a model
    shape: tuple[int, ...]
    dtype: str
    module: str  # the owning module's class name (LayerNorm, Embedding, ...), "" when unknown
    module_class: str  # its qualified name (torch.nn.modules.normalization.LayerNorm)


@dataclass(frozen=True)
class Group:
    params: tuple[int, ...]  # parameter indices
    hparams: dict[str, Any]  # HPARAMS as torch held them (betas a pair)
    options: dict[str, Any]  # maximize, foreach, differentiable, capturable


@dataclass
class Trace:
    """A trace's manifest and its complete steps, checked; arrays are read one step at a time."""

    path: Path
    parameters: list[Parameter]
    groups: list[Group]
    optimizer: dict[str, Any]  # class, defaults (torch's defaults, for `defaults: native` ports)
    steps: int  # complete steps, 1..steps
    status: str
    note: str | None  # why fewer steps than the loop meant may be here (interrupted, last step incomplete)
    lrs: list[tuple[float, ...]] = field(default_factory=list)  # per step, one per group
    losses: list[float | None] = field(default_factory=list)
    grad_absmax: float = 0.0  # the largest finite gradient magnitude of any step
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        return self.parameters[0].dtype

    @property
    def init_absmax(self) -> float:
        """The largest finite magnitude of any initial parameter."""
        return max((float(f["absmax"]) for f in self.manifest["init"] if f.get("absmax") is not None), default=0.0)

    def init_arrays(self) -> dict[str, np.ndarray]:
        """The recorded initial parameters, torch names, model order."""
        out = {}
        for i, param in enumerate(self.parameters):
            out[param.name] = _read(self, init_file(i), None, param, self.manifest["init"][i]["crc32"])
        return out

    def gradients(self, steps: int | None = None) -> Iterator[list[np.ndarray | None]]:
        """Each step's gradients (None: the parameter had none at that step), read when asked for: one
        step's arrays at a time, whatever the number of steps."""
        for step in range(1, (steps or self.steps) + 1):
            record = _step_record(self, step)
            grads: list[np.ndarray | None] = [None] * len(self.parameters)
            for key, facts in record["grads"].items():
                index = int(key)
                grads[index] = _read(self, grad_file(step, index), step, self.parameters[index], facts["crc32"])
            yield grads

    def verify(self) -> None:
        """Read every array once (one at a time) and check its header, size and CRC-32."""
        self.init_arrays()
        for _ in self.gradients():
            pass


def _need(trace: Path, data: dict, key: str, kind: type | tuple, file: str = MANIFEST, step: int | None = None):
    if not isinstance(data, dict) or key not in data:
        raise TraceError(trace, file, f"key '{key}' is missing", step)
    value, kinds = data[key], (kind if isinstance(kind, tuple) else (kind,))
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise TraceError(trace, file, f"key '{key}' is {type(value).__name__}, not {_kind_words(kind)}", step)
    return value


def _kind_words(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"dict": "a mapping", "list": "a list", "str": "text", "int": "a whole number",
                        "float": "a number"}.get(k.__name__, k.__name__) for k in kinds)


def _load_json(trace: Path, file: str, step: int | None = None) -> dict[str, Any]:
    try:
        return json.loads((trace / file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TraceError(trace, file, "missing", step) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TraceError(trace, file, f"not readable JSON ({exc})", step) from None


def _parameters(trace: Path, manifest: dict) -> list[Parameter]:
    raw = _need(trace, manifest, "parameters", list)
    if not raw:
        raise TraceError(trace, MANIFEST, "key 'parameters' is empty: the optimizer had no parameters")
    out = []
    for i, p in enumerate(raw):
        name, shape = _need(trace, p, "name", str), _need(trace, p, "shape", list)
        dtype = _need(trace, p, "dtype", str)
        if dtype not in DTYPES:
            raise TraceError(trace, MANIFEST, f"parameter {i} '{name}': dtype {dtype!r}; replayable: "
                                              f"{', '.join(DTYPES)}")
        if not all(isinstance(s, int) and s >= 0 for s in shape):
            raise TraceError(trace, MANIFEST, f"parameter {i} '{name}': shape {shape} is not a list of sizes")
        out.append(Parameter(name, tuple(shape), dtype, str(p.get("module") or ""), str(p.get("module_class") or "")))
    if len({p.name for p in out}) != len(out):
        raise TraceError(trace, MANIFEST, "parameter names repeat; each parameter needs its own name")
    return out


def _groups(trace: Path, manifest: dict, count: int) -> tuple[dict, list[Group]]:
    optimizer = _need(trace, manifest, "optimizer", dict)
    groups = []
    seen: list[int] = []
    for g, raw in enumerate(_need(trace, optimizer, "groups", list)):
        params = _need(trace, raw, "params", list)
        if not all(isinstance(i, int) and 0 <= i < count for i in params):
            raise TraceError(trace, MANIFEST, f"optimizer group {g}: params must be parameter indices 0..{count - 1}")
        hparams = {k: _need(trace, raw, k, (int, float, list)) for k in HPARAMS}
        seen += params
        groups.append(Group(tuple(params), hparams, {k: v for k, v in raw.items() if k not in (*HPARAMS, "params")}))
    if sorted(seen) != list(range(count)):
        raise TraceError(trace, MANIFEST, "the optimizer groups must hold every parameter exactly once")
    return optimizer, groups


def _step_numbers(trace: Path) -> tuple[list[int], list[int]]:
    """(complete, partial) step numbers found under steps/; anything else there is an error."""
    folder = trace / "steps"
    if not folder.is_dir():
        return [], []
    complete, partial = [], []
    for entry in os.scandir(folder):
        match = _STEP.match(entry.name)
        if not match or not entry.is_dir():
            raise TraceError(trace, f"steps/{entry.name}", "not a step folder (steps/NNNNNN/, written by "
                                                           "conformance.record)")
        (partial if match.group(2) else complete).append(int(match.group(1)))
    return sorted(complete), sorted(partial)


def _count(trace: Path, status: str, recorded: Any) -> tuple[int, str | None]:
    """The number of complete steps, and the note on an unfinished recording; raises on a gap."""
    complete, partial = _step_numbers(trace)
    expected = list(range(1, len(complete) + 1))
    if complete != expected:
        missing = next(want for n, want in zip(complete, expected) if n != want)
        raise TraceError(trace, step_dir(missing), f"missing: the trace has steps up to {complete[-1]} but not "
                                                   f"this one", missing)
    n = len(complete)
    stray = [p for p in partial if p != n + 1]
    if stray:
        raise TraceError(trace, step_dir(stray[0]) + ".partial", "an unfinished step that is not the last", stray[0])
    if status == "complete" and recorded != n:
        first = n + 1 if isinstance(recorded, int) and recorded > n else None
        raise TraceError(trace, step_dir(first) if first else MANIFEST,
                         f"missing: the manifest says the recording completed {recorded} steps, "
                         f"{n} are here", first)
    if n == 0:
        raise TraceError(trace, "steps", "empty trace: no complete step was recorded" +
                         (" (one step was cut off while being written)" if partial else ""))
    notes = []
    if status != "complete":
        notes.append(_STATUS_NOTES[status])
    if partial:
        notes.append(f"step {n + 1} is incomplete (cut off while being written) and is left out")
    return n, ("; ".join(notes) + f": the {n} complete steps replay") if notes else None


_STATUS_NOTES = {"recording": "the recording did not finish (the process ended inside the recorded loop)",
                 "interrupted": "the recorded loop stopped with an exception"}


def _step_record(trace: Trace, step: int) -> dict[str, Any]:
    file = f"{step_dir(step)}/step.json"
    record = _load_json(trace.path, file, step)
    if _need(trace.path, record, "step", int, file, step) != step:
        raise TraceError(trace.path, file, f"says step {record['step']}; it is in the folder of step {step}", step)
    lr = _need(trace.path, record, "lr", list, file, step)
    if len(lr) != len(trace.groups) or not all(isinstance(v, (int, float)) for v in lr):
        raise TraceError(trace.path, file, f"key 'lr' needs one number per optimizer group ({len(trace.groups)})", step)
    grads = _need(trace.path, record, "grads", dict, file, step)
    for key, facts in grads.items():
        if not (key.isdigit() and int(key) < len(trace.parameters)):
            raise TraceError(trace.path, file, f"key 'grads' maps parameter indices to their arrays' facts; {key!r} "
                                               f"is not one of 0..{len(trace.parameters) - 1}", step)
        _facts(trace.path, facts, f"{file}: grads.{key}", step)
    return record


def _facts(trace: Path, facts: Any, file: str, step: int | None = None) -> None:
    """An array's facts: {"crc32": whole number, "absmax": number or null}."""
    _need(trace, facts, "crc32", int, file, step)
    if not isinstance(facts.get("absmax", 0.0), (int, float, type(None))):
        raise TraceError(trace, file, "key 'absmax' is the largest finite magnitude (a number, or null)", step)


def _read(trace: Trace, file: str, step: int | None, param: Parameter, crc: int) -> np.ndarray:
    """One array, checked against its parameter and its CRC-32; a TraceError says what is wrong."""
    path = trace.path / file
    what = f"parameter '{param.name}'"
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise TraceError(trace.path, file, f"missing (the array of {what})", step) from None
    with handle:
        try:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
        except (ValueError, OSError, SyntaxError) as exc:
            raise TraceError(trace.path, file, f"corrupt: not a .npy array file ({exc})", step) from None
        if tuple(shape) != param.shape or fortran:
            raise TraceError(trace.path, file, f"shape {tuple(shape)} but {what} is {param.shape} "
                                               f"in {MANIFEST}", step)
        if dtype.name != param.dtype or dtype.hasobject:
            raise TraceError(trace.path, file, f"dtype {dtype} but {what} is {param.dtype} in {MANIFEST}", step)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = bytearray(handle.read(expected + 1))  # writable: frameworks take the array as it is
    if len(data) != expected:
        raise TraceError(trace.path, file, f"truncated: {len(data):,} bytes of data where {what} needs "
                                           f"{expected:,}" if len(data) < expected else
                         f"corrupt: more bytes than {what} holds ({expected:,})", step)
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if zlib.crc32(data) != crc:
        raise TraceError(trace.path, file, f"corrupt: its CRC-32 is {zlib.crc32(data)}, the trace recorded {crc}",
                         step)
    return array


def open_trace(path: Path | str) -> Trace:
    """Read and check a trace's manifest and step folders (no array data yet: see Trace.verify)."""
    path = Path(path)
    if not path.is_dir():
        raise TraceError(path, None, "not a folder; a trace is the folder conformance.record wrote")
    if not (path / MANIFEST).is_file():
        raise TraceError(path, None, f"not a trace: no {MANIFEST} (a trace folder holds {MANIFEST}, init/ and "
                                     "steps/, written by conformance.record)")
    manifest = _load_json(path, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TraceError(path, MANIFEST, f"not a trace manifest: key 'format' must be {FORMAT!r}")
    if manifest.get("version") != VERSION:
        raise TraceError(path, MANIFEST, f"format version {manifest.get('version')!r}; this suite reads version "
                                         f"{VERSION} (record the loop again with this version)")
    parameters = _parameters(path, manifest)
    optimizer, groups = _groups(path, manifest, len(parameters))
    init = _need(path, manifest, "init", list)
    if len(init) != len(parameters):
        raise TraceError(path, MANIFEST, f"key 'init' needs the facts of each parameter's array ({len(parameters)})")
    for facts in init:
        _facts(path, facts, MANIFEST)
    status = _need(path, manifest, "status", str)
    if status not in STATUSES:
        raise TraceError(path, MANIFEST, f"key 'status' is {status!r}; allowed: {', '.join(STATUSES)}")
    steps, note = _count(path, status, manifest.get("steps"))
    trace = Trace(path, parameters, groups, optimizer, steps, status, note, manifest=manifest)
    for step in range(1, steps + 1):
        record = _step_record(trace, step)
        trace.lrs.append(tuple(float(v) for v in record["lr"]))
        loss = record.get("loss")
        trace.losses.append(float(loss) if isinstance(loss, (int, float)) else None)
        tops = [f.get("absmax") for f in record["grads"].values()]
        trace.grad_absmax = max([trace.grad_absmax, *(float(t) for t in tops if t is not None)])
    return trace
