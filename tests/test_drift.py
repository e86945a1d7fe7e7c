"""Oracles for the drift statistics: mlcase's PSI, Jensen-Shannon and KS against scipy on the same inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import ks_2samp

from mlcase.case import case_from_spec
from mlcase.checks import run_checks
from mlcase.data import prepare
from mlcase.drift import PSI_EPS, psi_js


def test_psi_and_js_match_scipy_on_random_counts():
    rng = np.random.default_rng(7)
    for k in (2, 5, 12, 33):
        ref = rng.dirichlet(np.ones(k) * 0.7)
        counts = rng.integers(0, 60, size=(40, k)).astype(float)
        counts[3, : k // 2] = 0          # empty bins
        counts[5] = 0                    # an empty window
        counts[7] = ref * 1000           # the same distribution
        psi, js = psi_js(counts, ref)
        for i, row in enumerate(counts):
            if row.sum() == 0:
                assert np.isnan(psi[i]) and np.isnan(js[i])
                continue
            q = row / row.sum()
            # JS: scipy's distance, base 2; PSI: the symmetric relative entropy of the floored shares
            with np.errstate(invalid="ignore"):  # scipy: sqrt of a -1e-17 divergence for equal shares
                oracle = np.nan_to_num(jensenshannon(ref, q, base=2))
            assert js[i] == pytest.approx(oracle, abs=1e-12)
            qe, pe = np.clip(q, PSI_EPS, None), np.clip(ref, PSI_EPS, None)
            assert psi[i] == pytest.approx((rel_entr(qe, pe) + rel_entr(pe, qe)).sum(), rel=1e-12, abs=1e-15)
        assert js[7] == pytest.approx(0, abs=1e-7) and psi[7] == pytest.approx(0, abs=1e-9)
    # bounds of the base-2 distance: 0 for equal shares, 1 for disjoint ones
    psi, js = psi_js(np.array([[10, 0], [0, 10]]), np.array([1.0, 0.0]))
    assert js[0] == 0 and js[1] == pytest.approx(1.0)


def _shifted(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = rng.normal(size=n) + (t > 0.8 * n) * 0.6           # the last 20% (the test rows) are shifted
    y = rng.random(n) < 1 / (1 + np.exp(-x))
    return pd.DataFrame({"when": pd.date_range("2024-01-01", periods=n, freq="h"), "x": x,
                         "w": rng.exponential(2.0, n).round(1),  # many ties
                         "c": rng.choice(["a", "b"], n), "y": np.where(y, "yes", "no")})


def test_split_shift_ks_is_scipys_two_sample_ks(tmp_path):
    df = _shifted(3000, 1)
    case = case_from_spec({"name": "ks", "decision": "d", "task": "binary",
                           "data": {"source": "d.csv", "target": "y", "positive": "yes", "time": "when"},
                           "split": {"method": "time"}}, tmp_path)
    ds = prepare(case, frame=df)
    stats = run_checks(case, ds).stats["split_shift"]["features"]
    for col in ("x", "w"):
        train = ds.frame[col].iloc[ds.split.train].to_numpy()
        test = ds.frame[col].iloc[ds.split.test].to_numpy()
        exact = ks_2samp(train, test, method="asymp")
        assert stats[col]["ks"] == pytest.approx(exact.statistic, abs=1e-12)
        assert stats[col]["ks_p_value"] == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)
    assert stats["x"]["ks"] > 0.15 and stats["w"]["ks"] < 0.1


def test_monitoring_ks_is_scipys_on_the_reference_grid(tmp_path):
    """Monitoring computes KS from counts at the reference's quantile grid (it never holds the training
    values): the statistic is scipy's on the same samples up to the grid's resolution, and exact for a
    column with few distinct values."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from mlcase import monitor as M
    from mlcase.bundle import ModelBundle

    df = _shifted(4000, 2)
    case = case_from_spec({"name": "mon", "decision": "d", "task": "binary",
                           "data": {"source": "d.csv", "target": "y", "positive": "yes",
                                    "features": {"exclude": ["when", "c"]}}}, tmp_path)
    ds = prepare(case, frame=df)
    model = make_pipeline(LogisticRegression()).fit(ds.X_train, ds.y_train)
    bundle = ModelBundle(model=model, name="logistic", role="candidate", task="binary", features=ds.features,
                         schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive, threshold=0.5)
    bundle.reference = M.build_reference(ds, bundle)
    rng = np.random.default_rng(3)
    window = pd.DataFrame({"x": rng.normal(0.5, 1.2, 2500), "w": rng.exponential(2.6, 2500).round(1)})
    window["ts"] = pd.Timestamp("2024-06-01T12:00:00Z")
    result = M.monitor(case, log=window, bundle=bundle, window="1d")
    drift = result.windows[0]["drift"]
    train = ds.frame.iloc[ds.split.train]
    grid = len(bundle.reference["features"]["x"]["grid"])
    for col, tol in (("x", 2.0 / grid), ("w", 1e-12)):
        exact = ks_2samp(train[col].to_numpy(), window[col].to_numpy())
        assert drift[col]["ks"] == pytest.approx(exact.statistic, abs=tol), (col, drift[col]["ks"], exact.statistic)
        assert drift[col]["ks"] <= exact.statistic + 1e-12  # a maximum over fewer points
