"""Data and prediction drift per window: PSI, Jensen-Shannon, KS / chi-square tests, missing rates.

A column drifts where its test, Holm-adjusted over the window's columns (``p_adjusted``), is below
alpha and its PSI is past ``monitoring.psi_alert``; ``p_value`` is the column's own test.

Everything is computed from per-window counts in the run's DuckDB database: one
grouped scan counts every numeric column at the reference's bin edges and
quantile grid (``histogram``); categorical columns are grouped by value.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np

from ..drift import psi_js


def compute_drift(run, windows: list[dict], overall: dict, W: int) -> None:
    """Fill ``drift`` and ``score_drift`` of every window and of ``overall`` (all windows together)."""
    n_rows = np.array([w["n"] for w in windows] + [overall["n"]], dtype=float)
    per_list = _per_list_columns(run)
    base = _per_unit_table(run, W)
    if base != "log":
        # a unit's repeated requests are one draw of its inputs: count units, not requests
        got = dict(run.con.execute(f"SELECT _wi, count(*) FROM {base} GROUP BY _wi").fetchall())
        n_rows = np.array([got.get(i, 0) for i in range(len(windows))] + [sum(got.values())], dtype=float)
    numeric = {f: (run.col[f], run.ref["features"][f]) for f in run.compared
               if run.ref["features"][f]["kind"] == "numeric" and f not in per_list}
    score_ref = run.ref.get("score")
    if score_ref and score_ref["n"]:
        numeric["_score"] = ("_score", score_ref)
    counts = _numeric_counts(run, numeric, W, table=base)
    if per_list:
        counts.update(_numeric_counts(run, {f: (run.col[f], run.ref["features"][f]["per_list"]) for f in per_list
                                            if run.ref["features"][f]["kind"] == "numeric"}, W, table=LIST_TABLE))
    per_feature = {}
    for f in run.compared:
        ref = run.ref["features"][f]
        table = base
        if f in per_list:
            ref, table = ref["per_list"], LIST_TABLE
        if ref["kind"] == "numeric":
            per_feature[f] = _numeric_drift(run, counts[f], ref, W, with_missing=True)
        else:
            per_feature[f] = _categorical_drift(run, run.col[f], ref, W, table=table)
        if run.task == "ranking":
            for st in per_feature[f]:
                st["unit"] = "list" if f in per_list else "item"
    for i in range(W + 1):
        # every compared column is tested in every window: at alpha each, a window of 85 unchanged columns
        # (ISLR::Caravan) rejects about 4 of them. Holm's step-down over the window's columns keeps the chance
        # that any unchanged column of the window is called drifted at alpha
        _holm([per_feature[f][i] for f in per_feature])
        for f, stats in per_feature.items():
            st = stats[i]
            st["status"] = _status(run, st, n_rows[i])
            (windows[i]["drift"] if i < W else overall["drift"])[f] = st
    if "_score" in counts:
        stats = _numeric_drift(run, counts["_score"], score_ref, W, with_missing=False)
        for i, st in enumerate(stats):
            st["p_adjusted"] = st["p_value"]  # one test: the score's own
            st["status"] = _status(run, st, st["n"])
            if i < W:
                windows[i]["score_drift"] = st
            else:
                overall["score_drift"] = st


LIST_TABLE = "log_lists"
UNIT_TABLE = "log_units"


def _per_unit_table(run, W: int) -> str:
    """The table drift is tested on: ``log``, or where a unit (``data.id``, logged as ``unit_id``) sent several
    requests in a window, ``log_units``, its last request per window (the whole log's columns add the windows up, as
    they do for ``log``: a unit seen in two windows counts in each).

    A KS or chi-square test reads each row as an independent draw; a unit sent twice is one draw counted twice. On
    carData::Mroz's 151 test women each sent twice, an unchanged column's KS p-value was that of 302 draws, as if
    the window held twice the evidence, and a small shift read as drift that the same women sent once did not.
    """
    if run.task == "ranking":
        return "log"
    dup = run.con.execute("SELECT count(*) FROM (SELECT _wi, coalesce(_unit, _rid) AS u FROM log GROUP BY ALL "
                          "HAVING count(*) > 1)").fetchone()[0]
    if not dup:
        return "log"
    cols = ", ".join(dict.fromkeys(["_score", *(run.col[f] for f in run.compared)]))
    last = "ORDER BY _t DESC NULLS LAST, _rid DESC"
    run.con.execute(f"""CREATE OR REPLACE TEMP TABLE {UNIT_TABLE} AS
        SELECT _wi, coalesce(_unit, _rid) AS _u, {cols} FROM log
        QUALIFY row_number() OVER (PARTITION BY _wi, coalesce(_unit, _rid) {last}) = 1""")
    return UNIT_TABLE
# the list of a POST /rank row: its request id is '<list_id>:<position>'
_LIST_ID = "regexp_extract(_rid, '^(.*):[^:]*$', 1)"


def _per_list_columns(run) -> list[str]:
    """The compared columns of a ranking case tested on one value per list, not per item.

    A column the same on every item of a list (the user's or the query's: AER::TravelMode's traveller income, the
    same on the traveller's 4 modes) is one draw per list, not one per item: tested over items, the 70 unchanged
    held-out travellers counted 280 draws, and 'income' drifted (PSI 0.256, KS p 0.001). Where the reference holds
    the column's one-value-per-list summary (it was constant within every training list) and every list of the
    log is constant in it too (missing on all of its items or none), it is compared on ``log_lists``: one row per
    list and window, its PSI and test over lists. Otherwise (a log not from POST /rank, a list whose items differ)
    the column stays per item.
    """
    if run.task != "ranking":
        return []
    cands = [f for f in run.compared if run.ref["features"][f].get("per_list")]
    if not cands:
        return []
    stray = run.con.execute("SELECT count(*) FROM log WHERE _rid IS NULL OR _rid NOT LIKE '%:%'").fetchone()[0]
    if stray:
        return []
    checks = ", ".join(f"count(DISTINCT {run.col[f]}) AS d{k}, count({run.col[f]}) AS k{k}"
                       for k, f in enumerate(cands))
    mixed = ", ".join(f"count(*) FILTER (WHERE d{k} > 1 OR (k{k} > 0 AND k{k} < _n))" for k in range(len(cands)))
    row = run.con.execute(f"SELECT {mixed} FROM (SELECT _wi, {_LIST_ID} AS _list, count(*) AS _n, {checks} "
                          "FROM log GROUP BY ALL)").fetchone()
    out = [f for f, m in zip(cands, row, strict=True) if not m]
    if out:
        cols = ", ".join(f"any_value({run.col[f]}) AS {run.col[f]}" for f in out)
        run.con.execute(f"CREATE OR REPLACE TEMP TABLE {LIST_TABLE} AS SELECT _wi, {_LIST_ID} AS _list, {cols} "
                        "FROM log GROUP BY ALL")
    return out


def _status(run, st: dict, n: float) -> str:
    if n < run.mon.min_window_rows:
        return "too_small"
    p = st.get("p_adjusted", st.get("p_value"))
    significant = p is not None and p < run.alpha
    if significant and st["psi"] >= run.mon.psi_alert:
        return "drift"
    if significant and st["psi"] >= run.mon.psi_warn:
        return "warn"
    return "ok"


def _numeric_counts(run, columns: dict[str, tuple[str, dict]], W: int, table: str = "log") -> dict[str, dict]:
    """Per window and numeric column: counts at the reference's bin edges and KS grid, in one scan.

    DuckDB's ``histogram(x, boundaries)`` counts ``prev < x <= boundary`` (and past
    the last boundary), so counts at or below every edge and grid point follow by
    a cumulative sum; the log is read once for all columns, in parallel.
    """
    out: dict[str, dict] = {}
    aggs, plan = [], []
    for key, (col, ref) in columns.items():
        bounds = np.union1d(np.asarray(ref["grid"], dtype=float), np.asarray(ref["edges"], dtype=float))
        plan.append((key, bounds))
        hist = f"histogram({col}, {_double_list(bounds)})" if len(bounds) else "NULL"
        aggs.append(f"{hist}, count({col}), sum({col})")
    rows = run.con.execute(f"SELECT _wi, count(*){', ' + ', '.join(aggs) if aggs else ''} FROM {table} "
                            "GROUP BY _wi").fetchall()
    for k, (key, bounds) in enumerate(plan):
        below = np.zeros((W + 1, len(bounds)))  # count of x <= bound
        nn, n, sums = np.zeros(W + 1), np.zeros(W + 1), np.zeros(W + 1)
        for r in rows:
            wi = int(r[0])
            hist, nn[wi], sums[wi], n[wi] = r[2 + 3 * k], r[3 + 3 * k], r[4 + 3 * k] or 0.0, r[1]
            if hist:
                below[wi] = np.cumsum([hist.get(float(b), 0) for b in bounds])
        below[W], nn[W], n[W], sums[W] = below[:W].sum(0), nn[:W].sum(), n[:W].sum(), sums[:W].sum()
        out[key] = {"bounds": bounds, "below": below, "nonmissing": nn, "n": n, "sum": sums}
    return out


def _numeric_drift(run, c: dict, ref: dict, W: int, with_missing: bool) -> list[dict]:
    from scipy import special

    edges = np.asarray(ref["edges"], dtype=float)
    grid = np.asarray(ref["grid"], dtype=float)
    bounds, below, nn = c["bounds"], c["below"], c["nonmissing"]
    nmiss = c["n"] - nn
    # PSI bins (-inf, e1], (e1, e2], ..., (e_last, inf) from the counts at or below each edge
    at_edges = below[:, np.searchsorted(bounds, edges)] if len(edges) else np.zeros((W + 1, 0))
    nonmissing = np.diff(np.hstack([np.zeros((W + 1, 1)), at_edges, nn[:, None]]), axis=1)
    bins = np.hstack([nonmissing, nmiss[:, None]])
    K = nonmissing.shape[1]
    mr_ref = float(ref["missing_rate"]) if with_missing else 0.0
    ref_p = np.asarray(ref["shares"], dtype=float)
    if with_missing:
        ref_full = np.concatenate([ref_p * (1 - mr_ref), [mr_ref]])
        cur = bins
    else:
        ref_full, cur = ref_p, bins[:, :K]
    psi, js = psi_js(cur, ref_full)
    # KS from the ECDF at the reference quantile grid (exact where the data have few distinct values)
    with np.errstate(invalid="ignore", divide="ignore"):
        F = below[:, np.searchsorted(bounds, grid)] / nn[:, None]
    with warnings.catch_warnings():  # a window whose values are all missing has no KS distance (NaN, no warning)
        warnings.simplefilter("ignore", RuntimeWarning)
        D = (np.nanmax(np.abs(F - np.asarray(ref["cdf"], dtype=float)), axis=1) if len(grid)
             else np.full(len(nn), np.nan))
    n_ref = float(ref["n"])
    with np.errstate(invalid="ignore", divide="ignore"):
        en = np.sqrt(n_ref * nn / (n_ref + nn))
        ks_p = special.kolmogorov((en + 0.12 + 0.11 / en) * D)
    out = []
    for i in range(len(nn)):
        n_tot = nn[i] + nmiss[i]
        p_dist = float(ks_p[i]) if nn[i] > 0 and n_ref > 0 and np.isfinite(ks_p[i]) else None
        st = {"kind": "numeric", "n": int(n_tot if with_missing else nn[i]), "psi": float(psi[i]), "js": float(js[i]),
              "ks": float(D[i]) if nn[i] > 0 else None, "ks_p": p_dist,
              "mean": float(c["sum"][i] / nn[i]) if nn[i] else None, "mean_ref": ref.get("mean")}
        if with_missing:
            mr = nmiss[i] / n_tot if n_tot else 0.0
            p_miss = _two_proportion_p(mr_ref, n_ref / (1 - mr_ref) if mr_ref < 1 else n_ref, mr, n_tot)
            st.update({"missing_rate": float(mr), "missing_rate_ref": mr_ref, "missing_change": float(mr - mr_ref)})
            st["p_value"] = _combine(p_dist, p_miss if (mr_ref > 0 or mr > 0) else None)
        else:
            st["p_value"] = p_dist
        out.append(st)
    return out


def _categorical_drift(run, column: str, ref: dict, W: int, table: str = "log") -> list[dict]:
    from scipy import stats as sps

    cats = list(ref["shares"])
    index = {c: i for i, c in enumerate(cats)}
    K = len(cats)
    other_share = float(ref.get("other_share") or 0.0)
    # columns: categories, other, unseen, missing
    counts = np.zeros((W + 1, K + 3))
    unseen: list[Counter] = [Counter() for _ in range(W + 1)]
    for wi, value, c in run.con.execute(f"SELECT _wi, {column}, count(*) FROM {table} GROUP BY ALL").fetchall():
        wi = int(wi)
        if value is None:
            j = K + 2
        elif value in index:
            j = index[value]
        elif other_share > 0:
            j = K
        else:
            j = K + 1
            unseen[wi][value] += c
            unseen[W][value] += c
        counts[wi, j] += c
    counts[W] = counts[:W].sum(0)
    mr_ref = float(ref["missing_rate"])
    n_ref = float(ref["n"])
    ref_nonmissing = np.array([ref["shares"][c] for c in cats] + [other_share, 0.0])
    out = []
    for i in range(W + 1):
        nn = counts[i, :K + 2].sum()
        nmiss = counts[i, K + 2]
        n_tot = nn + nmiss
        stat, p_dist = None, None
        # categories too rare to be counted in this window are grouped, with 'other' and the values never seen in
        # training (_pool_rare): a chi-square cell expecting under 5 rows is not chi-square distributed, and PSI's
        # floor makes every rare category missing from a small window add to it. modeldata::hotel_rates' 129
        # companies and 81 countries drifted in 13 of 22 unchanged windows of 200 rows (a company seen once,
        # never in training, alone gave chi-square 35; PSI 0.2 to 0.56 from empty rare categories)
        merged = _pool_rare(np.vstack([ref_nonmissing * n_ref, counts[i, :K + 2]]), n_ref, nn)
        cur = np.append(merged[1], nmiss)
        ref_i = np.append(merged[0] / n_ref * (1 - mr_ref) if n_ref > 0 else merged[0] * 0, mr_ref)
        psi_i, js_i = psi_js(cur[None, :], ref_i)
        if nn > 0 and n_ref > 0:
            obs = merged[:, merged.sum(0) > 0]
            if obs.shape[1] >= 2:
                expected = obs.sum(1, keepdims=True) * obs.sum(0, keepdims=True) / obs.sum()
                stat = float(((obs - expected) ** 2 / expected).sum())
                p_dist = float(sps.chi2.sf(stat, obs.shape[1] - 1))
                if obs.shape[1] == 2 and expected.min() < MIN_EXPECTED:
                    t = np.rint(obs).astype(int)
                    p_dist = float(sps.fisher_exact(t).pvalue)
            else:
                stat, p_dist = 0.0, 1.0
        mr = nmiss / n_tot if n_tot else 0.0
        p_miss = _two_proportion_p(mr_ref, n_ref / (1 - mr_ref) if mr_ref < 1 else n_ref, mr, n_tot)
        n_unseen = int(counts[i, K + 1])
        out.append({"kind": ref["kind"], "n": int(n_tot), "psi": float(psi_i[0]), "js": float(js_i[0]),
                    "bins": int(merged.shape[1]),
                    "chi2": stat, "chi2_p": p_dist,
                    "p_value": _combine(p_dist, p_miss if (mr_ref > 0 or mr > 0) else None),
                    "missing_rate": float(mr), "missing_rate_ref": mr_ref, "missing_change": float(mr - mr_ref),
                    "unseen": {"count": n_unseen, "share": n_unseen / nn if nn else 0.0,
                               "examples": [str(v) for v, _ in unseen[i].most_common(5)]}})
    return out


MIN_EXPECTED = 5  # rows a category must expect in the smaller sample to keep its own bin (Cochran's rule)


def _pool_rare(obs: np.ndarray, n_ref: float, n_cur: float) -> np.ndarray:
    """The 2 x k table of reference and window counts with rare columns grouped so that each group expects at
    least :data:`MIN_EXPECTED` rows in the smaller sample (Cochran's rule for the chi-square test).

    Columns are categories (most common in training first), then 'other' and never-seen values, so walking them in
    order keeps each common category on its own and groups the rare tail (and the never-seen values) into runs; a
    last run still short joins the one before it, unless that would leave a single column.
    """
    small = min(n_ref, n_cur)
    total = n_ref + n_cur
    if small <= 0 or total <= 0:
        return obs
    expect = obs.sum(0) * small / total
    if (expect >= MIN_EXPECTED).all():
        return obs
    groups: list[list[float]] = []
    a = b = e = 0.0
    for x, y, ex in zip(obs[0].tolist(), obs[1].tolist(), expect.tolist(), strict=True):  # floats: a loop of many
        a, b, e = a + x, b + y, e + ex
        if e >= MIN_EXPECTED:
            groups.append([a, b])
            a = b = e = 0.0
    if a + b > 0:
        if len(groups) >= 2:
            groups[-1] = [groups[-1][0] + a, groups[-1][1] + b]
        else:  # one group and a short run: a 2 x 2 table, tested exactly
            groups.append([a, b])
    return np.array(groups, dtype=float).T if groups else obs.sum(1, keepdims=True)


def _holm(stats: list[dict]) -> None:
    """``p_adjusted`` of each test: Holm's step-down over the family (the columns of one window), by
    :func:`mlcase.numeric.holm` (the slice search's and the A/B analysis'); a column without a test gets None."""
    from ..numeric import holm

    p = [st["p_value"] if st.get("p_value") is not None else float("nan") for st in stats]
    for st, adj in zip(stats, holm(p).tolist(), strict=True):
        st["p_adjusted"] = None if st.get("p_value") is None else float(adj)


def _double_list(values: np.ndarray) -> str:
    """A DuckDB DOUBLE[] literal that round-trips every value exactly."""
    return "[" + ", ".join(repr(float(v)) for v in values) + "]::DOUBLE[]"


def _two_proportion_p(r1: float, n1: float, r2: float, n2: float) -> float | None:
    """Two-sided p of equal missing rates ``r1`` of ``n1`` rows and ``r2`` of ``n2``: the z test, or Fisher's exact
    test where an expected count is under 5 (two missing values in a window of 200 against 0.1% of 6,953 in training
    gave the z test's p 0.0004, Fisher's 0.02; 6 missing countries of modeldata::hotel_rates in 200 unchanged rows
    against 1.1% in training: 0.015 and 0.03)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (r1 * n1 + r2 * n2) / (n1 + n2)
    if pooled <= 0 or pooled >= 1:
        return 1.0
    if min(pooled, 1 - pooled) * min(n1, n2) < 5:
        from scipy.stats import fisher_exact

        k1, k2 = round(r1 * n1), round(r2 * n2)
        return float(fisher_exact([[k1, round(n1) - k1], [k2, round(n2) - k2]]).pvalue)
    z = (r2 - r1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def _combine(*ps) -> float | None:
    """Bonferroni over the tests that ran: the smallest p times their number."""
    ps = [p for p in ps if p is not None]
    return min(1.0, len(ps) * min(ps)) if ps else None
