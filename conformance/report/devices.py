"""Which framework ran on which device in a run (or a merge of runs), and what could not run, and why.

The documentation page's evidence section and tools/gpu-run's figures read this instead of guessing from
the machine: a framework counts as measured on a device only where an item's side actually ran there.
Every figure comes from the stored items (`hparams`: the sides that opened; `skipped_sides`: the sides
that could not, with the adapter's reason) and from the runs' own records (`run.build`: the GPUs torch
saw and what its `gpu` device was; `run.context`: what the run's maker stated, e.g. tools/gpu-run on why
MindSpore is absent from the GPU machine).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _runs(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """run id -> that machine run's record (a merged run lists its origins in merged_from)."""
    return {origin["id"]: origin for origin in run.get("merged_from") or [run]}


def _side_device(label: str, item_device: str) -> tuple[str, str]:
    """(framework, device) of a side label: `torch` runs on the item's device, `torch@cpu` on the CPU."""
    framework, _, device = label.partition("@")
    return framework, device or item_device


def sides(entry: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """(framework, device, None if it ran else the reason) for every side of one item."""
    device = entry.get("device")
    if not device or "hparams" not in entry:
        return  # a broken case, or an interface probe (no numbers measured on a device)
    for label in entry.get("hparams") or {}:
        yield (*_side_device(label, device), None)
    skipped = entry.get("skipped_sides") or {}
    for label, reason in skipped.items():
        framework, _, twin = label.partition("@")
        if twin and framework in skipped:
            continue  # a CPU twin only runs beside its GPU side: its absence says nothing more
        yield (*_side_device(label, device), reason)


def _machine(record: dict[str, Any], device: str) -> str:
    """The hardware a run's `device` was: its GPUs as torch named them, or its CPU model."""
    torch = (record.get("build") or {}).get("torch") or {}
    if device == "gpu" and torch.get("gpu_device", "cuda").split(":")[0] != "cpu":
        return ", ".join(torch.get("gpus") or []) or "a GPU torch did not name"
    return record.get("cpu") or "unknown CPU"


def _rehearsal(record: dict[str, Any], framework: str, device: str) -> bool:
    """Whether this run's torch `gpu` was the CPU (tools/gpu-run --rehearse-on-cpu): no GPU evidence."""
    torch = (record.get("build") or {}).get("torch") or {}
    return framework == "torch" and device == "gpu" and torch.get("gpu_device", "").split(":")[0] == "cpu"


def devices(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """What a summary.json (one run or merged) measured per framework and device.

    Returns {"measured": rows, "not_measured": rows}, each row {"framework", "device", "items" (count),
    "dtypes"}; measured rows add "runs" (run ids), "machines" and "rehearsal" (True: torch's `gpu` was
    the CPU, so these are no GPU figures); not-measured rows add "reasons" (each distinct reason with
    its item count) and "stated" (what the runs' makers recorded about it under
    run.context.not_measured, e.g. why MindSpore is not installed on the GPU machine). A framework that
    ran on a device in some items and not in others appears in both lists."""
    records = _runs(data["run"])
    measured: dict[tuple[str, str], dict[str, Any]] = {}
    missing: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in data["items"]:
        origin = (entry.get("origin") or {}).get("run") or data["run"].get("id")
        record = records.get(origin, data["run"])
        for framework, device, reason in sides(entry):
            key = (framework, device)
            if reason is None:
                row = measured.setdefault(key, {"framework": framework, "device": device, "items": 0,
                                                "dtypes": set(), "runs": set(), "machines": set(),
                                                "rehearsal": False})
                row["runs"].add(origin)
                row["machines"].add(_machine(record, device))
                row["rehearsal"] |= _rehearsal(record, framework, device)
            else:
                row = missing.setdefault(key, {"framework": framework, "device": device, "items": 0,
                                               "dtypes": set(), "reasons": {}, "stated": set()})
                row["reasons"][reason] = row["reasons"].get(reason, 0) + 1
                stated = ((record.get("context") or {}).get("not_measured") or {}).get(f"{framework}@{device}")
                if stated:
                    row["stated"].add(stated)
            row["items"] += 1
            row["dtypes"].add(entry.get("dtype"))
    return {"measured": [_plain(r) for _, r in sorted(measured.items())],
            "not_measured": [_plain(r) for _, r in sorted(missing.items())]}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Sets as sorted lists, reasons as [{"reason", "items"}]: JSON-able and stable for templates."""
    out = {k: sorted(v, key=str) if isinstance(v, set) else v for k, v in row.items()}
    if "reasons" in out:
        out["reasons"] = [{"reason": r, "items": n} for r, n in sorted(out["reasons"].items())]
    return out


DEVICE_NAMES = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}  # where MindSpore runs; the suite has no Ascend items


def scope(data: dict[str, Any], pair: tuple[str, ...]) -> dict[str, list[str]]:
    """Where a page's comparison was measured: the devices on which every framework of `pair` ran (a
    rehearsal's CPU-as-GPU does not count), the dtypes they ran there, and the devices not measured."""
    rows = [r for r in devices(data)["measured"] if r["framework"] in pair and not r["rehearsal"]]
    ran = {d for d in DEVICE_NAMES if all(any(r["framework"] == fw and r["device"] == d for r in rows) for fw in pair)}
    dtypes = sorted({t for r in rows if r["device"] in ran for t in r["dtypes"] if t})
    return {"measured": [DEVICE_NAMES[d] for d in DEVICE_NAMES if d in ran], "dtypes": dtypes,
            "not_measured": [DEVICE_NAMES[d] for d in DEVICE_NAMES if d not in ran]}
