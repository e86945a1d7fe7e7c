"""Fuzz the CLI with generated case.yaml values and data files: never an internal error, never a broken case.

Hypothesis draws data files (encodings, delimiters, empty, one row, constant columns, inf/NaN, missing
tokens, duplicate and odd names, huge values, wide tables) and case.yaml values (every type at every
field), and runs them through ``init``, ``check``, ``run --budget 5s``, ``score`` and ``explain``.
The property, for every command:

* the exit code is 0 or 2 (``check`` may also exit 1: an error-level finding, by design), never 70;
* exit 2 prints exactly one ``mlcase: error:`` line and no traceback;
* nothing in the case folder is corrupted or half-written: files the command does not own are
  byte-for-byte the same, no temporary file is left, every stage result is readable JSON.

The runs are deterministic (``derandomize=True``, no example database) and bounded: a fixed number of
examples per command (``MLCASE_FUZZ_EXAMPLES`` multiplies them, for a longer search by hand).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlcase.cli import main

SCALE = float(os.environ.get("MLCASE_FUZZ_EXAMPLES", "1"))
SETTINGS = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
LEFTOVERS = (".tmp", ".partial")


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


# --------------------------------------------------------------------------- the property
def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(argv: list[str], capfd, monkeypatch, stdin: str = "") -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capfd.readouterr()
    code = main(argv)
    return code, capfd.readouterr().err


def assert_outcome(code: int, err: str, allowed=(0, 2)) -> None:
    event(f"exit {code}" + (f": {err.split('mlcase: error:')[-1].strip()[:40]}" if code == 2 else ""))
    assert code in allowed, f"exit {code}:\n{err}"
    assert "internal error" not in err and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("mlcase: error:")]
    if code == 2:
        assert len(lines) == 1, f"exit 2 needs one error line:\n{err}"
    else:
        assert not lines, err


def assert_intact(folder: Path, before: dict[str, str], owned: set[str]) -> None:
    """Only ``owned`` files (and the command's own results) may change; nothing is left half-written."""
    after = snapshot(folder)
    changed = {k for k in before if after.get(k) != before[k]} - owned
    changed = {k for k in changed if not _rewritten_result(k)}
    assert not changed, f"files changed or lost: {sorted(changed)}"
    assert not [k for k in after if k.endswith(LEFTOVERS) or Path(k).name.startswith(".") and k.endswith(".partial")], after
    for k in after:
        if k.startswith(".mlcase/") and k.endswith(".json"):
            json.loads((folder / k).read_text(encoding="utf-8"))  # complete, readable JSON
        if k == "case.yaml":
            yaml.safe_load((folder / k).read_text(encoding="utf-8", errors="replace"))


def _rewritten_result(path: str) -> bool:
    # what check/run rewrite on purpose (atomically): stage results, the datasheet, the report, the card
    return (path.startswith((".mlcase/", "report/", "mlartifacts/")) or path in (
        "datasheet.md", "leaderboard.csv", "model_card.md", "model_card.html") or path.startswith("mlflow.db"))


# --------------------------------------------------------------------------- data files
NAMES = st.one_of(st.sampled_from(["x", "x", "amount", "Amount", "id", "customer_id", "when", "y_1", "", " ",
                                   "a,b", 'q"uote', "naïve", "日付", "n/a", "1", "select", "x y", "x\x85", "#c"]),
                  st.sampled_from(["x1", "x2", "x3", "x4", "x5"]), st.text(min_size=1, max_size=8))
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.sampled_from([0.0, 1.0, -1.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, 1e15]),
                    st.integers(min_value=-(2 ** 63), max_value=2 ** 63))
TEXTS = st.one_of(st.sampled_from(["a", "b", "a", "n/a", "", "NA", "null", "-", "café", "Zürich", "ZÃ¼rich",
                                   "True", "False", "2024-01-31", "1,5", '"', "\n", "inf", "1e400"]),
                  st.text(max_size=12))


@st.composite
def columns(draw, n_rows: int):
    kind = draw(st.sampled_from(["numeric", "numeric", "text", "constant", "bool", "mixed", "int"]))
    if kind == "numeric":
        base = draw(st.sampled_from([0.0, 1e6, 1e300]))
        values = list(np.random.default_rng(draw(st.integers(0, 9))).normal(base, 1 + abs(base) / 10, n_rows))
        for i in draw(st.lists(st.integers(0, max(n_rows - 1, 0)), max_size=3)) if n_rows else []:
            values[i] = draw(NUMBERS)
        return values
    if kind == "int":
        return [int(v) for v in np.random.default_rng(draw(st.integers(0, 9))).integers(0, 5, n_rows)]
    if kind == "text":
        pool = draw(st.lists(TEXTS, min_size=1, max_size=5))
        return [pool[i % len(pool)] for i in range(n_rows)]
    if kind == "constant":
        value = draw(st.one_of(NUMBERS, TEXTS))
        return [value] * n_rows
    if kind == "bool":
        return [bool(i % 3) for i in range(n_rows)]
    return [draw(st.one_of(NUMBERS, TEXTS)) if i % 7 == 0 else float(i) for i in range(n_rows)]


@st.composite
def data_files(draw, target: str = "y"):
    """(file name, bytes) of a table with a ``target`` column most of the time."""
    shape = draw(st.sampled_from(["empty", "header", "one", "few", "small", "small", "small", "small", "wide",
                                  "tall"]))
    n_rows = {"empty": 0, "header": 0, "one": 1, "few": draw(st.integers(2, 12)), "small": draw(st.integers(40, 160)),
              "wide": 60, "tall": 400}[shape]
    n_cols = 160 if shape == "wide" else draw(st.integers(1, 6))
    names = [draw(NAMES) for _ in range(n_cols)] if shape != "wide" else [f"c{i}" for i in range(n_cols)]
    frame = pd.DataFrame({f"col{i}": draw(columns(n_rows)) for i in range(n_cols)})
    frame.columns = names
    if draw(st.integers(0, 4)) or n_cols == 1:
        labels = draw(st.sampled_from([("yes", "no"), ("yes", "no"), ("Yes", "No"), (1, 0), ("only", "only"),
                                       (True, False)]))
        frame[target] = [labels[(i * 7 + i // 3) % 2] for i in range(n_rows)]
    fmt = draw(st.sampled_from(["csv", "csv", "csv", "csv", "tsv", "parquet", "parquet", "empty-bytes"]))
    if shape == "empty" or fmt == "empty-bytes":
        return "data.csv", b""
    if fmt == "parquet":
        buf = io.BytesIO()
        try:
            frame.columns = _unique(frame.columns)  # Parquet refuses repeated names
            frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}).to_parquet(buf, index=False)
        except Exception:  # noqa: BLE001 - a frame pyarrow cannot store: write it as CSV instead
            fmt = "csv"
        else:
            return "data.parquet", buf.getvalue()
    sep = {"csv": draw(st.sampled_from([",", ",", ";", "|"])), "tsv": "\t"}[fmt]
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    text = frame.to_csv(index=False, sep=sep)
    if shape == "header":
        text = sep.join(map(str, names)) + "\n"
    return f"data.{'tsv' if fmt == 'tsv' else 'csv'}", text.encode(encoding, errors="replace")


def _unique(names) -> list[str]:
    out, seen = [], set()
    for n in map(str, names):
        while n in seen:
            n += "_"
        seen.add(n)
        out.append(n)
    return out


# --------------------------------------------------------------------------- init and check on generated data
@settings(max_examples=examples(30), **SETTINGS)
@given(data=data_files())
def test_init_then_check_on_generated_data(data, tmp_path_factory, capfd, monkeypatch):
    name, payload = data
    folder = tmp_path_factory.mktemp("fuzz-init")
    (folder / name).write_bytes(payload)
    before = snapshot(folder)
    code, err = run_cli(["init", str(folder / name), "--target", "y"], capfd, monkeypatch)
    assert_outcome(code, err)
    assert "not valid YAML" not in err  # the draft itself must always load
    assert_intact(folder, before, owned={"case.yaml"})
    if code != 0:
        assert not (folder / "case.yaml").exists()
        return
    from mlcase.spec import load_spec

    load_spec(folder / "case.yaml")  # the draft loads
    before = snapshot(folder)
    code, err = run_cli(["check", str(folder)], capfd, monkeypatch)
    assert_outcome(code, err, allowed=(0, 1, 2))
    assert_intact(folder, before, owned=set())


@settings(max_examples=examples(2), **SETTINGS)
@given(data=data_files())
def test_run_with_a_5s_budget_on_generated_data(data, tmp_path_factory, capfd, monkeypatch):
    name, payload = data
    folder = tmp_path_factory.mktemp("fuzz-run")
    (folder / name).write_bytes(payload)
    code, err = run_cli(["init", str(folder / name), "--target", "y"], capfd, monkeypatch)
    assert_outcome(code, err)
    if code != 0:
        return
    before = snapshot(folder)
    code, err = run_cli(["run", str(folder), "--budget", "5s", "--quiet"], capfd, monkeypatch)
    assert_outcome(code, err)
    assert_intact(folder, before, owned=set())


# --------------------------------------------------------------------------- case.yaml values
FIELDS = ["task", "budget", "data.target", "data.positive", "data.id", "data.time", "data.label_delay",
          "data.features", "split.method", "split.test_size", "split.valid_size", "split.seed", "split.cv_folds",
          "costs.true_positive", "costs.false_positive", "costs.false_negative", "costs.currency",
          "constraints.review_capacity", "constraints.latency_p95_ms", "constraints.min_lift",
          "constraints.operating_cost", "problem.volume", "baselines", "candidates", "slices", "sensitive",
          "conformal.alpha", "monitoring.psi_alert", "monitoring.window", "assumptions", "name", "tracking_uri"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([".nan", "nan", "inf", "-1", "0", "1e400", "90s", "-5m", "300/day", "1/0", "",
                                    "balance > 1800", "avg(balance) > 0", "student", "default", "Yes", "1; DROP",
                                    "http://127.0.0.1:9", "sqlite:///x.db", "0.5", "2m", "stratified", "group"]),
                   st.text(max_size=10), st.lists(st.sampled_from(["majority", "linear", "balance", 1, None]),
                                                  max_size=3),
                   st.dictionaries(st.sampled_from(["rule", "text", "check", "include", "x"]),
                                   st.sampled_from(["balance > 1", "a", 3, None]), max_size=2))


@settings(max_examples=examples(40), **SETTINGS)
@given(changes=st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=3))
def test_check_on_generated_case_values(changes, trained, tmp_path_factory, capfd, monkeypatch):
    folder = tmp_path_factory.mktemp("fuzz-spec") / "case"
    shutil.copytree(trained, folder, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts", "predictions.db*",
                                                                   "report", "*.html"))
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    for path, value in changes:
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[last] = value
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    before = snapshot(folder)
    code, err = run_cli(["check", str(folder)], capfd, monkeypatch)
    assert_outcome(code, err, allowed=(0, 1, 2))
    assert_intact(folder, before, owned=set())


# --------------------------------------------------------------------------- score and explain on a trained case
@pytest.fixture(scope="module")
def scored_case(trained, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz-score") / "case"
    shutil.copytree(trained, folder)
    return folder


RECORD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20),
                          st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                          st.sampled_from(["Yes", "No", "1e400", "NaN", "", "729.5"]),
                          st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))


@st.composite
def records(draw):
    base = {"student": "No", "balance": 729.5, "income": 44361.6}
    rec = dict(base)
    for key in draw(st.lists(st.sampled_from(["student", "balance", "income", "extra", "account_id"]), max_size=3)):
        rec[key] = draw(RECORD_VALUES)
    for key in draw(st.lists(st.sampled_from(list(base)), max_size=1)):
        rec.pop(key, None)
    return rec


@settings(max_examples=examples(25), **SETTINGS)
@given(payload=st.one_of(records(), st.lists(records(), min_size=0, max_size=3), RECORD_VALUES,
                         st.sampled_from(['{"student": "No", "balance": Infinity, "income": 1}', "[]", "{", "nul",
                                          '{"student": "No", "balance": 1e999, "income": 1}'])))
def test_explain_on_generated_records(payload, scored_case, capfd, monkeypatch):
    text = payload if isinstance(payload, str) and payload[:1] in "[{n" else json.dumps(payload, allow_nan=True)
    before = snapshot(scored_case)
    code, err = run_cli(["explain", str(scored_case)], capfd, monkeypatch, stdin=text)
    assert_outcome(code, err)
    assert_intact(scored_case, before, owned=set())


@st.composite
def scoring_inputs(draw):
    base = pd.read_csv(Path(__file__).resolve().parents[2] / "examples" / "default" / "default.csv", nrows=30)
    base = base.drop(columns=["default"])
    for col in draw(st.lists(st.sampled_from(["student", "balance", "income", "account_id"]), max_size=2)):
        base[col] = draw(columns(len(base)))
    if draw(st.booleans()):
        base = base.drop(columns=[draw(st.sampled_from(list(base.columns)))])
    if draw(st.booleans()):
        base = base.rename(columns={"income": "balance"})  # a repeated name
    name, payload = draw(data_files()) if draw(st.integers(0, 3)) == 0 else ("in.csv", None)
    if payload is None:
        encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
        payload = base.to_csv(index=False).encode(encoding, errors="replace")
    return name, payload


@settings(max_examples=examples(25), **SETTINGS)
@given(data=scoring_inputs(), engine=st.sampled_from(["local", "local", "dask"]))
def test_score_on_generated_files(data, engine, scored_case, capfd, monkeypatch):
    name, payload = data
    inputs = scored_case / "fuzz-inputs"
    inputs.mkdir(exist_ok=True)
    path = inputs / name
    path.write_bytes(payload)
    (scored_case / "scores.csv").write_text("earlier,output\n1,2\n")
    before = snapshot(scored_case)
    code, err = run_cli(["score", str(scored_case), str(path), "-o", str(scored_case / "scores.csv"),
                         "--engine", engine, "--quiet"], capfd, monkeypatch)
    assert_outcome(code, err)
    owned = {"scores.errors.csv"} | ({"scores.csv"} if code == 0 else set())
    assert_intact(scored_case, before, owned=owned)
    if code == 0:
        pd.read_csv(scored_case / "scores.csv")  # a complete CSV
