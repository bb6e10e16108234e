"""Interface items: what each optimizer accepts or rejects, and whether its constructor still has the
names and defaults the suite's mapping assumes. They produce summary entries like numerical items."""
from __future__ import annotations

import time
from typing import Any

from conformance import backends
from conformance.cases.case import ApiCase, Item, ProbeCase
from conformance.errors import first_line
from conformance.results.entry import item_entry, rerun_command


def _header(item: Item) -> str:
    return f"{item.case.file}:{item.case.line}: case '{item.case.id}'"


def _observe(framework: str, request: dict[str, Any]) -> dict[str, Any]:
    """accepts, or the exception type and first message line the framework raised."""
    try:
        backends.get(framework).probe(request)
    except Exception as exc:  # noqa: BLE001 - the framework's verdict on this input is the datum we record
        return {"behaviour": "raises", "type": type(exc).__name__, "message": first_line(str(exc)),
                "text": str(exc)[:4000]}
    return {"behaviour": "accepts"}


def _matches(expected: Any, observed: dict[str, Any]) -> bool:
    if expected == "accepts":
        return observed["behaviour"] == "accepts"
    return (observed["behaviour"] == "raises" and observed["type"] == expected["raises"]
            and expected.get("contains", "") in observed["text"])


def _describe(observed: dict[str, Any]) -> str:
    if observed["behaviour"] == "accepts":
        return "accepts"
    return f"raises {observed['type']}: {observed['message']}"


def _entry(item: Item, started: float, **fields: Any) -> dict[str, Any]:
    return item_entry(item, seconds=round(time.perf_counter() - started, 3), **fields)


def run_probe(item: Item) -> dict[str, Any]:
    """Each framework's behaviour on the probe's input, against the behaviour the case records."""
    case: ProbeCase = item.case
    started = time.perf_counter()
    observed, skipped, wrong = {}, {}, []
    for framework, expected in case.behaviour.items():
        reason = backends.get(framework).unavailable("cpu", "float32")
        if reason:
            skipped[framework] = reason
            continue
        observed[framework] = _observe(framework, case.probe)
        if not _matches(expected, observed[framework]):
            wanted = "accepts" if expected == "accepts" else (
                f"raises {expected['raises']}"
                + (f" containing '{expected['contains']}'" if "contains" in expected else ""))
            wrong.append(f"  {framework}: expected {wanted}, observed {_describe(observed[framework])}")
    kinds = {o["behaviour"] + o.get("type", "") for o in observed.values()}
    fields: dict[str, Any] = {"behaviour": observed, "skipped_sides": skipped, "probe": case.probe,
                              "observed": "conform" if len(kinds) <= 1 else "diverge",
                              "reason": case.reason, "cause": list(case.causes)}
    if wrong:
        message = "\n".join([f"{_header(item)}: a framework's behaviour on this input changed", *wrong,
                             f"  rerun: {rerun_command(item)}"])
        return _entry(item, started, outcome="failed", message=message, **fields)
    if not observed:
        return _entry(item, started, outcome="skipped", **{**fields, "observed": "skipped",
                                                            "reason": "; ".join(skipped.values())})
    return _entry(item, started, outcome="passed", **fields)


def run_api_check(item: Item) -> dict[str, Any]:
    """The installed constructor against the names and defaults the case (and the adapter) assume."""
    case: ApiCase = item.case
    started = time.perf_counter()
    backend = backends.get(case.framework)
    reason = backend.unavailable("cpu", "float32")
    if reason:
        return _entry(item, started, outcome="skipped", observed="skipped", reason=reason)
    api = backend.api()
    installed = api["params"]
    drift = [f"  class: expected {case.cls}, installed {api['class']}"] if api["class"] != case.cls else []
    for name, default in case.params.items():
        if name not in installed:
            drift.append(f"  parameter '{name}' is gone (installed parameters: {', '.join(installed)})")
        elif installed[name]["default"] != default:
            drift.append(f"  parameter '{name}': default changed from {default} to {installed[name]['default']}")
    drift += [f"  new parameter '{name}' (default {info['default']})" for name, info in installed.items()
              if name not in case.params]
    drift += [f"  the adapter maps {neutral} to '{native}', which the installed constructor does not take"
              for native, neutral in api.get("mapping", {}).items() if native not in installed]
    fields = {"api": api, "observed": "diverge" if drift else "conform", "reason": case.reason,
              "cause": list(case.causes)}
    if drift:
        message = "\n".join([f"{_header(item)}: {case.cls} differs from the mapping the suite assumes", *drift,
                             "  update the adapter's mapping and this case once the change is understood",
                             f"  rerun: {rerun_command(item)}"])
        return _entry(item, started, outcome="failed", message=message, **fields)
    return _entry(item, started, outcome="passed", **fields)
