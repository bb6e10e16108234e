"""The keys of a real-data case (`data.dataset`, `loss: cross_entropy`, `model.kind: transformer`): what the
loader accepts, and errors that name the key and what is allowed. No package is imported to validate."""
from __future__ import annotations

import sys

import pytest

from conformance.cases.case import Case
from conformance.cases.checks import param_count
from conformance.cases.loader import load_file
from conformance.engine import models
from conformance.errors import CaseError

pytestmark = pytest.mark.torch_only

GOOD = "{kind: mlp, sizes: [64, 8, 10]}"


@pytest.mark.parametrize("model, extra, key, words", [
    (GOOD, "data: {dataset: mnist}, loss: cross_entropy", "data.dataset",
     "unknown dataset 'mnist'; allowed: digits, wine, breast_cancer"),
    ("{kind: mlp, sizes: [13, 8, 10]}", "data: {dataset: digits}, loss: cross_entropy", "model.sizes",
     "has 64 features and 10 classes"),
    (GOOD, "data: {dataset: digits}, loss: mse", "loss", "use loss: cross_entropy"),
    (GOOD, "loss: cross_entropy", "loss", "needs class labels: give data: {dataset: NAME}"),
    (GOOD, "data: {dataset: digits, distribution: uniform}, loss: cross_entropy", "data.distribution",
     "is for generated data"),
    (GOOD, "data: {dataset: digits, batch: 5000}, loss: cross_entropy", "data.batch", "1438 training samples"),
    ("{kind: transformer, sizes: [64, 8, 4, 10]}", "data: {dataset: digits}, loss: cross_entropy", "model.sizes",
     "sizes [in, width, out]"),
    ("{kind: transformer, sizes: [64, 8, 10], tokens: 5}", "data: {dataset: digits}, loss: cross_entropy",
     "model.tokens", "do not split 64 inputs evenly"),
    ("{kind: transformer, sizes: [64, 8, 10], names: [a]}", "data: {dataset: digits}, loss: cross_entropy",
     "model.names", "fixed"),
])
def test_bad_real_data_entries_name_key_and_what_is_allowed(tmp_path, model, extra, key, words):
    path = tmp_path / "c.yaml"
    path.write_text(f"cases:\n  - {{id: a, model: {model}, steps: 3, {extra}}}\n", encoding="utf-8")
    (bad,) = load_file(path, "cases/c.yaml")
    assert isinstance(bad, CaseError), bad
    assert (bad.file, bad.line, bad.case_id, bad.key) == ("cases/c.yaml", 2, "a", key)
    assert words in str(bad), str(bad)


def test_a_transformer_on_digits_loads_without_importing_the_dataset_package(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cases:\n  - {id: t, model: {kind: transformer, sizes: [64, 16, 10], tokens: 8}, steps: 3,\n"
                    "     loss: cross_entropy, data: {dataset: digits, batch: 32}}\n", encoding="utf-8")
    before = "sklearn" in sys.modules
    (case,) = load_file(path, "cases/c.yaml")
    assert isinstance(case, Case) and case.data.dataset == "digits" and case.model.tokens == 8
    assert ("sklearn" in sys.modules) == before  # validated from the stated facts (datasets.DATASETS)
    shapes = models.param_shapes(case.model)
    # embed 8->16, pos 8x16, three LayerNorms of 16, qkv 16->48, out 16->16, ffn 16->32->16, head 16->10
    assert param_count(case.model) == (8 * 16 + 16) + 8 * 16 + 3 * 32 + (16 * 48 + 48) + (16 * 16 + 16) \
        + (16 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    assert list(shapes) == list(models.init_arrays(case.model))
    assert {k: v.shape for k, v in models.init_arrays(case.model).items()} == shapes
    assert shapes["pos.weight"] == (8, 16) and shapes["attn_qkv.weight"] == (48, 16)
