"""Real datasets read from the installed package: the facts the loader validates with are the package's,
the split and the batches are deterministic and disjoint, and a missing package is a clear skip reason."""
from __future__ import annotations

import builtins
from collections import Counter

import numpy as np
import pytest

from conformance.cases.case import DataSpec
from conformance.engine import datasets

sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn ships the datasets")


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_stated_facts_are_the_packages(name):
    info = datasets.DATASETS[name]
    bunch = getattr(sklearn_datasets, info.loader)()
    assert bunch.data.shape == (info.samples, info.features)
    assert len(set(bunch.target)) == info.classes


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_the_split_is_seeded_disjoint_standardised_and_read_only(name):
    info = datasets.DATASETS[name]
    part = datasets.split(name, 3)
    assert len(part.x_train) == info.train_samples and len(part.x_test) == info.test_samples
    assert info.test_samples == round(info.samples * datasets.TEST_FRACTION)
    assert part.x_train.shape[1] == info.features and part.y_train.shape[1] == info.classes
    assert np.array_equal(part.y_train.sum(axis=1), np.ones(info.train_samples))
    varying = part.x_train.std(axis=0) > 0
    assert np.allclose(part.x_train.mean(axis=0), 0, atol=1e-9)
    assert np.allclose(part.x_train.std(axis=0)[varying], 1)
    with pytest.raises(ValueError):
        part.x_train[0, 0] = 1.0
    # every sample lands in exactly one part: the parts hold the dataset's labels, each as often
    labels = getattr(sklearn_datasets, info.loader)().target
    together = np.concatenate([part.y_train.argmax(axis=1), part.labels_test])
    assert np.array_equal(np.bincount(together, minlength=info.classes), np.bincount(labels, minlength=info.classes))
    assert not np.array_equal(datasets.split(name, 4).labels_test, part.labels_test)  # another seed, another split


def test_batches_are_the_same_for_every_reader_and_draw_no_sample_twice_in_an_epoch():
    spec = DataSpec(batch=64, seed=0, dataset="digits")
    first, second = datasets.batches(spec), datasets.batches(spec)
    per_epoch = datasets.DATASETS["digits"].train_samples // 64
    seen = []
    for _ in range(per_epoch + 1):
        (xa, ya), (xb, yb) = next(first), next(second)
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        assert xa.shape == (64, 64) and ya.shape == (64, 10)
        seen.append(xa)
    available = Counter(row.tobytes() for row in datasets.split("digits", 0).x_train)  # digits repeats some images
    drawn = Counter(row.tobytes() for batch in seen[:per_epoch] for row in batch)
    assert all(count <= available[row] for row, count in drawn.items())
    assert not np.array_equal(seen[0], seen[per_epoch])  # the next epoch comes in a new order


def test_a_missing_package_is_a_reason_naming_it(monkeypatch):
    assert datasets.unavailable("digits") is None
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    reason = datasets.unavailable("digits")
    assert "data.dataset 'digits' is read from scikit-learn" in reason and "pyproject.toml" in reason
