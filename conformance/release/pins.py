"""The suite's pinned releases, read from pyproject.toml's `suite` extra.

pyproject.toml is the one place dependencies are written: the `suite` extra pins the pair of releases the
suite is validated with (torch==..., mindspore==...); release validation compares a candidate with it.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from conformance.release.virtualenvs import Release, ReleaseEnvError

PROJECT = "pyproject.toml"


def _extras(path: Path) -> dict[str, list[str]]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReleaseEnvError(f"{path}: cannot read the project's dependencies ({exc}); run from the suite's "
                              "folder or pass --project") from exc
    return data.get("project", {}).get("optional-dependencies", {})


def pins(path: Path, extra: str = "suite") -> dict[str, str]:
    """name -> exact version for every `name==version` requirement of an extra (default: the suite's)."""
    out = {}
    for line in _extras(path).get(extra, []):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            out[req.name.lower()] = exact[0]
    return out


def pinned_release(path: Path) -> Release:
    """The pinned (torch, MindSpore) pair of the suite extra."""
    pinned = pins(path)
    if "torch" not in pinned or "mindspore" not in pinned:
        raise ReleaseEnvError(f"{path}: no torch==... and mindspore==... pins in the suite extra; "
                              "run from the suite's folder or pass --project")
    return Release(pinned["torch"], pinned["mindspore"])
