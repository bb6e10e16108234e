"""Real datasets that a package ships, read at run time from the installed package (nothing is downloaded).

A case trains on one with `data: {dataset: NAME}`. The facts the loader checks a case against (features,
classes, samples) are stated here, so a case file is validated without importing the package;
tests/engine/test_datasets.py checks them against the package itself. Features are standardised with the
training split's mean and standard deviation (a constant feature keeps a scale of 1); targets are one-hot
rows, class probabilities that both frameworks' cross-entropy losses take as they are.

The split (a held-out `TEST_FRACTION`, scoring the final accuracy) and the order of the training samples
(reshuffled every epoch) both come from `data.seed`, so every framework sees the same batches in the same
order. Arrays are read once per process and kept read-only: a dataset is at most a few hundred kB.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from conformance.cases.case import DataSpec

PACKAGE = "scikit-learn"  # the distribution that ships them (pyproject.toml's harness extra)
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    loader: str  # the function of sklearn.datasets that reads it from the package's files
    features: int
    classes: int
    samples: int
    what: str

    @property
    def test_samples(self) -> int:
        return round(self.samples * TEST_FRACTION)

    @property
    def train_samples(self) -> int:
        return self.samples - self.test_samples


DATASETS: dict[str, Dataset] = {
    "digits": Dataset("load_digits", 64, 10, 1797, "8x8 images of handwritten digits (UCI), 0-16 grey levels"),
    "wine": Dataset("load_wine", 13, 3, 178, "chemical analyses of wines from three cultivars (UCI)"),
    "breast_cancer": Dataset("load_breast_cancer", 30, 2, 569, "Wisconsin diagnostic breast cancer features (UCI)"),
}


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # float64, standardised
    y_train: np.ndarray  # float64 one-hot rows
    x_test: np.ndarray
    labels_test: np.ndarray  # int class labels of the held-out samples


def unavailable(name: str) -> str | None:
    """None when the package that ships `name` can be imported, else why not, for the skip message."""
    try:
        import sklearn.datasets  # noqa: F401 - only whether it imports
    except ImportError as exc:
        return (f"data.dataset {name!r} is read from {PACKAGE}, which cannot be imported here ({exc}); "
                f"install {PACKAGE} (pyproject.toml's harness extra lists it)")
    return None


def _read(name: str) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, DATASETS[name].loader)()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


@functools.lru_cache(maxsize=8)
def split(name: str, seed: int) -> Split:
    """The dataset's training and held-out parts (a seeded permutation), standardised by the training part."""
    info = DATASETS[name]
    x, labels = _read(name)
    order = np.random.default_rng([seed, 0]).permutation(len(x))
    test, train = order[:info.test_samples], order[info.test_samples:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std[std == 0] = 1.0
    onehot = np.eye(info.classes)[labels]
    parts = ((x[train] - mean) / std, onehot[train], (x[test] - mean) / std, labels[test])
    for array in parts:
        array.flags.writeable = False
    return Split(*parts)


def batches(data: DataSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, one-hot targets) of `data.batch` training samples per step, epoch after epoch, each epoch in
    a new seeded order; the few samples at the end of an order that do not fill a batch sit that epoch out."""
    part = split(data.dataset, data.seed)
    rng = np.random.default_rng([data.seed, 1])
    count = len(part.x_train)
    while True:
        order = rng.permutation(count)
        for start in range(0, count - data.batch + 1, data.batch):
            chosen = order[start:start + data.batch]
            yield part.x_train[chosen], part.y_train[chosen]
