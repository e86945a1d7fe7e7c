"""Monitoring at scale: ``mlcase.monitor`` vs Evidently's DataDriftPreset on the same data.

Generates a training table (with a planted truth) and a log of recent records
(default 1,000,000 rows x 30 features over 30 daily windows) with drift planted
in three columns and a negligible shift in a fourth, then times

- ``mlcase.monitor.monitor`` on the records as a Parquet file and as the serving
  log (SQLite, inputs as JSON), each in a fresh process (its peak memory is
  reported): per-window drift, decisions, fallbacks, estimated performance, and
  drift over all rows;
- with ``--compacted`` (the default): a copy of the SQLite log compacted by
  ``mlcase log compact`` (a child process, timed apart) up to the start of its last
  day, which stays in SQLite as the live tail, then ``monitor`` on it in a fresh
  process: the compacted Parquet part plus the tail (issue #17's goal: 1M x 30
  in under 2 s);
- Evidently's ``Report([DataDriftPreset()])`` on the same features (reference =
  the training rows mlcase's reference is built from, current = all records),
  in a venv of its own made here (Evidently 0.7 does not import with pandas 3):
  ``python3 -m venv benchmarks/.venv-evidently`` + ``pip install evidently
  "pandas<3" pyarrow``.

It prints both times, the ratio (target: mlcase at least 5x faster) and whether
both flag the same drifted columns (mlcase: drift over all rows; Evidently: its
per-column drift flags).

Usage::

    python benchmarks/monitor_scale.py [--rows 1000000] [--features 30] [--days 30]
                                       [--skip-evidently] [--no-compacted] [--reps 1]
                                       [--out benchmarks/out/monitor_scale]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-evidently"
N_CATEGORICAL = 5
DRIFTED = ("n0", "n1", "k0")       # planted drift
NEGLIGIBLE = "n2"                  # a 0.02-sd shift: significant at 1M rows, not worth an alert
GOAL_COMPACTED_S = 2.0             # issue #17: monitor 1M x 30 on the compacted log in under 2 s


# --------------------------------------------------------------------------- data
def generate(out: Path, rows: int, n_features: int, days: int, train_rows: int = 50_000, seed: int = 0) -> dict:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_num = n_features - N_CATEGORICAL
    levels = {f"k{j}": [f"v{i}" for i in range(5 + 3 * j)] for j in range(N_CATEGORICAL)}

    def draw(n: int, current: bool) -> pd.DataFrame:
        cols = {}
        for j in range(n_num):
            if j % 5 == 3:      # counts with many ties
                x = rng.poisson(3.0, n).astype(float)
            elif j % 5 == 4:    # skewed
                x = rng.lognormal(0.0, 0.7, n)
            else:
                x = rng.normal(0.0, 1.0, n)
            cols[f"n{j}"] = x
        for name, values in levels.items():
            p = np.linspace(1, 2, len(values))
            p = p / p.sum()
            if current and name == "k0":
                p = p[::-1] ** 3
                p = p / p.sum()
            cols[name] = rng.choice(values, n, p=p)
        df = pd.DataFrame(cols)
        if current:
            df["n0"] = df["n0"] + 1.0
            df["n1"] = df["n1"] * 2.0
            df[NEGLIGIBLE] = df[NEGLIGIBLE] + 0.02
        logit = -1 + 0.8 * df["n0"] - 0.5 * df["n1"] + 0.3 * (df["k1"] == "v0")
        df["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
        return df

    case_dir = out / "case"
    case_dir.mkdir(parents=True, exist_ok=True)
    draw(train_rows, current=False).to_parquet(case_dir / "train.parquet", index=False)
    spec = {"name": "monitor-scale", "decision": "benchmark", "task": "binary",
            "data": {"source": "train.parquet", "target": "y", "positive": "yes"},
            "costs": {"false_positive": 1.0, "false_negative": 4.0}, "monitoring": {"window": "1d"}}
    (case_dir / "case.yaml").write_text(json.dumps(spec))
    case, bundle, features = fit_bundle(case_dir)

    cur = draw(rows, current=True).drop(columns=["y"])
    start = pd.Timestamp("2024-01-01", tz="UTC").value // 10**9
    cur.insert(0, "ts", pd.to_datetime(start + np.sort(rng.integers(0, days * 86400, rows)), unit="s", utc=True))
    cur.insert(0, "request_id", [f"r{i}" for i in range(rows)])
    p = bundle.scores(cur[features])
    flag = p >= bundle.threshold
    cur["score"] = p
    cur["decision"] = np.where(flag, "flag", "auto")
    cur["prediction"] = np.where(flag, "yes", "no")
    cur.to_parquet(out / "current.parquet", index=False)
    write_sqlite_log(out / "predictions.db", out / "current.parquet", features)
    # Evidently compares the same training rows the mlcase reference summarises
    from mlcase.data import prepare

    ds = prepare(case)
    ds.X_train[features].to_parquet(out / "reference_features.parquet", index=False)
    meta = {"rows": rows, "features": features, "days": days, "train_rows": int(len(ds.split.train))}
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def fit_bundle(case_dir: Path):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlcase.bundle import ModelBundle
    from mlcase.case import load_case
    from mlcase.data import prepare
    from mlcase.monitor import build_reference

    case = load_case(case_dir)
    ds = prepare(case)
    cats = [f for f in ds.features if f.startswith("k")]
    nums = [f for f in ds.features if f not in cats]
    pre = ColumnTransformer([("num", StandardScaler(), nums), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    model = make_pipeline(pre, LogisticRegression(max_iter=500)).fit(ds.X_train, ds.y_train)
    bundle = ModelBundle(model=model, name="logistic", role="candidate", task="binary", features=ds.features,
                         schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=0.2)
    bundle.reference = build_reference(ds, bundle)
    # a local benchmark artifact written and read by this script only
    (case_dir / "bundle.pkl").write_bytes(pickle.dumps(bundle))
    return case, bundle, ds.features


def write_sqlite_log(path: Path, parquet: Path, features: list[str]) -> None:
    """The serving log's layout (docs/contracts.md), inputs as JSON built by DuckDB."""
    import duckdb

    from mlcase.serve.predlog import COLUMNS, SQLITE_DDL

    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    for ddl in SQLITE_DDL:  # the serving log's own tables and indexes
        con.execute(ddl)
    dk = duckdb.connect()
    struct = ", ".join(f'"{f}" := "{f}"' for f in features)
    cur = dk.execute(f"""SELECT request_id, strftime(ts, '%Y-%m-%dT%H:%M:%SZ'), 1, 'logistic', 'model', 0, NULL,
                                to_json(struct_pack({struct})), score, NULL, prediction, decision, NULL, 1.0::DOUBLE, NULL
                         FROM read_parquet(?)""", [str(parquet)])
    while True:
        rows = cur.fetchmany(100_000)
        if not rows:
            break
        con.executemany(f"INSERT INTO predictions ({','.join(COLUMNS[:15])}) VALUES ({','.join('?' * 15)})", rows)
    con.commit()
    con.close()
    dk.close()


def compacted_copy(out: Path, days: int, env: dict) -> dict:
    """A fresh copy of the SQLite log compacted by ``mlcase log compact`` up to the start of its last day.

    The copy (``compacted/predictions.db``) keeps the original for the SQLite-JSON row; its last day
    stays in SQLite as the live tail, as a served log's open window does.
    """
    import shutil

    import pandas as pd

    folder = out / "compacted"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    db = folder / "predictions.db"
    shutil.copyfile(out / "predictions.db", db)
    before = (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=days - 1)).strftime("%Y-%m-%dT%H:%M:%S")
    mlcase = str(Path(sys.executable).parent / "mlcase")
    t = time.perf_counter()
    res = run_child([mlcase, "log", "compact", str(out / "case"), "--log", str(db), "--before", before, "--json"], env)
    res["wall_seconds"] = time.perf_counter() - t
    res["db"] = str(db)
    return res


# --------------------------------------------------------------------------- timed children
def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_mlcase(out: Path, log: str) -> None:
    from mlcase.case import load_case
    from mlcase.monitor import monitor

    case = load_case(out / "case")
    bundle = pickle.loads((out / "case" / "bundle.pkl").read_bytes())
    rss0 = peak_rss_mb()
    t = time.perf_counter()
    result = monitor(case, log=log, bundle=bundle)
    seconds = time.perf_counter() - t
    rss1 = peak_rss_mb()
    overall = result.overall["drift"]
    print(json.dumps({"seconds": seconds, "rss_before_mb": rss0, "rss_peak_mb": rss1, "rows": result.n_rows,
                      "windows": len(result.windows),
                      "drifted": sorted(f for f, s in overall.items() if s["status"] == "drift"),
                      "significant": sorted(f for f, s in overall.items() if s["p_value"] is not None and s["p_value"] < 0.05),
                      "drift_alert_features": sorted({a["feature"] for a in result.alerts if a["kind"] == "drift"})}))


EVIDENTLY_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset
    features = json.loads(sys.argv[3])
    t0 = time.perf_counter()
    ref = pd.read_parquet(sys.argv[1], columns=features)
    cur = pd.read_parquet(sys.argv[2], columns=features)
    t1 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    t2 = time.perf_counter()
    drifted, methods = [], {}
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("column") is None or "method" not in cfg:
            continue
        method, value, threshold = cfg["method"], m["value"], cfg["threshold"]
        methods[method] = methods.get(method, 0) + 1
        is_p = "p_value" in method.lower()
        if (value < threshold) if is_p else (value >= threshold):
            drifted.append(cfg["column"])
    print(json.dumps({"read_seconds": t1 - t0, "run_seconds": t2 - t1, "seconds": t2 - t0,
                      "rss_peak_mb": int(next(l for l in Path("/proc/self/status").read_text().splitlines()
                                              if l.startswith("VmHWM:")).split()[1]) / 1024,
                      "drifted": sorted(drifted), "methods": methods}))
""")


def ensure_evidently_venv() -> tuple[Path | None, str | None]:
    python = VENV / "bin" / "python"
    if python.exists():
        return python, None
    steps = [["python3", "-m", "venv", str(VENV)],
             [str(python), "-m", "pip", "install", "-q", "evidently", "pandas<3", "pyarrow"]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return None, f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {' | '.join(tail)}"
    return python, None


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def run_child(cmd: list[str], env=None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=30)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "monitor_scale")
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--reps", type=int, default=1, help="Fresh processes per mlcase row (the median is shown).")
    ap.add_argument("--compacted", action=argparse.BooleanOptionalAction, default=True,
                    help="Also time monitor on a copy of the SQLite log compacted by `mlcase log compact` "
                         "(default: on).")
    ap.add_argument("--child", choices=["mlcase"], help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()
    if args.child == "mlcase":
        child_mlcase(out, args.log)
        return

    print(f"load average at start: {loadavg()}", flush=True)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if not meta or meta["rows"] != args.rows or len(meta["features"]) != args.features or meta["days"] != args.days:
        t = time.perf_counter()
        print(f"generating {args.rows:,} rows x {args.features} features over {args.days} days in {out} ...",
              flush=True)
        meta = generate(out, args.rows, args.features, args.days)
        print(f"  done in {time.perf_counter() - t:.0f}s (not timed below)", flush=True)
    features = meta["features"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    me = [sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--rows", str(args.rows),
          "--features", str(args.features), "--days", str(args.days), "--child", "mlcase"]
    def timed(log: str) -> dict:
        runs = [run_child(me + ["--log", log], env) for _ in range(max(args.reps, 1))]
        res = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]   # the median run
        res["all_seconds"] = [round(r["seconds"], 2) for r in runs]
        return res

    ml_parquet = timed(str(out / "current.parquet"))
    ml_sqlite = timed(str(out / "predictions.db"))
    compaction = ml_compacted = None
    if args.compacted:
        compaction = compacted_copy(out, args.days, env)
        ml_compacted = timed(compaction["db"])

    print(f"\n{args.rows:,} logged rows x {args.features} features, {meta['train_rows']:,} reference rows, "
          f"{ml_parquet['windows']} daily windows; planted drift in {', '.join(DRIFTED)}, "
          f"a negligible shift in {NEGLIGIBLE}\n")
    print(f"{'':34}{'seconds':>9}{'peak RSS MB':>13}  drifted columns over all rows")
    print(f"{'mlcase monitor (Parquet records)':34}{ml_parquet['seconds']:9.2f}{ml_parquet['rss_peak_mb']:13.0f}  "
          f"{', '.join(ml_parquet['drifted'])}")
    print(f"{'mlcase monitor (SQLite log, JSON)':34}{ml_sqlite['seconds']:9.2f}{ml_sqlite['rss_peak_mb']:13.0f}  "
          f"{', '.join(ml_sqlite['drifted'])}")
    if ml_compacted is not None:
        print(f"{'mlcase monitor (compacted log)':34}{ml_compacted['seconds']:9.2f}{ml_compacted['rss_peak_mb']:13.0f}  "
              f"{', '.join(ml_compacted['drifted'])}")
    print(f"  (mlcase RSS before the call: {ml_parquet['rss_before_mb']:.0f} MB, imports and model included)")
    if args.reps > 1:
        rows = [("Parquet", ml_parquet), ("SQLite", ml_sqlite)] + ([("compacted", ml_compacted)] if ml_compacted else [])
        print(f"  (median of {args.reps} fresh processes each: " +
              "; ".join(f"{name} {r['all_seconds']}" for name, r in rows) + ")")
    if ml_compacted is not None:
        c, sq = ml_compacted["seconds"], ml_sqlite["seconds"]
        same = ml_compacted["rows"] == ml_sqlite["rows"] and ml_compacted["drifted"] == ml_sqlite["drifted"]
        print(f"  (compacted log: {compaction['rows']:,} rows in {compaction['files']} Parquet file(s) by `mlcase log "
              f"compact` in {compaction['seconds']:.1f}s ({compaction['wall_seconds']:.1f}s with its start-up, not in "
              f"the monitor time), {compaction['tail_rows']:,} rows in the live tail)")
        print(f"compacted log: {c:.2f}s = {c / GOAL_COMPACTED_S:.2f}x the {GOAL_COMPACTED_S:.0f} s goal "
              f"({'met' if c < GOAL_COMPACTED_S else 'NOT met'}); {sq / c:.1f}x faster than the SQLite-JSON log "
              f"({c / sq:.2f} of its time); same rows and drifted columns as the SQLite log: {'yes' if same else 'no'}")
    print(f"  (per-window drift alerts on: {', '.join(ml_parquet['drift_alert_features'])}; tests significant at "
          f"0.05 over all rows: {', '.join(ml_parquet['significant'])})")
    if args.skip_evidently:
        print(f"load average at end: {loadavg()}")
        return
    python, why = ensure_evidently_venv()
    if python is None:
        print(f"\nEvidently not run: its venv could not be built: {why}")
        return
    ev = run_child([str(python), "-c", EVIDENTLY_CHILD, str(out / "reference_features.parquet"),
                    str(out / "current.parquet"), json.dumps(features)], env)
    print(f"{'Evidently DataDriftPreset':34}{ev['seconds']:9.2f}{ev['rss_peak_mb']:13.0f}  {', '.join(ev['drifted'])}")
    print(f"  (Evidently: {ev['read_seconds']:.2f}s reading Parquet + {ev['run_seconds']:.2f}s in Report.run; "
          f"methods {ev['methods']})")
    ratio = ev["seconds"] / ml_parquet["seconds"]
    ratio_run = ev["run_seconds"] / ml_parquet["seconds"]
    same = set(ev["drifted"]) == set(ml_parquet["drifted"])
    print(f"\nratio Evidently / mlcase (Parquet, both including the read): {ratio:.1f}x "
          f"(Report.run alone: {ratio_run:.1f}x; vs mlcase on the SQLite log: {ev['seconds'] / ml_sqlite['seconds']:.1f}x)"
          f"; target >= 5x: {'met' if ratio >= 5 else 'NOT met'}")
    print(f"same drifted columns: {'yes' if same else 'no'} (mlcase {sorted(ml_parquet['drifted'])}, "
          f"Evidently {sorted(ev['drifted'])}, planted {sorted(DRIFTED)})")
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
