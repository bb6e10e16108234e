"""Case files -> cases: matrix ids, defaults, and errors that name file, line, case id and key."""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cases.case import Case
from conformance.cases.loader import load_all, load_file
from conformance.errors import CaseError
from tests.conftest import REPO

pytestmark = pytest.mark.torch_only


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_matrix_expands_into_readable_ids(tmp_path):
    path = _write(tmp_path, """
cases:
  - id: grid
    model: {kind: linear, in: 2, out: 3}
    steps: 3
    matrix:
      optimizer.lr: [0.001, 0.01]
      optimizer.betas: [[0.9, 0.99]]
      dtype: [float32, float64]
""")
    cases = load_file(path)
    assert [c.id for c in cases] == ["grid.lr=0.001.betas=0.9_0.99", "grid.lr=0.001.betas=0.9_0.99",
                                     "grid.lr=0.01.betas=0.9_0.99", "grid.lr=0.01.betas=0.9_0.99"]
    assert cases[2].optimizer.hparams["lr"] == 0.01 and cases[1].dtypes == ("float64",)


def test_defaults_merge_and_entry_wins(tmp_path):
    path = _write(tmp_path, """
defaults: {model: {kind: linear}, steps: 7, loss: mse}
cases:
  - {id: a}
  - {id: b, steps: 2}
""")
    a, b = load_file(path)
    assert (a.steps, b.steps, a.loss) == (7, 2, "mse")


@pytest.mark.parametrize("body, key, words", [
    ("  - {id: a, model: {kind: linear}, steps: 3, lr: 0.1}\n", None, "unknown key 'lr'"),
    ("  - {id: a, model: {kind: linear}, stepz: 3}\n", "stepz", "did you mean 'steps'"),
    ("  - {id: a, model: {kind: linear}, steps: 3, loss: hinge}\n", "loss", "'l1', 'mse'"),
    ("  - {id: a, model: {kind: linear}, steps: 3, dtype: bfloat16}\n", "dtype", "allowed"),
    ("  - {id: a, model: {kind: linear}, steps: 3, expect: diverge}\n", "reason", "root cause"),
    ("  - {id: a, model: {kind: linear}, steps: 100000000}\n", "steps", "CONFORMANCE_MAX_STEPS"),
    ("  - {id: a, model: {kind: mlp, sizes: [100000, 100000, 10000]}, steps: 3}\n", "model", "CONFORMANCE_MAX_PARAMS"),
    ("  - {id: a, steps: 3}\n", "model", "'model' is a required property"),
    ("  - {id: a, model: {kind: resnet}, steps: 3}\n", "model.kind", "linear"),
    ("  - {id: a, model: {kind: linear}, steps: 3, optimizer: {torch: {fused: true}}}\n", "optimizer.torch", "foreach"),
    ("  - {id: a, model: {kind: linear}, steps: 3, resume: {steps: 2}}\n", "resume.from", "'from' is a required"),
    ("  - {id: a, model: {kind: linear}, steps: 3, resume: {steps: 2, from: keras}, frameworks: [torch, mindspore]}\n",
     "resume.from", "not among the frameworks"),
    ("  - {id: a, model: {kind: linear}, steps: 3, resume: {steps: 2, from: torch}, optimizer: {lr: [0.1, 0.2]}}\n",
     "optimizer", "constant learning rate"),
    ("  - {id: a, model: {kind: linear}, steps: 3, resume: {steps: 2, from: torch},"
     " gradients: {mode: replay, source: mindspore}}\n", "gradients.source", "not mindspore's"),
    ("  - {id: a, model: {kind: linear}, steps: 99999, resume: {steps: 2, from: torch}}\n", "resume.steps",
     "CONFORMANCE_MAX_STEPS"),
])
def test_bad_entries_name_key_and_what_is_allowed(tmp_path, body, key, words):
    path = _write(tmp_path, "cases:\n  - {id: good, model: {kind: linear}, steps: 1}\n" + body)
    good, bad = load_file(path, "cases/c.yaml")
    assert isinstance(good, Case)
    assert isinstance(bad, CaseError)
    assert bad.file == "cases/c.yaml" and bad.line == 3 and bad.case_id == "a"
    if key:
        assert bad.key == key
    assert words in str(bad)


def test_invalid_yaml_names_line_and_column(tmp_path):
    path = _write(tmp_path, "cases:\n  - id: a\n    model: {kind: linear\n")
    (error,) = load_file(path)
    assert isinstance(error, CaseError) and error.line is not None and error.column is not None
    assert "invalid YAML" in str(error)


def test_python_tags_are_refused(tmp_path):
    path = _write(tmp_path, "cases:\n  - !!python/object/apply:os.system ['echo hacked']\n")
    (error,) = load_file(path)
    assert isinstance(error, CaseError) and "refused" in error.message and error.line == 2


def test_duplicate_ids_within_and_across_files(tmp_path):
    one = _write(tmp_path, "cases:\n  - {id: a, model: {kind: linear}, steps: 1}\n"
                           "  - {id: a, model: {kind: linear}, steps: 2}\n", "one.yaml")
    two = _write(tmp_path, "cases:\n  - {id: a, model: {kind: linear}, steps: 3}\n", "two.yaml")
    first, dup_same, dup_other = load_all([one, two], tmp_path)
    assert isinstance(first, Case)
    assert isinstance(dup_same, CaseError) and "first defined at one.yaml:2" in dup_same.message
    assert isinstance(dup_other, CaseError) and dup_other.file == "two.yaml"


def test_matrix_that_repeats_an_id_is_a_duplicate(tmp_path):
    path = _write(tmp_path, "cases:\n  - id: m\n    model: {kind: linear}\n    steps: 1\n"
                            "    matrix: {steps: [1, 1]}\n")
    first, second = load_all([path], tmp_path)
    assert isinstance(first, Case) and isinstance(second, CaseError)


def test_shipped_cases_all_load():
    files = sorted(p for p in (REPO / "cases").rglob("*.yaml") if p.name != "causes.yaml")  # the registry
    results = load_all(files, REPO)
    errors = [str(r) for r in results if isinstance(r, CaseError)]
    assert not errors and len(results) >= 4


def test_no_shipped_case_switches_an_oracle_check_off():
    """The oracles model each framework's precision, so every framework~oracle check of every shipped case
    (search findings included) must conform: a departure is either modelled (numerics/formulas.py) or an
    open finding, never expected away with oracle_expect."""
    files = sorted(p for p in (REPO / "cases").rglob("*.yaml") if p.name != "causes.yaml")
    cases = [r for r in load_all(files, REPO) if isinstance(r, Case)]
    assert [c.id for c in cases if c.oracle_expect] == []


LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['x'] * 9)}]\n" for i in range(7))


@pytest.mark.parametrize("text, line, words", [
    ("cases:\n  - id: a\n    steps: 1\n    steps: 2\n", 4, "found the key 'steps' twice"),
    ("cases:\n  - {id: a, ? [1, 2] : 3}\n", 2, "keys must be plain names"),
    ("cases:\n  - {id: a, steps: !!int ten}\n", 2, "cannot read 'ten' as tag:yaml.org,2002:int"),
    ("cases:\n  - {id: a, model: !!python/name:os.system }\n", 2, "tags that build Python objects are not allowed"),
    (LAUGHS + "cases:\n  - {id: a, description: *l6}\n", None, "expands to more than 100000 values"),
    ("cases: " + "[" * 3000 + "]" * 3000 + "\n", None, "nested too deeply"),
    ("defaults: [1]\ncases:\n  - {id: a}\n", 1, "'defaults:' is a mapping"),
    ("cases: []\n", 1, "non-empty 'cases:' list"),
    ("cases:\n  - {id: a, model: {kind: linear}, steps: 1, optimizer: 5, matrix: {optimizer.lr: [1]}}\n", 2,
     "'optimizer' is not a mapping"),
    ("cases:\n  - {id: a, model: {kind: linear}, steps: 1, matrix: {7: [1]}}\n", 2, "not a dotted key"),
    ("cases:\n  - {id: a, model: {kind: linear}, steps: 1, matrix: {data.seed: " + str(list(range(40)))
     + ", optimizer.lr: " + str([i + 1 for i in range(30)]) + "}}\n", 2,
     "1200 cases, over the limit of 1000; set CONFORMANCE_MAX_MATRIX"),
    ("cases:\n  - {id: a, model: {kind: linear}, steps: 1, data: {batch: 1000000000}}\n", 2,
     "over the limit of 16384 MiB; set CONFORMANCE_MAX_MEMORY_MB"),
    ("cases:\n  - {id: a\x01}\n", 2, "cases/c.yaml:2:11: invalid YAML: character U+0001 is not allowed"),
])
def test_hostile_documents_become_one_error_each(tmp_path, text, line, words):
    results = load_file(_write(tmp_path, text), "cases/c.yaml")
    assert len(results) == 1 and isinstance(results[0], CaseError), results
    assert results[0].line == line and words in str(results[0]), str(results[0])


def test_merge_keys_may_be_overridden(tmp_path):
    path = _write(tmp_path, "defaults: &d {model: {kind: linear}, steps: 1}\ncases:\n  - {<<: *d, id: a, steps: 4}\n")
    (case,) = load_file(path)
    assert isinstance(case, Case) and case.steps == 4


@pytest.mark.parametrize("spelling, shown", [(".nan", ".nan"), (".NaN", ".nan"), (".NAN", ".nan"), (".inf", ".inf"),
                                             (".Inf", ".inf"), ("+.inf", ".inf"), ("-.inf", "-.inf"),
                                             ("-.INF", "-.inf"), ("1e999", ".inf"), ("-1e999", "-.inf")])
def test_every_yaml_spelling_of_nan_and_infinity_is_refused(tmp_path, spelling, shown):
    path = _write(tmp_path, "cases:\n  - {id: good, model: {kind: linear}, steps: 1}\n"
                            "  - {id: a, model: {kind: linear}, steps: 1, tolerance: {params: {atol: X}}}\n"
                            .replace("X", spelling))
    good, bad = load_file(path, "cases/c.yaml")
    assert isinstance(good, Case) and isinstance(bad, CaseError)
    assert (bad.file, bad.line, bad.case_id, bad.key) == ("cases/c.yaml", 3, "a", "tolerance.params.atol")
    assert bad.message == f"{shown} is not a finite number; allowed here: a finite number >= 0"


def test_a_probe_may_still_ask_how_a_framework_takes_nan(tmp_path):
    """Input-validation probes hand their hyper-parameters to the constructor as given: a NaN lr is a
    question for the frameworks there, not a broken case."""
    path = _write(tmp_path, "cases:\n  - {id: p, probe: {hparams: {lr: .nan}}, behaviour: {torch: accepts}}\n")
    (probe,) = load_file(path, "cases/c.yaml")
    assert not isinstance(probe, CaseError) and probe.probe["hparams"]["lr"] != probe.probe["hparams"]["lr"]


def test_a_folder_named_like_a_case_file_is_one_error(tmp_path):
    (tmp_path / "x.yaml").mkdir()
    (error,) = load_file(tmp_path / "x.yaml", "cases/x.yaml")
    assert isinstance(error, CaseError) and error.file == "cases/x.yaml" and "is a folder" in error.message


def test_an_unreadable_file_is_one_error(tmp_path, monkeypatch):
    path = _write(tmp_path, "cases:\n  - {id: a, model: {kind: linear}, steps: 1}\n")

    def refuse(self):  # what chmod 000 does for a user other than root (tests may run as root)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    (error,) = load_file(path, "cases/c.yaml")
    assert isinstance(error, CaseError) and error.file == "cases/c.yaml"
    assert "cannot read the file (Permission denied); check" in error.message


GOOD = "cases:\n  - {id: a, description: café, model: {kind: linear}, steps: 1}\n"


@pytest.mark.parametrize("data, where, words", [
    (GOOD.encode("latin-1"), (2, 29), "byte 0xe9 at byte offset 35 cannot be decoded (invalid continuation byte)"),
    (GOOD.encode()[:36], (2, 29), "byte 0xc3 at byte offset 35 cannot be decoded (unexpected end of data)"),
    (GOOD.encode("utf-16"), (1, 1), "the file is UTF-16 or UTF-32 text (it starts with that byte-order mark)"),
    (GOOD.encode("utf-16-le"), (1, 2), "a NUL byte at byte offset 1: a case file is text"),
    (GOOD.encode().replace(b"linear", b"lin\0ear"), (2, 49), "a NUL byte at byte offset 56"),
])
def test_bytes_that_are_not_utf8_text_are_one_error_with_offset_line_and_column(tmp_path, data, where, words):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    (error,) = load_file(path, "cases/c.yaml")
    assert isinstance(error, CaseError) and (error.file, error.line, error.column) == ("cases/c.yaml", *where)
    assert words in error.message and "save it as UTF-8" in error.message


def test_a_utf8_byte_order_mark_and_crlf_are_read_as_plain_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    (case,) = load_file(path, "cases/c.yaml")
    assert isinstance(case, Case) and case.description == "café" and case.line == 2
    assert case.source_text == GOOD.splitlines(keepends=True)[1]
