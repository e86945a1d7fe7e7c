"""Batch scoring at the model's speed: ``mlcase score`` against the bare pipeline's ``predict_proba``.

Generates a training table and a table to score (default 200,000 rows x 20 columns: 14 numeric,
6 categorical, a planted logistic truth), builds a case on the training table and registers a
logistic champion with ``mlcase run`` (``candidates: [logistic]``, a small budget: not timed),
then measures, each in a fresh process and ``--reps`` times (the median is reported):

- ``mlcase score CASE INPUT -o OUT --json``: the wall time of the whole command, and the
  ``startup_s`` / ``scoring_s`` / ``rows_per_s`` it reports (``startup_s`` counts from the call
  of ``score_file``; the process's own start-up is its wall time minus ``scoring_s``: Python,
  imports, the case and the registry);
- the bare pipeline: a process that imports what it needs, loads the same registered bundle
  (``mlcase.tracking.load_bundle``), reads the same input, calls ``predict_proba`` on one row
  (the warm-up ``mlcase score`` also does at start-up) and times ``bundle.model.predict_proba``
  on all its rows (rows/s), and its own import + load start-up.

The goals (issue #17): ``mlcase score`` at least half the bare pipeline's rows/s, and a
start-up under 2 s, on the local engine.

Usage::

    python benchmarks/score_speed.py [--rows 200000] [--train-rows 20000] [--reps 3]
                                     [--format parquet|csv] [--out benchmarks/out/score_speed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
N_NUMERIC, N_CATEGORICAL = 14, 6
GOAL_RATIO, GOAL_STARTUP_S = 0.5, 2.0


# --------------------------------------------------------------------------- data and champion
def draw(n: int, seed: int):
    """``n`` rows of the 20 columns and the planted binary target ``y``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for j in range(N_NUMERIC):
        cols[f"x{j}"] = rng.poisson(3.0, n).astype(float) if j % 4 == 3 else rng.normal(0.0, 1.0, n)
    for j in range(N_CATEGORICAL):
        levels = [f"c{j}_{i}" for i in range(3 + 2 * j)]
        cols[f"k{j}"] = rng.choice(levels, n)
    df = pd.DataFrame(cols)
    logit = (-1.5 + 1.2 * df["x0"] - 0.8 * df["x1"] + 0.5 * df["x2"] + 0.2 * (df["x3"] - 3)
             + 0.9 * (df["k0"] == "c0_0") - 0.6 * (df["k1"] == "c1_2"))
    df["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return df


def build(out: Path, rows: int, train_rows: int, fmt: str) -> dict:
    """The case (data, case.yaml), a registered logistic champion and the input to score."""
    import shutil

    import yaml

    case_dir = out / "case"
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    draw(train_rows, seed=0).to_csv(case_dir / "train.csv", index=False)
    spec = {"name": "score-speed", "decision": "which requests are flagged", "task": "binary",
            "data": {"source": "train.csv", "target": "y", "positive": "yes"},
            "costs": {"true_positive": 0, "false_positive": 1, "false_negative": 5},
            "baselines": ["majority"], "candidates": ["logistic"], "budget": "20s"}
    (case_dir / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    mlcase = str(Path(sys.executable).parent / "mlcase")
    proc = subprocess.run([mlcase, "run", str(case_dir), "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"mlcase run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    run = json.loads(proc.stdout)
    inp = draw(rows, seed=1).drop(columns=["y"])
    path = out / f"input.{fmt}"
    if fmt == "csv":
        inp.to_csv(path, index=False)
    else:
        inp.to_parquet(path, index=False)
    meta = {"rows": rows, "train_rows": train_rows, "format": fmt, "input": str(path),
            "decision": run.get("decision", {}).get("verdict") if isinstance(run.get("decision"), dict)
            else run.get("decision")}
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


# --------------------------------------------------------------------------- the bare pipeline (a child)
BARE_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import pandas as pd
from mlcase.case import load_case
from mlcase.tracking import load_bundle
case = load_case(sys.argv[1])
bundle = load_bundle(case, "champion")
t1 = time.perf_counter()
path = sys.argv[2]
X = pd.read_csv(path) if path.endswith(".csv") else pd.read_parquet(path)
X = X[bundle.features]
bundle.model.predict_proba(X.iloc[:1])   # warmed up on one row, as mlcase score warms its model at start-up
t2 = time.perf_counter()
p = bundle.model.predict_proba(X)
t3 = time.perf_counter()
print(json.dumps({"import_load_s": t1 - t0, "read_s": t2 - t1, "predict_s": t3 - t2, "rows": len(X),
                  "model": bundle.name, "version": bundle.version, "mean_p": float(p[:, 1].mean())}))
"""


def timed(cmd: list[str], env: dict) -> tuple[float, dict]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "score_speed")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {loadavg()}", flush=True)

    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if (not meta or meta["rows"] != args.rows or meta["train_rows"] != args.train_rows
            or meta["format"] != args.format or not Path(meta["input"]).exists()):
        t = time.perf_counter()
        print(f"building the case ({args.train_rows:,} training rows, `mlcase run` with a logistic candidate) and "
              f"{args.rows:,} rows to score as {args.format} in {out} ...", flush=True)
        meta = build(out, args.rows, args.train_rows, args.format)
        print(f"  done in {time.perf_counter() - t:.0f}s (not timed below); decision {meta['decision']}", flush=True)

    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    mlcase = str(Path(sys.executable).parent / "mlcase")
    case_dir, inp = str(out / "case"), meta["input"]
    scored, bare = [], []
    for rep in range(args.reps):
        wall, res = timed([mlcase, "score", case_dir, inp, "-o", str(out / "scored.parquet"), "--json"], env)
        res["wall_s"] = wall
        res["process_startup_s"] = wall - res["scoring_s"]
        scored.append(res)
        bwall, b = timed([sys.executable, "-c", BARE_CHILD, case_dir, inp], env)
        b["wall_s"] = bwall
        b["rows_per_s"] = b["rows"] / b["predict_s"]
        b["read_predict_rows_per_s"] = b["rows"] / (b["read_s"] + b["predict_s"])
        bare.append(b)
        print(f"  rep {rep + 1}: score {wall:.2f}s wall ({res['rows_per_s']:,} rows/s, startup_s {res['startup_s']:.2f}); "
              f"bare predict_proba {b['predict_s']:.2f}s ({b['rows_per_s']:,.0f} rows/s), import+load "
              f"{b['import_load_s']:.2f}s", flush=True)

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    s_rate, b_rate = med(scored, "rows_per_s"), med(bare, "rows_per_s")
    s_start, s_proc = med(scored, "startup_s"), med(scored, "process_startup_s")
    first = scored[-1]
    print(f"\n{meta['rows']:,} rows x {N_NUMERIC + N_CATEGORICAL} columns ({N_NUMERIC} numeric, {N_CATEGORICAL} "
          f"categorical) from {meta['format']}, logistic champion (version {bare[-1]['version']}), engine local; "
          f"median of {args.reps} fresh processes each\n")
    print(f"{'':44}{'wall s':>8}{'start-up s':>12}{'scoring s':>11}{'rows/s':>11}")
    print(f"{'mlcase score (whole command)':44}{med(scored, 'wall_s'):8.2f}{s_proc:12.2f}"
          f"{med(scored, 'scoring_s'):11.2f}{s_rate:11,.0f}")
    print(f"{'  of which score_file start-up (startup_s)':44}{'':8}{s_start:12.2f}")
    print(f"{'bare pipeline (load + read + predict_proba)':44}{med(bare, 'wall_s'):8.2f}"
          f"{med(bare, 'import_load_s'):12.2f}{med(bare, 'predict_s'):11.2f}{b_rate:11,.0f}")
    b_io_rate = med(bare, "read_predict_rows_per_s")
    print(f"{'bare pipeline, reading the input too':44}{'':8}{'':12}"
          f"{med(bare, 'read_s') + med(bare, 'predict_s'):11.2f}{b_io_rate:11,.0f}")
    print("  (mlcase's rows/s includes reading the input, validation, conformal sets, decisions and writing the "
          "output; the bare rows/s is predict_proba alone, or reading + predict_proba)")
    ratio = s_rate / b_rate
    per_rep = [r["rows_per_s"] / b["rows_per_s"] for r, b in zip(scored, bare, strict=True)]
    print(f"  (ratio within each repetition, both run back to back: {', '.join(f'{x:.2f}' for x in per_rep)}; "
          f"median {statistics.median(per_rep):.2f})")
    print(f"\nrows/s mlcase score / bare predict_proba: {ratio:.2f} (goal >= {GOAL_RATIO}): "
          f"{'met' if ratio >= GOAL_RATIO else 'NOT met'}; against reading + predict_proba: {s_rate / b_io_rate:.2f}")
    print(f"start-up of mlcase score (process wall - scoring_s): {s_proc:.2f}s (goal < {GOAL_STARTUP_S:.0f}s): "
          f"{'met' if s_proc < GOAL_STARTUP_S else 'NOT met'}; score_file's own startup_s {s_start:.2f}s")
    print(f"scored {first['scored']:,} of {first['rows']:,} rows; invalid {first['invalid_rows']}; fallbacks "
          f"{first['fallbacks'] or 'none'}; decisions {first['decisions']}; notes {first['notes'] or 'none'}")
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
