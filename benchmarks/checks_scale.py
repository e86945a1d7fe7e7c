"""Data checks at scale: 1M rows x 50 columns, against a plain pandas pass on the same frame.

Builds a synthetic binary case (40 numeric columns with some missing values, 6 categorical
columns from 3 to 5,000 levels, an id, a time column with a label delay, a sensitive column
and the target, with a planted leak and late labels), runs :func:`mlcase.checks.run_checks` and the datasheet, and prints wall time,
rows per second and peak memory side by side with the anchor: ``df.describe(include="all")``
plus ``df.duplicated()`` (what a person would run by hand, with none of the leakage, shift,
proxy or label-maturity checks), timed in a fresh process on the same frame (run after mlcase's steps in
this one, it reused the memory they had freed and showed no growth). Peak memory is the resident set size
sampled every 5 ms, shown as the growth over the size before the step (the frame itself is listed separately).

Usage: ``python benchmarks/checks_scale.py [--rows 1000000] [--cols 50]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil


class PeakRSS:
    """Context manager: the largest resident set size seen while inside, sampled in a thread."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.proc = psutil.Process()
        self.start = self.peak = 0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        return False

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def make_frame(rows: int, cols: int, seed: int = 0) -> pd.DataFrame:
    """A binary-target table with ``cols`` columns: id, time, target, sensitive, 6 categoricals, numerics."""
    rng = np.random.default_rng(seed)
    n_cat = 6
    n_num = cols - 4 - n_cat
    data: dict[str, object] = {"row_id": np.arange(rows)}
    data["ts"] = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730 * 86400, rows), unit="s")
    X = rng.normal(size=(rows, n_num))
    for j in range(n_num):
        col = X[:, j].copy()
        if j % 5 == 0:
            col[rng.random(rows) < 0.03] = np.nan
        data[f"x{j:02d}"] = col
    for j, levels in enumerate((3, 10, 50, 200, 1000, 5000)):
        names = np.array([f"c{j}_{k}" for k in range(levels)], dtype=object)
        data[f"cat{j}"] = pd.array(names[rng.zipf(1.5, rows) % levels], dtype="str")
    data["region"] = pd.array(np.array(["north", "south", "east", "west", "centre"], dtype=object)[
        rng.integers(0, 5, rows)], dtype="str")
    logit = -2.0 + 0.8 * X[:, 0] - 0.6 * X[:, 1] + 0.4 * X[:, 2]
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    # planted problems the checks must find at scale: the last numeric column is a noisy copy of
    # the target (a leak), and positives younger than 30 days are often not labelled yet
    data[f"x{n_num - 1:02d}"] = y + rng.normal(0, 0.1, rows)
    age_days = (data["ts"].max() - data["ts"]).total_seconds().to_numpy() / 86400
    y &= rng.random(rows) < np.clip(age_days / 30, 0, 1)
    data["target"] = np.where(y, "yes", "no")
    return pd.DataFrame(data)


def make_case(root: Path):
    from mlcase.case import case_from_spec

    return case_from_spec({
        "name": "scale", "decision": "flag accounts for review", "task": "binary",
        "data": {"source": "unused.parquet", "target": "target", "positive": "yes", "id": "row_id",
                 "time": "ts", "label_delay": "30d"},
        "split": {"method": "time", "test_size": 0.2, "valid_size": 0.2, "seed": 1},
        "sensitive": ["region"],
        "assumptions": [{"text": "about 15% positives",
                         "check": "avg(CASE WHEN target = 'yes' THEN 1 ELSE 0 END) BETWEEN 0.05 AND 0.4"}],
    }, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--child", choices=["anchor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the anchor on the same frame, in a fresh process: no memory freed by the steps before it
        df = make_frame(args.rows, args.cols)
        with PeakRSS() as anchor:
            df.describe(include="all")
            df.duplicated()
        print(json.dumps({"seconds": anchor.seconds, "extra_mb": anchor.extra_mb}))
        return

    from mlcase.checks import run_checks
    from mlcase.checks.datasheet import write_datasheet
    from mlcase.data import prepare

    with PeakRSS() as build:
        df = make_frame(args.rows, args.cols)
    frame_mb = df.memory_usage(deep=True).sum() / 2**20
    print(f"frame: {len(df):,} rows x {df.shape[1]} columns, {frame_mb:,.0f} MB in pandas "
          f"(built in {build.seconds:.1f}s)")

    with tempfile.TemporaryDirectory() as tmp:
        case = make_case(Path(tmp))
        with PeakRSS() as prep:
            dataset = prepare(case, frame=df)
        with PeakRSS() as checks:
            report = run_checks(case, dataset)
        with PeakRSS() as sheet:
            write_datasheet(case, dataset, report)
    out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--cols", str(args.cols),
                          "--child", "anchor"], capture_output=True, text=True, check=True).stdout
    anchor = argparse.Namespace(**json.loads(out.splitlines()[-1]))

    n = len(df)
    rows = [("prepare (foundation: load, schema, split)", prep),
            ("mlcase run_checks", checks),
            ("mlcase write_datasheet", sheet),
            ("anchor: describe(all) + duplicated()", anchor)]
    print(f"\n{'step':<44} {'seconds':>8} {'rows/s':>12} {'peak +MB':>9}")
    for name, m in rows:
        print(f"{name:<44} {m.seconds:>8.2f} {n / m.seconds:>12,.0f} {m.extra_mb:>9,.0f}")
    print(f"\nrun_checks / anchor time:   {checks.seconds / anchor.seconds:.2f}x "
          f"({len(report.ran)} checks run, {len(report.checks)} findings: {report.counts()})")
    print(f"run_checks / anchor memory: {checks.extra_mb / max(anchor.extra_mb, 1):.2f}x "
          f"(peak growth {checks.extra_mb:,.0f} MB against {anchor.extra_mb:,.0f} MB; frame {frame_mb:,.0f} MB)")
    for c in report.checks:
        print(f"  {c.severity:<7} {c.line()[:120]}")


if __name__ == "__main__":
    main()
