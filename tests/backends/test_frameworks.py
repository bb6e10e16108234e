"""More implementations of AdaMax: each adapter against its own oracle and torch, N-way cases, the
cross-framework table.

The adapters for frameworks the suite's own environment lacks (Keras, optax, Paddle: `tox -e matrix`
installs them) are skipped here with the adapter's reason; the N-way runner and the table are
checked on the implementations every environment has (torch, MindSpore, their other modes).
"""
from __future__ import annotations

import pytest

from conformance import backends
from conformance.cases.case import Item
from conformance.cases.loader import load_file
from conformance.engine.runner import run_item
from conformance.errors import CaseError
from conformance.report import frameworks_table
from tests.conftest import load_case, needs_frameworks

NEW = ("mindspore_graph", "torch_compile", "keras", "optax", "optax_adamaxw", "paddle")
# Whether each adapter's formula agrees with torch on eps-sized gradients with L2-sized weight decay: eps
# where torch puts it, and the decay into the gradient (optax.adamaxw has torch's eps but decoupled decay).
TORCH_CAMP = {"mindspore_graph": False, "torch_compile": True, "keras": False, "optax": True, "optax_adamaxw": False,
              "paddle": False}


def _skip_unless_available(name: str) -> None:
    reason = backends.get(name).unavailable("cpu", "float32")
    if reason:
        pytest.skip(f"{name}: {reason}")


@needs_frameworks
@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("gradients", ["{mode: replay, seed: 3, scale: 1.0e-8}", "autograd"])
def test_adapter_keeps_to_its_own_formula_and_to_its_camp(tmp_path, name, gradients):
    """Each new implementation, stepped on a LayerNorm MLP with weight decay: its float64 oracle holds
    (so its adapter reads the right state, names and hyper-parameters); on eps-sized gradients it
    agrees with torch exactly when its formula puts eps where torch does."""
    _skip_unless_available(name)
    case = load_case(tmp_path, f"""
  - id: adapter_{name}
    model: {{kind: layernorm_mlp, sizes: [3, 5, 2]}}
    gradients: {gradients}
    optimizer: {{lr: 0.01, weight_decay: 0.1}}
    frameworks: [torch, {name}]
    tolerance: {{params: {{atol: 2.5e-7}}, state: {{rtol: 1.0e-3}}}}
    steps: 5
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    oracle = entry["pairs"][f"{name}~oracle"]
    assert oracle["observed"] == "conform", oracle["first_divergence"]
    assert oracle["max"]["params"]["abs"] < 1e-6
    assert entry["hparams"][name]["lr"] == pytest.approx(0.01, rel=1e-7)  # Keras holds lr in float32
    assert entry["hparams"][name]["weight_decay"] == pytest.approx(0.1)
    if gradients.startswith("{"):
        primary = entry["pairs"][f"torch~{name}"]
        assert (primary["observed"] == "conform") == TORCH_CAMP[name], primary["first_divergence"]


def test_paddle_float16_is_skipped_with_the_kernel_reason():
    _skip_unless_available("paddle")
    assert "registered for float32 and float64 only" in backends.get("paddle").unavailable("cpu", "float16")


@needs_frameworks
def test_nway_case_has_one_primary_pair_per_framework_each_with_its_expectation(tmp_path):
    case = load_case(tmp_path, """
  - id: nway
    model: {kind: mlp, sizes: [3, 5, 2]}
    gradients: {mode: replay, seed: 21, scale: 1.0e-8}
    frameworks: [torch, mindspore, mindspore_experimental]
    tolerance: {params: {atol: 2.5e-7}, state: {rtol: 1.0e-3}}
    steps: 20
    expect: {mindspore: diverge, mindspore_experimental: conform}
    reason: eps placement
    cause: eps_placement
""")
    assert case.expect == "diverge" and case.expect_for("mindspore_experimental") == "conform"
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    primaries = {k: v for k, v in entry["pairs"].items() if v["role"] == "primary"}
    assert list(primaries) == ["torch~mindspore", "torch~mindspore_experimental"]
    assert primaries["torch~mindspore"]["observed"] == "diverge"
    assert primaries["torch~mindspore_experimental"]["observed"] == "conform"
    assert entry["outcome"] == "passed", entry.get("message")
    assert entry["frameworks"] == ["torch", "mindspore", "mindspore_experimental"]
    # the entry's top-level figures stay those of the first primary pair (torch~mindspore)
    assert entry["first_divergent_step"] == primaries["torch~mindspore"]["first_divergent_step"]


@needs_frameworks
def test_nway_item_fails_on_the_pair_whose_expectation_is_wrong(tmp_path):
    case = load_case(tmp_path, """
  - id: nway_wrong
    model: {kind: mlp, sizes: [3, 5, 2]}
    gradients: {mode: replay, seed: 21, scale: 1.0e-8}
    frameworks: [torch, mindspore, mindspore_experimental]
    tolerance: {params: {atol: 2.5e-7}, state: {rtol: 1.0e-3}}
    steps: 20
    expect: {mindspore: diverge, mindspore_experimental: diverge}
    reason: eps placement
    cause: eps_placement
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["outcome"] == "failed"
    assert "expected diverge (eps placement), observed conform (torch~mindspore_experimental)" in entry["message"]


@pytest.mark.parametrize("expect, problem", [
    ("{mindspore: diverge}", "missing: mindspore_experimental"),
    ("{mindspore: diverge, mindspore_experimental: conform, keras: conform}", "not in frameworks: keras"),
])
def test_mapping_expect_names_every_other_framework(tmp_path, expect, problem):
    path = tmp_path / "c.yaml"
    path.write_text(f"""cases:
  - id: bad_mapping
    model: {{kind: linear}}
    frameworks: [torch, mindspore, mindspore_experimental]
    steps: 2
    expect: {expect}
    reason: x
    cause: eps_placement
""", encoding="utf-8")
    (error,) = load_file(path, "cases/c.yaml")
    assert isinstance(error, CaseError) and error.key == "expect" and problem in str(error)


def test_a_mapping_with_a_divergence_needs_a_reason_and_cause(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("""cases:
  - id: no_reason
    model: {kind: linear}
    frameworks: [torch, mindspore, mindspore_experimental]
    steps: 2
    expect: {mindspore: diverge, mindspore_experimental: conform}
""", encoding="utf-8")
    (error,) = load_file(path, "cases/c.yaml")
    assert isinstance(error, CaseError) and "reason" in str(error)


def _entry(nodeid: str, frameworks_: list[str], pairs: dict, **extra) -> dict:
    return {"nodeid": nodeid, "case": nodeid.split("::")[1].split("[")[0], "frameworks": frameworks_,
            "outcome": "passed", "reason": "eps placement <b>", "pairs": pairs, "skipped_sides": {},
            "nonfinite": {}, **extra}


def _pair(role, expect, observed, step=None, abs_=0.0, ulp=0.0):
    first = {"step": step, "quantity": "params", "tensor": "dense0.weight", "nonfinite": None} if step else None
    figures = {"params": {"abs": abs_, "rel": 0.0, "ulp": ulp}, "state": {"abs": 0.0, "rel": 0.0, "ulp": 0.0}}
    return {"role": role, "expect": expect, "observed": observed, "first_divergence": first, "max": figures}


def test_framework_table_reads_every_pair_from_the_run():
    fws = ["torch", "mindspore", "paddle"]
    data = {"run": {"id": "r1", "start": "now", "torch": "2.13.0", "mindspore": "2.10.0",
                    "api": {"torch": {"class": "torch.optim.Adamax", "formula": {"eps": "inside", "weight_decay": "L2"},
                                      "params": {"lr": {"default": "0.002", "neutral": "lr"}}}}},
            "items": [
                _entry("cases/m.yaml::eps[cpu-float32]", fws, {
                    "torch~mindspore": _pair("primary", "diverge", "diverge", step=3, abs_=1.5e-4, ulp=12.0),
                    "torch~oracle": _pair("oracle", "conform", "conform"),
                    "mindspore~oracle": _pair("oracle", "conform", "diverge", step=1)},
                    skipped_sides={"paddle": "paddle is not installed in this environment"}),
                _entry("cases/pair.yaml::two[cpu-float32]", ["torch", "mindspore"], {})]}
    table = frameworks_table.build(data)
    assert table["frameworks"] == fws and len(table["rows"]) == 1  # two-framework items stay out
    cells = table["rows"][0]["cells"]
    assert cells["mindspore"]["text"].startswith(
        "differs from step 3 (params dense0.weight): max params abs 0.00015 (12 ULP)")
    assert cells["paddle"]["text"] == "not run: paddle is not installed in this environment"
    imps = {i["name"]: i for i in table["implementations"]}
    assert imps["torch"]["defaults"]["lr"] == "0.002" and imps["torch"]["checked"] == 1
    assert imps["mindspore"]["departed"] == ["cases/m.yaml::eps[cpu-float32]"]
    markdown = frameworks_table.render_markdown(table)
    assert "own formula: diverge, UNEXPLAINED" in markdown and "eps placement \\<b\\>" in markdown
    html = frameworks_table.render_html(table)
    assert "eps placement &lt;b&gt;" in html and "<b>" not in html


def test_framework_table_is_none_without_nway_items():
    items = [_entry("cases/a.yaml::a[cpu-float32]", ["torch", "mindspore"], {})]
    assert frameworks_table.build({"run": {}, "items": items}) is None


def test_new_formulas_match_their_sources_written_out():
    """The Keras, optax (adamax, adamaxw) and Paddle oracles against the updates as their sources write them."""
    import numpy as np

    from conformance.numerics import oracles

    rng = np.random.default_rng(3)
    p, m, u, g = (rng.normal(size=50) for _ in range(4))
    u = np.abs(u)
    g[:5] = 0.0
    hp = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-3, "weight_decay": 0.1}
    lr, b1, b2, eps, wd, t = 0.01, 0.9, 0.999, 1e-3, 0.1, 4
    keras = oracles.oracle("keras")(p, m, u, g, t, hp, "w", "float64")
    k_m, k_u = b1 * m + (1 - b1) * g, np.maximum(b2 * u, np.abs(g))
    factor = float(np.float32(1 - np.float32(wd) * np.float32(lr)))  # as Keras forms it: a float32 tensor
    assert factor != 1 - wd * lr
    assert np.allclose(keras.p, p * factor - (k_m * lr) / ((k_u + eps) * (1 - b1 ** t)), rtol=1e-13, atol=1e-15)
    optax = oracles.oracle("optax")(p, m, u, g, t, hp, "w", "float64")
    g_l2 = g + wd * p
    o_m, o_u = (1 - b1) * g_l2 + b1 * m, np.maximum(np.abs(g_l2) + eps, b2 * u)
    assert np.allclose(optax.p, p + (o_m / (1 - b1 ** t)) / o_u * -lr, rtol=1e-13, atol=1e-15)
    # optax.adamaxw: the adamax update of the raw gradient, plus wd*p, scaled by -lr (alias.py's chain)
    adamaxw = oracles.oracle("optax_adamaxw")(p, m, u, g, t, hp, "w", "float64")
    w_m, w_u = (1 - b1) * g + b1 * m, np.maximum(np.abs(g) + eps, b2 * u)
    assert np.allclose(adamaxw.p, p + ((w_m / (1 - b1 ** t)) / w_u + wd * p) * -lr, rtol=1e-13, atol=1e-15)
    assert np.allclose(adamaxw.m, w_m, rtol=1e-13) and np.allclose(adamaxw.u, w_u, rtol=1e-13)
    p, m, u, g = (x.astype(np.float32).astype(np.float64) for x in (p, m, u, g))  # float32 operands
    g_l2 = g + wd * p
    paddle = oracles.oracle("paddle")(*(x.astype(np.float32) for x in (p, m, u, g)), t, hp, "w", "float32")
    f32 = [float(np.float32(x)) for x in (lr, b1, b2, eps)]
    power = float(np.prod(np.full(t, np.float32(b1)), dtype=np.float32))  # a float32 running product
    q_m, q_u = f32[1] * m + (1 - f32[1]) * g_l2, np.maximum(f32[2] * u + f32[3], np.abs(g_l2))
    assert np.allclose(paddle.u, q_u, rtol=1e-13) and np.allclose(paddle.m, q_m, rtol=1e-13, atol=1e-15)
    assert np.allclose(paddle.p, p - f32[0] / (1 - power) * q_m / q_u, rtol=1e-12, atol=1e-15)


def test_keras_float16_rounds_u_plus_eps_and_torch_compile_keeps_eps():
    """In float16 eps = 1e-8 is 0: Keras's u + eps rounds to 0 (a zero gradient gives 0/0), torch.compile
    computes in float32 (u = eps, a zero step)."""
    import numpy as np

    from conformance.numerics import oracles

    zeros = np.zeros(2, np.float16)
    hp = {"lr": 0.002, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    assert np.isnan(oracles.oracle("keras")(zeros, zeros, zeros, zeros, 1, hp, "w", "float16").p).all()
    assert (oracles.oracle("torch_compile")(zeros, zeros, zeros, zeros, 1, hp, "w", "float16").p == 0).all()


@needs_frameworks
def test_only_the_declared_pair_is_attributed(tmp_path):
    """A case's `cause:` is about frameworks[0]~frameworks[1]; where that pair cannot run here (the second
    framework absent) the item still judges its other pairs, and attributes nothing."""
    if backends.get("keras").unavailable("cpu", "float32") is None:
        pytest.skip("keras is installed here: the declared pair torch~keras runs")
    case = load_case(tmp_path, """
  - id: nway_declared
    model: {kind: mlp, sizes: [3, 5, 2]}
    gradients: {mode: replay, seed: 21, scale: 1.0e-8}
    frameworks: [torch, keras, mindspore]
    tolerance: {params: {atol: 2.5e-7}, state: {rtol: 1.0e-3}}
    steps: 5
    expect: {keras: diverge, mindspore: diverge}
    reason: eps placement
    cause: decay_name_filter
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["pairs"]["torch~mindspore"]["observed"] == "diverge" and "keras" in entry["skipped_sides"]
    assert entry["attribution"] is None and entry["outcome"] == "passed", entry.get("message")
