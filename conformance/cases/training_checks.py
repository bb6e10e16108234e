"""Checks of a case's model kind and training data that a schema cannot express (the loader runs them).

A transformer block's sizes and tokens must fit its fixed layers; a real dataset fixes the model's input
and output sizes and the loss, and the cross-entropy loss needs a dataset's labels. Each problem is (key
path, message) as the loader reports it: the key, what is allowed.
"""
from __future__ import annotations

from conformance.cases.case import ModelSpec
from conformance.engine import datasets


def transformer(raw: dict, model: ModelSpec) -> list[tuple[list, str]]:
    """The transformer block's sizes are [in, width, out], its input splits into `tokens` equal tokens, and
    its layer names and activation are its own (models.TRANSFORMER). Other kinds ignore `tokens`."""
    if model.kind != "transformer":
        return []
    if len(model.sizes) != 3:
        return [(["model", "sizes"], "a transformer takes sizes [in, width, out], e.g. [64, 16, 10]")]
    if model.sizes[0] % model.tokens:
        return [(["model", "tokens"], f"{model.tokens} tokens do not split {model.sizes[0]} inputs evenly; "
                                      f"use a divisor of {model.sizes[0]}")]
    fixed = [key for key in ("names", "activation") if key in raw]
    if fixed:
        return [(["model", fixed[0]], f"the transformer block's layer names and activation (relu) are fixed "
                                      f"(conformance/engine/models.py TRANSFORMER); remove '{fixed[0]}'")]
    return []


def data(entry: dict, model: ModelSpec) -> list[tuple[list, str]]:
    """A real dataset fixes the model's input and output sizes and takes the cross-entropy loss, and the
    cross-entropy loss needs its labels; its samples are not drawn from a distribution."""
    data, loss = entry.get("data") or {}, entry.get("loss", "l1")
    name = data.get("dataset")
    if name is None:
        return [(["loss"], "loss: cross_entropy needs class labels: give data: {dataset: NAME} "
                           f"({', '.join(datasets.DATASETS)})")] if loss == "cross_entropy" else []
    info = datasets.DATASETS[name]
    drawn = [key for key in ("distribution", "resample") if key in data]
    if drawn:
        return [(["data", drawn[0]], f"{drawn[0]} is for generated data; data.dataset {name!r} gives real samples")]
    if loss != "cross_entropy":
        return [(["loss"], f"data.dataset {name!r} is a classification set: use loss: cross_entropy")]
    if (model.sizes[0], model.sizes[-1]) != (info.features, info.classes):
        return [(["model", "sizes"], f"data.dataset {name!r} has {info.features} features and {info.classes} "
                                     f"classes: the model's sizes must start with {info.features} and end with "
                                     f"{info.classes}, got {list(model.sizes)}")]
    if int(data.get("batch", 4)) > info.train_samples:
        return [(["data", "batch"], f"data.dataset {name!r} has {info.train_samples} training samples; "
                                    f"a batch holds at most that many")]
    return []
