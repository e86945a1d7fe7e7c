"""Training on data larger than memory (mlcase.bakeoff.large): with engine.memory_share set tiny, a partitioned
Parquet source counts as larger than memory and `mlcase bakeoff` fits LightGBM's and XGBoost's own Dask estimators
on a real LocalCluster of 2 workers, validating on the workers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcase.bakeoff.large import run_large_bakeoff
from mlcase.case import load_case
from mlcase.checks.profile import is_large
from mlcase.cli import main


def _case(root, default_df, share: float):
    (root / "data").mkdir(parents=True)
    for i in range(4):   # four partitions, as a warehouse export lands
        default_df.iloc[i * 2500:(i + 1) * 2500].to_parquet(root / "data" / f"part-{i}.parquet", index=False)
    spec = {"name": "big", "decision": "which accounts get a call", "task": "binary",
            "candidates": ["logistic", "lightgbm", "xgboost"],
            "data": {"source": "data/*.parquet", "target": "default", "positive": "Yes", "id": "account_id"},
            "costs": {"false_positive": 50, "false_negative": 400}, "engine": {"memory_share": share}}
    (root / "case.yaml").write_text(json.dumps(spec))
    return load_case(root)


def test_a_source_past_the_memory_share_is_trained_by_the_dask_estimators(tmp_path, default_df, dask_engine):
    case = _case(tmp_path, default_df, 1e-9)
    assert is_large(case)
    res = run_large_bakeoff(case, dask_engine, quiet=True)
    board = {r["name"]: r for r in res.leaderboard}
    assert board["lightgbm"]["estimator"] == "lightgbm.DaskLGBMClassifier"
    assert board["xgboost"]["estimator"] == "xgboost.dask.DaskXGBClassifier"
    assert "logistic" not in board   # no Dask estimator: not trained out of core
    assert res.rows == len(default_df) == res.train_rows + res.valid_rows and res.partitions == 4
    assert 0.15 * len(default_df) < res.valid_rows < 0.25 * len(default_df)
    floor = board["majority"]["log_loss"]
    for fam in ("lightgbm", "xgboost"):   # both learn: far below the prior's log loss on the held-out rows
        assert board[fam]["valid_rows"] == res.valid_rows and board[fam]["log_loss"] < 0.75 * floor
    assert res.candidate in ("lightgbm", "xgboost")
    from sklearn.metrics import roc_auc_score

    X = default_df[["student", "balance", "income"]].astype({"student": "category"})
    y = (default_df["default"] == "Yes").to_numpy()
    for model in res.models.values():   # plain estimators come back, ready to score in one process
        assert roc_auc_score(y, model.predict_proba(X)[:, 1]) > 0.9


def test_the_bakeoff_command_selects_them_and_a_local_engine_is_one_line(tmp_path, default_df, dask_engine, capsys):
    root = tmp_path / "case"
    case = _case(root, default_df, 1e-9)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert main(["bakeoff", str(root), "--engine", "local", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "engine.memory_share" in err and "--engine dask" in err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before   # nothing written
    assert main(["bakeoff", str(root), "--scheduler", dask_engine.info.address, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)   # exactly one JSON object on stdout
    assert out["kind"] == "out_of_core" and out["rows"] == len(default_df)
    assert {r["name"] for r in out["leaderboard"]} == {"lightgbm", "xgboost", "majority", "linear"}   # the default baselines
    assert not is_large(_case(tmp_path / "small", default_df, 0.5))   # the default share: loaded as before
    assert np.isfinite([r["log_loss"] for r in out["leaderboard"]]).all() and case.name == "big"


# --------------------------------------------------------------------------- the baselines out of core
def _planted(root, task: str, baselines: list, n: int = 12000, seed: int = 7):
    """A case over 4 Parquet partitions whose truth is linear in x1..x3 and a 3-level region (some x2 missing)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(2.0, 3.0, size=n), "x3": rng.uniform(0, 10, size=n),
                       "region": rng.choice(["north", "south", "west"], size=n)})
    lin = 1.5 * df.x1 - 0.4 * df.x2 + 0.2 * df.x3 + df.region.map({"north": 0.0, "south": 1.0, "west": -1.0}) - 0.5
    df.loc[rng.random(n) < 0.05, "x2"] = np.nan
    if task == "binary":
        df["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-lin)), "yes", "no")
    else:
        df["y"] = 100.0 + 10.0 * lin + rng.normal(0, 5.0, size=n)
    (root / "data").mkdir(parents=True)
    for i in range(4):
        df.iloc[i * n // 4:(i + 1) * n // 4].to_parquet(root / "data" / f"part-{i}.parquet", index=False)
    spec = {"name": "planted", "decision": "who gets the offer", "task": task, "candidates": ["lightgbm"],
            "data": {"source": "data/*.parquet", "target": "y", **({"positive": "yes"} if task == "binary" else {})},
            "baselines": baselines, "engine": {"memory_share": 1e-9}}
    (root / "case.yaml").write_text(json.dumps(spec))
    return load_case(root)


def _in_memory(case):
    """The train and valid rows of the out-of-core split, as plain frames with text columns as text again."""
    from mlcase.bakeoff.large import read_split

    train, valid, features = read_split(case)
    out = []
    for part in (train.compute(), valid.compute()):
        X = part[features].astype({"region": str})
        out.append((X, part["_y"].to_numpy()))
    return out


def _reference_linear(task: str):
    """The in-memory reference: mean-filled, standardised numbers and a one-hot region, fitted by scikit-learn."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = make_column_transformer((make_pipeline(SimpleImputer(), StandardScaler()), ["x1", "x2", "x3"]),
                                   (OneHotEncoder(handle_unknown="ignore"), ["region"]))
    return make_pipeline(prep, LogisticRegression(C=1e4) if task == "binary" else Ridge(alpha=1e-6))


def test_the_linear_and_rule_baselines_are_fitted_out_of_core_and_match_in_memory_fits(tmp_path, dask_engine):
    from sklearn.metrics import log_loss

    from mlcase.baselines import RuleBaseline

    rule = "x1 > 0.5 AND region <> 'west'"
    case = _planted(tmp_path, "binary", ["majority", "linear", {"rule": rule}])
    res = run_large_bakeoff(case, dask_engine, quiet=True)
    board = {r["name"]: r for r in res.leaderboard}
    assert set(board) == {"majority", "linear", "rule", "lightgbm"}
    assert board["linear"]["kind"] == board["rule"]["kind"] == "baseline" and board["rule"]["expression"] == rule
    assert board["linear"]["fit_s"] >= 0 and board["linear"]["valid_rows"] == res.valid_rows
    assert board["linear"]["log_loss"] < 0.75 * board["majority"]["log_loss"]   # it learns the planted truth
    (X_train, y_train), (X_valid, y_valid) = _in_memory(case)
    assert len(y_valid) == res.valid_rows
    ref = _reference_linear("binary").fit(X_train, y_train)
    assert abs(board["linear"]["log_loss"] - log_loss(y_valid, ref.predict_proba(X_valid)[:, 1])) < 0.005
    mem = RuleBaseline(rule).fit(X_train, y_train)   # the same rule, fitted and scored in memory on the same rows
    assert board["rule"]["log_loss"] == pytest.approx(log_loss(y_valid, mem.predict_proba(X_valid)[:, 1]), abs=1e-9)
    assert board["rule"]["brier"] == pytest.approx(np.mean((mem.predict_proba(X_valid)[:, 1] - y_valid) ** 2), abs=1e-9)
    assert board["majority"]["log_loss"] > board["rule"]["log_loss"]


def test_regression_baselines_out_of_core(tmp_path, dask_engine):
    from mlcase.baselines import RuleBaseline

    rule = "100 + 15 * x1"
    case = _planted(tmp_path, "regression", ["mean", "linear", {"rule": rule, "name": "expert"}])
    res = run_large_bakeoff(case, dask_engine, quiet=True)
    board = {r["name"]: r for r in res.leaderboard}
    assert board["linear"]["estimator"] == "sklearn.linear_model.SGDRegressor (partial_fit)"
    (X_train, y_train), (X_valid, y_valid) = _in_memory(case)
    ref = _reference_linear("regression").fit(X_train, y_train)
    ref_rmse = float(np.sqrt(np.mean((ref.predict(X_valid) - y_valid) ** 2)))
    assert board["linear"]["rmse"] < 0.5 * board["mean"]["rmse"] and board["linear"]["rmse"] < 1.01 * ref_rmse
    mem = RuleBaseline(rule, task="regression").fit(X_train, y_train)
    assert board["expert"]["rmse"] == pytest.approx(np.sqrt(np.mean((mem.predict(X_valid) - y_valid) ** 2)), abs=1e-9)


def test_a_bad_rule_is_one_line_before_anything_is_written(tmp_path, dask_engine, capsys):
    from mlcase.bakeoff.large import check_large
    from mlcase.errors import RuleError

    root = tmp_path / "case"
    case = _planted(root, "binary", ["linear", {"rule": "x1 > 0.5 AND regoin = 'west'"}], n=400)
    with pytest.raises(RuleError, match=r"baselines\[1\]\.rule: unknown column 'regoin' \(did you mean 'region'\?\)"):
        check_large(case, dask_engine)
    spec = json.loads((root / "case.yaml").read_text())
    spec["baselines"] = [{"rule": "region > 3"}]   # parses, but DuckDB cannot compare text to a number
    (root / "case.yaml").write_text(json.dumps(spec))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert main(["bakeoff", str(root), "--scheduler", dask_engine.info.address, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "baselines[0].rule" in captured.err and "DuckDB" in captured.err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before   # nothing written
