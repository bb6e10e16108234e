"""`python -m conformance replay TRACE`: a recorded torch loop fed to every installed AdaMax implementation.

The trace is checked first, every file read once (headers, sizes, CRC-32s): a bad trace is one TraceError
and exit status 2 before any run folder exists. Then two cases are written into a case file in a
temporary folder and run by pytest with the conformance plugin, so the output is an ordinary run folder
(reports/<run-id>/: summary.json, index.html, one page per item) that `report`, `docs` and `compare` read:

- `<name>_ported`: every implementation from the recorded initial parameters on the recorded gradients,
  with the hyper-parameters a careful porter writes (conformance/traces/porting.py);
- `<name>_native_defaults`: the same, ported with only what the torch code wrote, each framework's
  defaults for the rest.

Both expect agreement within the trace's tolerance: a divergence fails its item, with the first divergent
step and element, the causes it is attributed to and what to do (exit 1); all agreeing is exit 0. The
summary printed at the end is read from the run's summary.json, as every page is.
"""
from __future__ import annotations

import json
import math
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from conformance import backends
from conformance.numbers import fmt
from conformance.report import advice
from conformance.results import storage
from conformance.traces.format import Trace, TraceError, open_trace

INTERRUPTED = 130  # the run was interrupted (pytest's 2 would read as a bad trace)
HARNESS_ERROR = 3  # pytest could not run the cases (usage or internal error)


def default_frameworks(dtype: str) -> list[str]:
    """Every implementation installed here whose adapter replays traces, torch first."""
    return [name for name in backends.names() if backends.get(name).replays_traces
            and backends.get(name).unavailable("cpu", dtype) is None]


def case_id(trace: Trace) -> str:
    """The trace folder's name as a case id (letters, digits and _.=+- only)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", trace.path.resolve().name).strip("_") or "trace"


def case_file(trace: Trace, frameworks: list[str]) -> str:
    """The case file of a replay: the two ports of the trace, on the CPU, every framework."""
    path, name = str(trace.path.resolve()), case_id(trace)
    def common() -> dict[str, Any]:  # a fresh mapping per case: no YAML anchors in the file
        return {"gradients": {"mode": "replay", "source": "trace", "trace": path}, "devices": ["cpu"],
                "frameworks": list(frameworks), "expect": "conform"}

    cases = [{"id": f"{name}_ported", "description": "The recorded run replayed with the hyper-parameters a "
              "careful porter writes (every value explicit, groups as group dicts).", **common()},
             {"id": f"{name}_native_defaults", "description": "The recorded run replayed as ported with only the "
              "values the torch code wrote; each framework's defaults for the rest.",
              **common(), "optimizer": {"defaults": "native"}}]
    head = f"# written by `python -m conformance replay` for the trace {path}\n"
    rerun = f"python -m conformance replay {shlex.quote(path)}"
    return head + yaml.safe_dump({"rerun": rerun, "cases": cases}, sort_keys=False)


def check(path: Path, frameworks: list[str] | None) -> tuple[Trace, list[str]]:
    """The trace, read in full and checked, and the frameworks to run (TraceError, ValueError if bad)."""
    trace = open_trace(path)
    trace.verify()
    dtypes = sorted({p.dtype for p in trace.parameters})
    if len(dtypes) > 1:
        raise TraceError(trace.path, "manifest.json", f"the parameters have dtypes {', '.join(dtypes)}; a replay "
                                                      "needs one")
    chosen = frameworks or default_frameworks(trace.dtype)
    unknown = [f for f in chosen if f not in backends.names()]
    if unknown or len(chosen) < 2 or chosen[0] != "torch":
        raise ValueError(f"--frameworks: torch first, then at least one of {', '.join(backends.names()[1:])}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else f"; got {' '.join(chosen) or 'none'}"))
    return trace, chosen


def replay(path: Path, frameworks: list[str] | None, reports_dir: Path, run_id: str | None, workers: str,
           extra: list[str], command: str | None = None) -> int:
    """Check the trace, run its cases, print the summary; the exit status (module docstring). `command`:
    the user's command line, which the report shows (run.context.command) instead of pytest's."""
    import pytest

    try:
        trace, chosen = check(path, frameworks)
    except (TraceError, ValueError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    run_id = run_id or storage.new_run_id()
    reports_dir = reports_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="conformance-replay-") as tmp:
        cases = Path(tmp) / "cases" / f"{case_id(trace)}.yaml"
        cases.parent.mkdir()
        cases.write_text(case_file(trace, chosen), encoding="utf-8")
        context = Path(tmp) / "context.json"
        context.write_text(json.dumps({"command": command or f"python -m conformance replay {trace.path}",
                                       "trace": str(trace.path.resolve())}), encoding="utf-8")
        # our summary follows pytest's: no short summary (its paths name the temporary folder), and the
        # frameworks' captured log noise stays in the run's logs/
        argv = ["-p", "conformance.plugin", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q", "-rN",
                "--show-capture=no", f"--run-context={context}",
                f"--rootdir={tmp}", f"--reports-dir={reports_dir}", f"--run-id={run_id}",
                "-W", "ignore::DeprecationWarning", *(["-n", workers] if workers != "0" else []), *extra, str(cases)]
        code = int(pytest.main(argv))
    summary = reports_dir / run_id / "summary.json"
    if summary.is_file():
        print("\n".join(summary_lines(storage.load_summary(summary), trace)))
        print(f"report: {reports_dir / run_id / 'index.html'}")
    if code in (0, 1):
        return code
    return INTERRUPTED if code == pytest.ExitCode.INTERRUPTED else HARNESS_ERROR


def _pair_line(label: str, pair: dict[str, Any]) -> str:
    first = pair.get("first_divergence")
    if not first:
        top = (pair.get("max") or {}).get("params") or {}
        return f"    {label}: conform (max params abs {fmt(top.get('abs'))} over {pair.get('steps')} steps)"
    left, right = label.split("~")
    return (f"    {label}: {pair['observed']} from step {first['step']} ({first['quantity']} {first['tensor']} "
            f"element {first['at']}: {left}={fmt(first['a'])} {right}={fmt(first['b'])}, abs {fmt(first['abs'])})")


def summary_lines(data: dict[str, Any], trace: Trace) -> list[str]:
    """The replay's findings in words: per item its pairs, the causes and what to do."""
    count = sum(math.prod(p.shape) for p in trace.parameters)
    lines = [f"replay of {trace.path}: {trace.steps} steps, {len(trace.parameters)} parameters "
             f"({count:,} values), {trace.dtype}"]
    if trace.note:
        lines.append(f"  note: {trace.note}")
    for entry in data["items"]:
        rows = advice.rows(entry) if entry.get("first_divergent_step") else []
        causes = ", ".join(f"{r['id']}" + (f" ({'beyond' if r['effect']['beyond'] else 'within'} the tolerance)"
                                           if r["effect"] else "") for r in rows) or "none"
        lines.append(f"  {entry['case']} [{entry.get('device')}-{entry.get('dtype')}]: {entry['outcome']}"
                     + (f" ({entry['reason']})" if entry["outcome"] in ("skipped", "error", "crashed") else
                        f"; attributed to: {causes}" if entry.get("first_divergent_step") else ""))
        lines += [_pair_line(label, pair) for label, pair in (entry.get("pairs") or {}).items()
                  if pair.get("role") == "primary"]
        torch_names = {native: p["name"] for p in (entry.get("trace") or {}).get("parameters", [])
                       for native in (p.get("names") or {}).values()}
        for label, names in (entry.get("decay_skipped") or {}).items():
            shown = [f"{n} (torch {torch_names[n]})" if n in torch_names and torch_names[n] != n else n for n in names]
            lines.append(f"    {label}'s weight decay skips {len(names)} parameter(s): {', '.join(shown)}")
        for row in rows:
            lines.append(f"    {row['id']} ({row['title']}){_effect_words(row['effect'])}")
            lines.append(f"      what to do: {row['fix'] or 'no fix exists in mindspore.nn.AdaMax'}")
    return lines


def _effect_words(effect: dict[str, Any] | None) -> str:
    if effect is None:
        return ""
    where = "beyond" if effect["beyond"] else "within"
    return (f": its own effect at step {effect['step']} is params {fmt(effect['params'])}, state "
            f"{fmt(effect['state'])} ({where} the tolerance: atol params {fmt(effect['atol']['params'])}, state "
            f"{fmt(effect['atol']['state'])})")
