"""Training on data larger than memory (mlcase.bakeoff.large): with engine.memory_share set tiny, a partitioned
Parquet source counts as larger than memory and `mlcase bakeoff` fits LightGBM's and XGBoost's own Dask estimators
on a real LocalCluster of 2 workers, validating on the workers."""

from __future__ import annotations

import json

import numpy as np

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
    assert {r["name"] for r in out["leaderboard"]} == {"lightgbm", "xgboost", "majority"}
    assert not is_large(_case(tmp_path / "small", default_df, 0.5))   # the default share: loaded as before
    assert np.isfinite([r["log_loss"] for r in out["leaderboard"]]).all() and case.name == "big"
