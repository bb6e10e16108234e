"""Benchmark of the harness itself: overhead over the frameworks' own work, memory, suite scaling, start-up.

Everything that is compared runs in one process and one run, interleaved repetition by repetition
(bare, harness with the oracle stride, harness with oracles every step, bare, ...), and medians are
reported, so a noisy machine shifts both sides of a ratio alike. The load average is recorded before
and after. Memory and start-up run in fresh subprocesses (`python -m conformance.bench.measure --child ...`),
because peak RSS and first-import costs are per-process quantities.

Overhead and memory are measured under each requested load: `idle` (the bench alone) and `busy` (one
spinning process per CPU but one, started by the bench, so the checker thread competes for a core as
on a machine running other work). A harness whose memory stays flat only while its checker keeps up
would pass idle and grow under `busy`; memory growth is reported per size and load.

The bare loop does the frameworks' work and nothing else: the same generated gradients (drawn the same
way), cast once, stepped through the same adapter sessions (torch.optim.Adamax, mindspore.nn.AdaMax);
nothing is read back, compared or written. A third loop, `read`, adds only reading every side's
parameters and state back into NumPy each step (views of the CPU tensors: adapters do not copy).

Replay of a recorded trace (`python -m conformance replay`): a synthetic trace of the linear model
(`synthetic_trace`, written by the recorder's own writer) is measured the same way, its overhead (the bare
loop reads the same trace files) and its peak RSS per step count (rows with `"source": "trace"`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from conformance import backends
from conformance.cases.case import Case, Item
from conformance.cases.loader import build_case
from conformance.engine import models
from conformance.results.storage import environment, new_run_id, write_json
from conformance.traces.writer import TraceWriter

# linear in=out=n: n*n + n parameters (992, 100172, 130682, 1001000); 131k is the largest model whose
# oracles run at every step (runner.AUTO_ORACLE_PARAMS), so every step is copied for the checker.
SIZES = {"1k": 31, "100k": 316, "131k": 361, "1M": 1000}
LOADS = ("idle", "busy")
DTYPE = "float32"


def bench_case(width: int, steps: int, stride: str | int = "auto") -> Case:
    """A replay case on a linear width x width model: optimizer work only, both frameworks, CPU."""
    entry = {"id": f"bench_{width}", "model": {"kind": "linear", "in": width, "out": width},
             "gradients": {"mode": "replay", "source": "generated", "seed": 5}, "steps": steps,
             "devices": ["cpu"], "dtype": DTYPE, "oracle_stride": stride,
             "optimizer": {"lr": 0.002, "betas": [0.9, 0.999], "eps": 1.0e-8, "weight_decay": 0.0},
             "tolerance": {"params": {"atol": 2.5e-7}, "state": {"atol": 1.0e-6}}}
    return build_case(entry, "<bench>", 1, "")


def synthetic_trace(path: Path, width: int, steps: int) -> Path:
    """A trace of the linear width x width model as conformance.record writes one (TraceWriter): the
    bench's initial weights, gradients drawn as the generated replay draws them, float32."""
    spec = bench_case(width, 1).model
    init = {name: a.astype(DTYPE) for name, a in models.init_arrays(spec).items()}
    group = {"params": [0, 1], "lr": 0.002, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    values = {k: v for k, v in group.items() if k != "params"}
    writer = TraceWriter(path, [{"name": f"fc.{n.split('.')[-1]}", "shape": list(a.shape), "dtype": DTYPE,
                                 "module": "Linear", "module_class": "torch.nn.modules.linear.Linear"}
                                for n, a in init.items()],
                         {"class": "torch.optim.Adamax", "constructor": values, "torch_defaults": values,
                          "groups": [group]}, {"bench": "conformance.bench.measure"})
    writer.start(init.values())
    rng = np.random.default_rng(5)
    for _ in range(steps):
        writer.step([0.002], None, ((i, rng.standard_normal(a.shape, dtype=np.float32))
                                    for i, a in enumerate(init.values())))
    writer.finish()
    return path


def trace_case(path: Path, steps: int, stride: str | int = "auto") -> Case:
    """A replay of `path`'s first steps, as `python -m conformance replay` ports it: both frameworks, CPU."""
    entry = {"id": "bench_trace", "gradients": {"mode": "replay", "source": "trace", "trace": str(path)},
             "steps": steps, "devices": ["cpu"], "oracle_stride": stride}
    return build_case(entry, "<bench>", 1, "")


def bare_loop(case: Case, read: bool = False) -> None:
    """The frameworks' own work for `case`: open both sessions, step them on the replayed gradients
    (with `read`, also copy parameters and state out after each step, as any comparison must)."""
    item = Item(case, "cpu", DTYPE)
    init = models.initial(case)
    sessions = [backends.get(f).open(backends.base.SessionSpec(item, "cpu", init, case.optimizer.neutral()))
                for f in case.frameworks]
    stream = models.gradient_stream(case, init)
    for _ in range(case.steps):
        grads = [np.asarray(g, dtype=DTYPE) for g in next(stream)]
        for session in sessions:
            session.step(grads)
            if read:
                session.params(), session.state()


def harness(case: Case, workdir: Path) -> dict[str, Any]:
    """The full item run the suite does: sessions, oracles, comparator, trackers, JSONL."""
    from conformance.engine.runner import run_item

    return run_item(Item(case, "cpu", DTYPE), workdir)


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def overhead(sizes: list[str], steps: int, repeats: int, workdir: Path, load: str = "idle",
             trace: Path | None = None) -> list[dict[str, Any]]:
    """Median seconds of bare loop vs harness (strided oracles, full oracles), interleaved, per size; with
    `trace`, of replaying that trace (one size: the trace's)."""
    rows = []
    for label in sizes:
        width = SIZES[label]
        make = (lambda n, stride="auto": trace_case(trace, n, stride)) if trace else (
            lambda n, stride="auto": bench_case(width, n, stride))
        cases = {"bare": make(steps), "stride": make(steps, "auto"), "full": make(steps, 1)}
        runs: dict[str, Callable[[], Any]] = {
            "bare": lambda: bare_loop(cases["bare"]),
            "read": lambda: bare_loop(cases["bare"], read=True),
            "stride": lambda: harness(cases["stride"], workdir / f"{label}-stride"),
            "full": lambda: harness(cases["full"], workdir / f"{label}-full")}
        harness(make(2, 1), workdir / "warmup")  # first-use costs belong to start-up, not here
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for key, fn in runs.items():
                times[key].append(_timed(fn))
        entry = harness(cases["stride"], workdir / f"{label}-check")
        med = {k: statistics.median(v) for k, v in times.items()}
        jsonl = workdir / f"{label}-stride" / f"{Item(cases['stride'], 'cpu', DTYPE).slug}.jsonl"
        rows.append({"size": label, "load": load, "source": "trace" if trace else "generated",
                     "parameters": width * width + width, "steps": steps,
                     "repeats": repeats,
                     "seconds": times, "median_s": med, "min_s": {k: min(v) for k, v in times.items()},
                     "ratio_read": med["read"] / med["bare"],
                     "ratio_stride": med["stride"] / med["bare"], "ratio_full": med["full"] / med["bare"],
                     "oracle": entry["oracle"], "outcome": entry["outcome"],
                     "jsonl_bytes_per_step": jsonl.stat().st_size / steps})
    return rows


def _child(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run `python -m conformance.bench.measure --child ...` in a fresh process; its last stdout line is JSON."""
    env = {**os.environ, "GLOG_v": os.environ.get("GLOG_v", "3")}
    out = subprocess.run([sys.executable, "-m", "conformance.bench.measure", "--child", *argv], capture_output=True,
                         text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {argv} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(size: str, step_counts: list[int], timeout: float, load: str = "idle",
           trace: Path | None = None) -> list[dict[str, Any]]:
    """Peak RSS of one harness run per step count, each in a fresh process (with `trace`, its replay)."""
    return [{"size": size, "load": load, "source": "trace" if trace else "generated", "steps": n,
             **_child(["memory", size, str(n), *([str(trace)] if trace else [])], timeout)} for n in step_counts]


@contextlib.contextmanager
def background_load(load: str) -> Iterator[str]:
    """`idle`: nothing added. `busy`: one spinning process per CPU but one (at least one) for the
    duration, so the bench's own second thread no longer has a core to itself. Yields a description."""
    if load == "idle":
        yield "idle: no load added by the bench"
        return
    count = max(1, (os.cpu_count() or 2) - 1)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield f"busy: {count} spinning process(es) beside the bench ({os.cpu_count()} CPUs)"
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def startup(size: str, timeout: float) -> dict[str, Any]:
    return _child(["startup", size], timeout)


def suite(cases_dir: str, workers: list[str], timeout: float, repeats: int = 1) -> list[dict[str, Any]]:
    """Wall time of the main job, `python -m conformance run <cases_dir> -n N` (items and HTML report),
    for each N ("0": serial), in a temp reports folder. With repeats, the order alternates (0, 2, 2, 0,
    ...) so drift on a shared machine falls on both sides; the median is the figure."""
    times: dict[str, list[float]] = {n: [] for n in workers}
    summaries: dict[str, str] = {}
    for rep in range(repeats):
        for n in (workers if rep % 2 == 0 else list(reversed(workers))):
            with tempfile.TemporaryDirectory() as reports:
                argv = [sys.executable, "-m", "conformance", "run", "-n", n, "--reports-dir", reports, cases_dir]
                started = time.perf_counter()
                out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
                times[n].append(time.perf_counter() - started)
                if out.returncode not in (0, 1):
                    raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout[-2000:]}")
                lines = [line for line in out.stdout.splitlines() if " in " in line and "=" in line]
                summaries[n] = lines[-1].strip("= ") if lines else ""
    rows = [{"workers": n, "seconds": statistics.median(times[n]), "all_seconds": times[n],
             "summary": summaries[n]} for n in workers]
    serial = next((r["seconds"] for r in rows if r["workers"] == "0"), None)
    for row in rows:
        row["speedup"] = serial / row["seconds"] if serial else None
    return rows


def _peak_rss_mib() -> float:
    """This process's own peak RSS: VmHWM of its address space where /proc has it.

    Not getrusage's ru_maxrss: on Linux a child started with vfork (as subprocess does) inherits the
    parent's peak at exec, so every child of a parent that had run the 1M overhead loops reported the
    parent's 1,501 MiB whatever its own steps (measured: the same child alone peaked at 886 MiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)  # Linux: KiB; macOS: bytes


def _child_memory(size: str, steps: int, trace: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        entry = harness(trace_case(Path(trace), steps) if trace else bench_case(SIZES[size], steps), Path(tmp))
    return {"peak_rss_mib": _peak_rss_mib(), "oracle": entry["oracle"], "outcome": entry["outcome"]}


def _child_startup(size: str) -> dict[str, Any]:
    """Import, session opening, first step vs later steps; then a second case of the same shape and a
    new shape in the same process, to see what MindSpore and torch reuse."""
    out: dict[str, Any] = {}
    for name in backends.names():
        started = time.perf_counter()
        backends.get(name).version()  # imports the framework
        out[f"import_{name}_s"] = time.perf_counter() - started
    for tag, width in (("first_case", SIZES[size]), ("same_shape", SIZES[size]), ("new_shape", SIZES[size] + 1)):
        out[tag] = _step_times(bench_case(width, 10))
    return out


def _step_times(case: Case) -> dict[str, Any]:
    item = Item(case, "cpu", DTYPE)
    init = models.init_arrays(case.model)
    stream = models.generated_gradients(case.gradients, list(init), [a.shape for a in init.values()])
    grads = [[np.asarray(g, dtype=DTYPE) for g in next(stream)] for _ in range(case.steps)]
    out: dict[str, Any] = {}
    for name in case.frameworks:
        started = time.perf_counter()
        session = backends.get(name).open(backends.base.SessionSpec(item, "cpu", init, case.optimizer.neutral()))
        out[f"{name}_open_s"] = time.perf_counter() - started
        times = [_timed(lambda g=g: session.step(g)) for g in grads]
        out[f"{name}_first_step_s"] = times[0]
        out[f"{name}_later_step_s"] = statistics.median(times[1:])
    return out


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All four measurements; returns the JSON document that `main` writes. Overhead and memory run
    under each of `args.loads`; suite scaling and start-up on the machine as it is."""
    started = time.time()
    doc: dict[str, Any] = {"id": new_run_id(), "machine": environment(Path.cwd(), {}),
                           "load_before": load_average(), "gpu": "none used (CPU only)", "loads": {},
                           "overhead": [], "memory": []}
    for name in backends.names():
        doc["machine"][name] = backends.get(name).version()
    with tempfile.TemporaryDirectory() as traces:  # the replay's synthetic trace, written once (4 GB at 1M x 1,000)
        trace = synthetic_trace(Path(traces) / "trace", SIZES[args.replay_size],
                                max([*args.replay_steps, args.steps])) if args.replay_steps else None
        for load in args.loads:
            with background_load(load) as description, tempfile.TemporaryDirectory() as tmp:
                doc["loads"][load] = {"description": description, "load_average_before": load_average()}
                if args.sizes:
                    doc["overhead"] += overhead(args.sizes, args.steps, args.repeats, Path(tmp), load)
                if args.sizes and trace:
                    doc["overhead"] += overhead([args.replay_size], args.steps, args.repeats, Path(tmp), load, trace)
                for size in args.memory_sizes if args.memory_steps else ():
                    doc["memory"] += memory(size, args.memory_steps, args.timeout, load)
                if trace:
                    doc["memory"] += memory(args.replay_size, args.replay_steps, args.timeout, load, trace)
                doc["loads"][load]["load_average_after"] = load_average()
    if args.suite:
        doc["suite"] = suite(args.suite, args.workers, args.timeout, args.suite_repeats)
    if not args.no_startup:
        doc["startup"] = startup(args.startup_size, args.timeout)
    doc["load_after"] = load_average()
    doc["memory_growth"] = growth(doc["memory"])
    doc["seconds"] = time.time() - started
    return doc


def table(doc: dict[str, Any]) -> str:
    """Plain-text summary of a bench document."""
    lines = [f"machine: {doc['machine']['cpu']} x{doc['machine']['cpu_count']}; load average {doc['load_before']}"
             f" -> {doc['load_after']}; {doc['gpu']}"]
    for info in doc.get("loads", {}).values():
        lines.append(f"load {info['description']}; load average {info['load_average_before']} -> "
                     f"{info['load_average_after']}")
    if doc.get("overhead"):
        lines += ["overhead (median s; ratio to the bare loop)",
                  f"  {'load':>4} {'size':>5} {'params':>9} {'steps':>5} {'bare':>8} {'read':>8} {'x':>6} "
                  f"{'stride':>8} {'x':>6} {'full':>8} {'x':>6}  oracle stride"]
    for r in doc.get("overhead", []):
        m = r["median_s"]
        lines.append(f"  {r.get('load', 'idle'):>4} {_label(r):>5} {r['parameters']:>9} {r['steps']:>5} "
                     f"{m['bare']:8.2f} {m['read']:8.2f} {r['ratio_read']:6.2f} {m['stride']:8.2f} "
                     f"{r['ratio_stride']:6.2f} {m['full']:8.2f} {r['ratio_full']:6.2f}  "
                     f"{r['oracle']['stride']} ({r['oracle']['steps_checked']} of {r['steps']} steps checked)")
    if doc.get("memory"):
        lines.append("memory (peak RSS, fresh process each)")
        lines += [f"  {r.get('load', 'idle'):>4} {_label(r):>5} x {r['steps']:>6} steps: {r['peak_rss_mib']:8.1f} MiB"
                  for r in doc["memory"]]
        for g in doc.get("memory_growth") or []:
            lines.append(f"  growth {g['load']:>4} {_label(g):>5}: {g['percent']:+.2f}% from {g['from']} to "
                         f"{g['to']} steps")
    if doc.get("suite"):
        lines.append("suite wall time")
        lines += [f"  -n {r['workers']}: {r['seconds']:7.1f} s  speedup {r['speedup']:.2f}x  ({r['summary']})"
                  for r in doc["suite"]]
    if doc.get("startup"):
        s = doc["startup"]
        lines.append("start-up (s)")
        lines.append("  import: " + ", ".join(f"{k[7:-2]} {v:.2f}" for k, v in s.items() if k.startswith("import_")))
        for tag in ("first_case", "same_shape", "new_shape"):
            lines.append(f"  {tag:>10}: " + ", ".join(f"{k[:-2]} {v:.4f}" for k, v in s[tag].items()))
    return "\n".join(lines)


def _label(row: dict[str, Any]) -> str:
    """A row's size, marked `<size> trace` for a replayed trace."""
    return row["size"] + (" trace" if row.get("source") == "trace" else "")


def growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (size, load, source): peak RSS growth from the fewest to the most steps measured, in percent."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["size"], row.get("load", "idle"), row.get("source", "generated")), []).append(row)
    out = []
    for (size, load, source), group in groups.items():
        if len(group) < 2:
            continue
        low, high = min(group, key=lambda r: r["steps"]), max(group, key=lambda r: r["steps"])
        out.append({"size": size, "load": load, "source": source, "from": low["steps"], "to": high["steps"],
                    "percent": 100.0 * (high["peak_rss_mib"] - low["peak_rss_mib"]) / low["peak_rss_mib"]})
    return out


def main(args: argparse.Namespace) -> int:
    doc = run(args)
    out = Path(args.output) if args.output else Path("reports") / f"bench-{doc['id']}.json"
    write_json(out, doc)
    print(table(doc))
    print(f"written: {out}")
    return 0


def _child_main(argv: list[str]) -> None:
    kind, size, *rest = argv
    result = _child_memory(size, int(rest[0]), *rest[1:]) if kind == "memory" else _child_startup(size)
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child_main(sys.argv[2:])
