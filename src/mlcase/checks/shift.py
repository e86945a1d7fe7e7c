"""Split shift: a feature distributed differently in train and test (PSI with a chi-square test, KS)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..drift import psi_js
from .context import Context, Skip
from .registry import register
from .report import Check
from .stats import _numeric
from .thresholds import SHIFT_PVALUE


def _psi_bins(train: pd.Series, test: pd.Series) -> tuple[np.ndarray, np.ndarray, float | None, float | None]:
    """Bin counts of train and test (train deciles, or its top 20 categories + other; missing its own bin)."""
    a_num, b_num = _numeric(train), _numeric(test)
    ks = ks_p = None
    if a_num is not None:
        fa, fb = a_num[~np.isnan(a_num)], b_num[~np.isnan(b_num)]
        edges = np.unique(np.quantile(fa, np.linspace(0, 1, 11)[1:-1])) if len(fa) else np.array([])
        ca = np.searchsorted(edges, a_num, side="right")
        cb = np.searchsorted(edges, b_num, side="right")
        ca[np.isnan(a_num)] = len(edges) + 1
        cb[np.isnan(b_num)] = len(edges) + 1
        k = len(edges) + 2
        # KS's asymptotic distribution needs m*n/(m+n) to round to at least 1: one value on each side rounds to 0,
        # and scipy divided by it (survival::cgd0's `etime6`, one event time in 128 patients, printed
        # "RuntimeWarning: divide by zero" in the middle of `mlcase run`)
        if min(len(fa), len(fb)) >= 2:
            from scipy.stats import ks_2samp

            res = ks_2samp(fa, fb, method="asymp")
            ks, ks_p = float(res.statistic), float(res.pvalue)
    else:
        cats = pd.Index(train.value_counts().index[:20])
        ca = cats.get_indexer(train) + 2
        cb = cats.get_indexer(test) + 2
        ca[train.isna().to_numpy()] = 0
        cb[test.isna().to_numpy()] = 0
        k = len(cats) + 2
    return np.bincount(ca, minlength=k), np.bincount(cb, minlength=k), ks, ks_p


def shift_test(train: pd.Series, test: pd.Series) -> tuple[float, float, float | None, float | None]:
    """PSI of ``test`` against ``train`` with its p-value, and the KS statistic and p-value (numbers only).

    The p-value is Pearson's chi-square test of homogeneity of the same bins (as monitoring's
    drift test). PSI scaled as a chi-square is not one on small test parts: on 2,000 random
    splits of one variable it flagged 12% at 160/40 rows and 25% at 80/20 for a nominal 0.1%
    (MASS::Pima.tr's 'bmi' was flagged on a stratified split); with Pearson's test (and PSI at
    least 0.2, as the check also asks) at most 0.1% were flagged at every size from 80/20 to
    4,000/1,000.
    """
    from scipy.stats import chi2_contingency

    na, nb, ks, ks_p = _psi_bins(train, test)
    keep = (na + nb) > 0
    psi = float(psi_js(nb[keep], na[keep] / na.sum())[0][0])
    table = np.vstack([na[keep], nb[keep]])
    p = float(chi2_contingency(table, correction=False)[1]) if table.shape[1] >= 2 else 1.0
    return psi, p, ks, ks_p


@register("split_shift", ids=("split_shift",), order=140)
def check_split_shift(ctx: Context) -> list[Check]:
    if len(ctx.test) == 0:
        raise Skip("no test rows")
    method = ctx.ds.split.method
    warn = ctx.spec.monitoring.psi_warn
    rows = {}
    out = []
    for c in ctx.features:
        a, b = ctx.column(c, ctx.train_sample), ctx.column(c, ctx.test_sample)
        psi, p, ks, ks_p = shift_test(a, b)
        rows[c] = {"psi": psi, "p_value": p, "ks": ks, "ks_p_value": ks_p}
        if psi >= warn and p < SHIFT_PVALUE:
            ks_txt = f", KS {ks:.2f}" if ks is not None else ""
            fix = ("expected when the data drifts over time: the test rows are later, so the test score shows how the "
                   f"model does on newer data; watch '{c}' in monitoring" if method == "time" else
                   f"a {method} split should not shift; check that rows are independent and not ordered or "
                   "duplicated by entity (set data.group if several rows share one)")
            out.append(Check("split_shift", "warning",
                             f"'{c}' is distributed differently in train and test (PSI {psi:.2f}{ks_txt}, {method} split)",
                             column=c, evidence={"psi": psi, "p_value": p, "ks": ks, "ks_p_value": ks_p,
                                                 "train_rows": len(a), "test_rows": len(b),
                                                 "split": method},
                             fix=fix))
    ctx.stats["split_shift"] = {"split": method, "features": rows}
    return out

