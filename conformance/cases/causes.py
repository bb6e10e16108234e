"""The cause registry (cases/causes.yaml): every known difference between AdaMax implementations as data.

A cause is one mechanism: an id cases name in `cause:`, a title, the mechanism, when it matters, the
user's fix and the case proving the fix; `zh_cn` holds the title, when it matters and the fix in Chinese for
the Chinese docs page (conformance/report/docs_page.py). `formula` causes name the oracle feature (oracles.Features)
whose switch reproduces them; `configuration` causes the hyper-parameter the two sides received
differently (`hparam.lr`) and the case setting that explains it (`when`); `validation` causes are
refusals (error and interface items), declared by cases rather than computed. The attribution
(conformance/numerics/attribution.py) and the reports read the registry; nothing else defines a cause.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from conformance.numerics.formulas import Features

REGISTRY_NAME = "causes.yaml"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "cases" / REGISTRY_NAME
UNKNOWN = "unknown"  # a case may declare `cause: unknown` (with its reason) for a divergence no cause explains
KINDS = ("formula", "configuration", "validation")
WHEN = ("native_defaults", "schedule")
HPARAMS = ("lr", "betas", "eps", "weight_decay")
# How often a cause's condition arises in training code ported from PyTorch (the `tier` of a cause's `impact:`).
TIERS = {
    1: "every port that keeps a default",
    2: "common model features (normalisation layers with weight decay; zero or tiny gradients)",
    3: "particular training setups (schedules, freezing, loss scaling, per-step learning-rate lists)",
    4: "unusual inputs, dtypes or a run that has already failed (NaN/Inf)",
}
# The docs page's Edge-cases headings; a tier-4 cause names its own as its impact's `topic`.
EDGE_TOPICS = ("NaN and Inf gradients", "float16", "float64", "betas near 1", "inputs one side rejects")
# The docs page's Differences rows (constructor parameters) a cause can act through (`parameters`).
PARAMETERS = ("params", "lr", "betas", "eps", "weight_decay", "foreach", "maximize", "differentiable",
              "capturable", "loss_scale")
# What a docs page says of a cause, in each of its languages (`zh_cn:` of an entry; English is the entry's own).
WORDS = ("title", "matters_when", "fix")

_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["causes"],
    "properties": {"causes": {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "title", "kind", "mechanism", "matters_when", "fix", "fix_case", "impact"],
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "title": {"type": "string", "minLength": 1},
            "kind": {"enum": list(KINDS)},
            "switch": {"enum": [f.name for f in fields(Features)] + [f"hparam.{h}" for h in HPARAMS]},
            "when": {"enum": list(WHEN)},
            "mechanism": {"type": "string", "minLength": 1},
            "matters_when": {"type": "string", "minLength": 1},
            "fix": {"type": ["string", "null"]},
            "fix_case": {"type": ["string", "null"], "pattern": r"^cases/.+\.yaml::.+\[.+\]$"},
            "impact": {"type": "object", "additionalProperties": False, "required": ["tier", "why"],
                       "properties": {"tier": {"enum": list(TIERS)}, "why": {"type": "string", "minLength": 1},
                                      "topic": {"enum": list(EDGE_TOPICS)}},
                       "if": {"properties": {"tier": {"const": 4}}}, "then": {"required": ["topic"]},
                       "else": {"not": {"required": ["topic"]}}},
            "parameters": {"type": "array", "items": {"enum": list(PARAMETERS)}, "uniqueItems": True},
            "zh_cn": {"type": "object", "additionalProperties": False, "required": list(WORDS),
                      "properties": {"title": {"type": "string", "minLength": 1},
                                     "matters_when": {"type": "string", "minLength": 1},
                                     "fix": {"type": ["string", "null"]}}},
        },
        "allOf": [
            {"if": {"properties": {"kind": {"const": "formula"}}},
             "then": {"required": ["switch"], "properties": {"switch": {"not": {"pattern": "^hparam\\."}}}}},
            {"if": {"properties": {"kind": {"const": "configuration"}}},
             "then": {"required": ["switch"], "properties": {"switch": {"pattern": "^hparam\\."}}}},
            {"if": {"properties": {"kind": {"const": "validation"}}}, "then": {"not": {"required": ["switch"]}}},
        ],
    }}},
}


@dataclass(frozen=True)
class Impact:
    tier: int  # a key of TIERS
    why: str  # the condition, and how common it is
    topic: str | None = None  # tier 4: its heading among EDGE_TOPICS


@dataclass(frozen=True)
class Words:
    """What a docs page says of a cause in one language."""
    title: str
    matters_when: str
    fix: str | None


LANGUAGES = ("en", "zh_cn")  # the docs pages' languages, named as MindSpore's docs folders (source_zh_cn)


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    kind: str
    mechanism: str
    matters_when: str
    fix: str | None
    fix_case: str | None
    switch: str | None = None  # an oracles.Features field, or hparam.<name>
    when: str | None = None  # configuration causes: the case setting that explains the hyper-parameter
    impact: Impact = Impact(4, "")
    parameters: tuple[str, ...] = ()  # the docs page's Differences rows it acts through
    zh_cn: Words | None = None  # the page words in Chinese

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "impact": asdict(self.impact), "parameters": list(self.parameters),
                "zh_cn": asdict(self.zh_cn) if self.zh_cn else None}

    def words(self, language: str) -> Words:
        """The cause's title, when it matters and fix in `language` (en, zh_cn); a RegistryError naming
        the registry and the key when the registry lacks that language."""
        if language == "en":
            return Words(self.title, self.matters_when, self.fix)
        translated = getattr(self, language, None) if language in LANGUAGES else None
        if translated is None:
            raise RegistryError(f"{registry_path()}: cause {self.id!r} has no `{language}:` block "
                                f"({', '.join(WORDS)}), which the {language} page needs; languages: "
                                f"{', '.join(LANGUAGES)}")
        return translated


class RegistryError(ValueError):
    """cases/causes.yaml is unreadable or invalid: says the file, the entry and what is allowed."""


def registry_path() -> Path:
    """cases/causes.yaml of this checkout; CONFORMANCE_CAUSES names another file."""
    return Path(os.environ.get("CONFORMANCE_CAUSES", DEFAULT_PATH))


def parse(text: str, source: str) -> dict[str, Cause]:
    """The registry from its YAML text, validated: ids unique, formula causes name an oracle feature."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{source}: not valid YAML: {exc}") from exc
    try:
        jsonschema.validate(doc, _SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise RegistryError(f"{source}: at {where}: {exc.message}") from exc
    out: dict[str, Cause] = {}
    for entry in doc["causes"]:
        if entry["id"] in out or entry["id"] == UNKNOWN:
            raise RegistryError(f"{source}: cause id {entry['id']!r} is used twice or reserved")
        out[entry["id"]] = Cause(**{**entry, "impact": Impact(**entry["impact"]),
                                    "parameters": tuple(entry.get("parameters", ())),
                                    "zh_cn": Words(**entry["zh_cn"]) if "zh_cn" in entry else None})
    return out


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict[str, Cause]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read the cause registry: {exc}") from exc
    return parse(text, path)


def load() -> dict[str, Cause]:
    """Cause id -> Cause, from registry_path() (cached until the file changes)."""
    path = registry_path()
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise RegistryError(f"{path}: the cause registry is missing ({exc})") from exc
    return _load(str(path), mtime)


def for_switch(switch: str, case_settings: set[str]) -> str | None:
    """The cause id a switch stands for, given the case's settings (native_defaults, schedule)."""
    candidates = [c for c in load().values() if c.switch == switch]
    for cause in candidates:
        if cause.when is None or cause.when in case_settings:
            return cause.id
    return None
