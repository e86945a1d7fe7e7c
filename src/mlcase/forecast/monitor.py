"""Monitoring of a forecast case as actuals arrive: realized error and coverage by horizon step, residual
drift, and an alert when the model falls behind seasonal naive.

Every forecast the server logged (one log row per series forecast: its points and intervals in
``prediction``, seasonal naive's forecast of the same steps in ``scores``, the series' MASE scale
in ``conformal``) is joined with the actuals (a CSV/Parquet file laid out like the case's data)
on series and time. Per horizon step: how many points have an actual, the model's and seasonal
naive's scaled absolute error (their mean is MASE), and the share of actuals inside the interval.
Alerts:

- ``behind_seasonal_naive``: the model's realized MASE exceeds seasonal naive's on the same points
  (at least ``monitoring.min_window_rows`` of them) and the paired bootstrap CI over at least
  :data:`MIN_FORECASTS` forecasts lies below zero (a point estimate behind on fewer, or with a CI
  across zero, is a warning: the model and seasonal naive trade places window to window);
- ``interval_coverage``: realized coverage below the target by more than 3 binomial sd;
- ``series_coverage`` (cases with more than one series): one series' realized coverage below the
  target, by a one-sided z-test whose variance counts that series' blocks of forecasts that share
  actuals, not its points, as its draws (Rao-Scott), Holm-adjusted over the series tested, at 5%; a
  series is tested from :data:`MIN_SERIES_BLOCKS` blocks with an interval. The aggregate coverage of many series hides
  one that broke: fpp3::aus_arrivals' four origins, the UK's arrivals 40% higher from 2008.
  ``by_series`` lists every series' points, MASE, coverage and mean residual;
- ``residual_drift``: the PSI of the realized scaled residuals over the deciles of the backtest's
  exceeds ``monitoring.psi_alert`` and their chi-square test against the deciles' tenths, Rao-Scott
  corrected for the points of one forecast being one draw, rejects at 5%.

The points of one forecast are not independent draws: a forecast that starts low stays low for
its whole horizon. The seasonal-naive and residual tests count forecasts, not points, as their units.
"""


from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..times import TIME_DTYPE

MIN_SERIES_BLOCKS = 3   # one block's misses are one draw: fewer than 3 cannot tell a series that broke from a shock
MIN_FORECASTS = 6   # a bootstrap over fewer forecasts lies clear of zero by chance more than 2.5% of the time
DRIFT_ALPHA = 0.05


def _share(inside: pd.Series) -> float | None:
    """The share of actuals inside their interval, over the points that had one (None when none had)."""
    v = inside.dropna()
    return float(v.mean()) if len(v) else None


def _read_log(case, log: str | None) -> pd.DataFrame:
    from ..serve.predlog import resolve_target

    target = resolve_target(case, log)
    query = ("SELECT request_id, ts, model_version, model_name, tier, inputs, prediction, scores, conformal "
             "FROM predictions")
    if "://" in target and not target.startswith("sqlite:///"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(target)
        with engine.connect() as con:
            df = pd.read_sql(sqlalchemy.text(query), con)
    else:
        path = Path(target.removeprefix("sqlite:///"))
        if not path.exists():
            raise DataError(f"no prediction log at {path}", "serve the case first (mlcase serve), or pass --log")
        from ..serve.predlog import connect_read_only

        con = connect_read_only(path)
        try:
            df = pd.read_sql(query, con)
        finally:
            con.close()
    return df[df["inputs"].fillna("").str.contains('"task": "forecast"', regex=False)]


def _points(logged: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in logged.itertuples():
        series = json.loads(r.inputs)["series"]
        naive = json.loads(r.scores or "[]")
        scale = (json.loads(r.conformal or "{}") or {}).get("scale") or 1.0
        for p in json.loads(r.prediction or "[]"):
            rows.append({"request_id": r.request_id, "series": str(series), "ds": pd.Timestamp(p["ds"]),
                         "step": int(p["step"]), "forecast": p["forecast"], "lo": p["lo"], "hi": p["hi"],
                         "naive": naive[p["step"] - 1] if len(naive) >= p["step"] else np.nan, "scale": scale,
                         "tier": r.tier, "model_version": r.model_version})
    return pd.DataFrame(rows)


def _actuals(case, path, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """The actuals file as ``series, ds, actual`` (and its own columns, prefixed), one row per series and time.

    Checked row by row before anything is joined (each was dropped or overwritten in silence, and monitoring said
    "no logged forecast has its actual yet" or scored the wrong value): a time that is not a time, an actual that
    is not a finite number (a blank one is not known yet, and is left out), a time off the case's frequency grid
    (a time zone or a day-first date moved it between the logged steps), and two different actuals for one series
    and time are each a one-line DataError naming the row."""
    from ..data import read_table, to_times
    from .data import derive_columns

    d = case.spec.data
    frame = derive_columns(case, path.reset_index(drop=True) if isinstance(path, pd.DataFrame)  # a drafted series key
                           else read_table(Path(path).resolve(), what="--labels"))  # or date
    missing = [c for c in (d.time, d.target) if c not in frame.columns]
    if missing:
        raise DataError(f"--labels: the actuals file lacks the column '{missing[0]}'",
                        f"give the actuals as {d.series + ', ' if d.series else ''}{d.time}, {d.target}")
    frame = frame.reset_index(drop=True)
    raw_t, raw_y = frame[d.time], frame[d.target]
    ds = to_times(raw_t).astype(TIME_DTYPE)
    actual = pd.to_numeric(raw_y, errors="coerce")
    out = pd.DataFrame({"series": frame[d.series].astype(str) if d.series and d.series in frame.columns else "series",
                        "ds": ds, "actual": actual})
    _check_actuals(case, out, raw_t, raw_y, points)
    # the file's own columns ride along (prefixed), for the assumption checks
    out = pd.concat([out, frame.add_prefix(RAW).set_index(out.index)], axis=1)
    return out.dropna(subset=["actual"]).drop_duplicates(["series", "ds"], keep="last")


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).str.strip().eq("")


def _check_actuals(case, out: pd.DataFrame, raw_t: pd.Series, raw_y: pd.Series, points: pd.DataFrame | None) -> None:
    """A DataError naming the first row of the actuals whose time or value cannot be joined as written (see
    :func:`_actuals`); rows are numbered from 1 after the header, as a spreadsheet shows them less one."""
    d = case.spec.data
    bad = np.flatnonzero((out["ds"].isna() & ~_blank(raw_t)).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"--labels row {i + 1}: {d.time} {str(raw_t.iloc[i])[:40]!r} is not a time; nothing was "
                        "monitored", f"write {d.time} as the case's data does (e.g. 2020-01-31)")
    y = out["actual"].to_numpy(dtype=float)
    bad = np.flatnonzero((np.isnan(y) & ~_blank(raw_y).to_numpy()) | np.isinf(y))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"--labels row {i + 1}: {d.target} {str(raw_y.iloc[i])[:40]!r} is not a finite number; "
                        "nothing was monitored",
                        f"write {d.target} as a number, or leave it empty where the actual is not known yet")
    known = out[out["actual"].notna() & out["ds"].notna()]
    if points is not None and len(points):
        off = ~_on_grid(known["ds"], case.spec.forecast.freq if case.spec.forecast else None, points)
        if off.any():
            i = int(known.index[np.flatnonzero(off.to_numpy())[0]])
            got, step = _shown(out["ds"].iloc[i]), _shown(points["ds"].iloc[0])
            written = str(raw_t.iloc[i])[:40]
            read = "" if written in (got, str(out["ds"].iloc[i])) else f" (written {written!r})"
            raise DataError(f"--labels row {i + 1}: {d.time} {got}{read} falls between the steps the forecasts were "
                            f"made for (e.g. {step}); nothing was monitored",
                            "date each actual on its step as the case's data does: no time zone or time of day it "
                            "lacks, day and month in its order")
    both = known[known.duplicated(["series", "ds"], keep=False)]
    for _, group in both.groupby(["series", "ds"], sort=False):
        if group["actual"].nunique() > 1:
            a, b = group.index[0], group.index[group["actual"] != group["actual"].iloc[0]][0]
            where = ("" if not d.series else f"series {group['series'].iloc[0]!r} at ") + _shown(group["ds"].iloc[0])
            raise DataError(f"--labels: {where} has two actuals, {group['actual'].loc[a]:g} (row {a + 1}) and "
                            f"{group['actual'].loc[b]:g} (row {b + 1}); nothing was monitored",
                            "keep one actual per series and time in the file")


def _shown(t) -> str:
    t = pd.Timestamp(t)
    return str(t.date()) if t == t.normalize() else str(t)


def _on_grid(ds: pd.Series, freq: str | None, points: pd.DataFrame) -> pd.Series:
    """Whether each time is a step of ``freq`` aligned with the logged forecasts' steps (all True where no
    frequency is known)."""
    if not freq:
        steps = pd.DatetimeIndex(points.sort_values("ds")["ds"].drop_duplicates())
        freq = pd.infer_freq(steps) if len(steps) >= 3 else None
        if not freq:
            return pd.Series(True, index=ds.index)
    offset = pd.tseries.frequencies.to_offset(freq)
    anchor = pd.Timestamp(points["ds"].iloc[0])
    if isinstance(offset, (pd.offsets.Tick, pd.offsets.Day)):
        step = pd.Timedelta(days=offset.n) if isinstance(offset, pd.offsets.Day) else pd.Timedelta(offset)
        return ((ds - anchor) % step) == pd.Timedelta(0)
    clock = anchor - anchor.normalize()
    return ds.map(offset.is_on_offset).astype(bool) & ((ds - ds.dt.normalize()) == clock)


RAW = "raw:"   # the actuals file's own columns in the joined frame


def _assumptions(case, joined: pd.DataFrame, out: dict) -> None:
    """The spec's assumption checks on the actuals of the logged forecasts (a tabular case checks them per window on
    the log): ``out["assumptions"]``, and an alert for one that is false on at least ``min_window_rows`` points. A
    check that reads a column the actuals file lacks is a warning that names it, as on the log."""
    from ..checks.assumptions import _fmt_value, _measure_operands
    from ..errors import RuleError
    from ..rules import Rule

    items = [(i, a) for i, a in enumerate(case.spec.assumptions) if a.check]
    if not items:
        return
    rows = joined[[c for c in joined.columns if c.startswith(RAW)]].rename(columns=lambda c: c[len(RAW):])
    rows[case.spec.data.target] = joined["actual"].to_numpy()     # the actual, as a number
    columns = list(rows.columns)
    enough = len(rows) >= case.spec.monitoring.min_window_rows
    out["assumptions"] = []
    for i, a in items:
        where = f"assumptions[{i}].check"
        try:
            rule = Rule(a.check, columns, kind="aggregate", where=where)
            value = rule.check(rows[rule.used_columns] if rule.used_columns else rows.iloc[:, :0])
        except RuleError as exc:
            out["warnings"].append(f"assumption '{a.text}' is not checked on the actuals: {exc}")
            continue
        value = value.item() if hasattr(value, "item") else value
        status = ("unknown" if value is None else "ok" if bool(value) else "broken" if enough else "too_small")
        measured = _measure_operands(a.check, columns, where, rows)
        out["assumptions"].append({"text": a.text, "check": a.check, "value": value, "n": int(len(rows)),
                                   "measured": measured, "status": status})
        if status == "broken":
            shown = "; ".join(f"{k} = {_fmt_value(v)}" for k, v in measured.items())
            out["alerts"].append({"kind": "assumption", "assumption": a.text, "message": (
                f"assumption broken on the actuals of {len(rows)} forecast points: \"{a.text}\""
                + (f" (measured {shown})" if shown else "") + f" (check: {a.check})")})


def monitor_forecasts(case, log: str | None = None, labels=None, bundle=None) -> dict:
    """The monitoring results of a forecast case (saved as ``forecast_monitoring``); see the module docstring.

    ``case`` is a :class:`~mlcase.case.Case` or the path of its ``case.yaml``; ``labels`` the actuals, a CSV/Parquet
    path or a DataFrame laid out like the case's data (series, time, target)."""
    from ..case import as_case, path_arg
    from ..drift import psi_js

    case = as_case(case)  # a path, as mlcase.run and monitor take it (it was 'str' object has no attribute 'spec')
    if labels is not None and not isinstance(labels, pd.DataFrame):  # a DataFrame of actuals is read as a file is
        labels = path_arg(labels, "labels", "pass the actuals as a CSV/Parquet path or a DataFrame laid out like the "
                                            "case's data")
    if labels is None:
        raise DataError("a forecast case is monitored against its actuals", "pass --labels ACTUALS.csv (series, time, "
                        "target as in the case's data)")
    logged = _read_log(case, log)
    points = _points(logged)
    out = {"task": "forecast", "requests": int(len(logged)), "points": 0, "by_step": [], "alerts": [],
           "warnings": [], "drift": None}
    if points.empty:
        out["warnings"].append("the log holds no forecasts yet")
        return out
    joined = points.merge(_actuals(case, labels, points), on=["series", "ds"], how="inner")
    out["points"] = int(len(joined))
    if joined.empty:
        out["warnings"].append("no logged forecast has its actual yet")
        return out
    y = joined["actual"].to_numpy(dtype=float)
    joined["err_model"] = np.abs(y - joined["forecast"].to_numpy(dtype=float)) / joined["scale"]
    joined["err_naive"] = np.abs(y - joined["naive"].to_numpy(dtype=float)) / joined["scale"]
    lo, hi = joined["lo"].astype(float), joined["hi"].astype(float)
    # a point answered without an interval (seasonal naive with no model loaded) is not a miss: NaN, left out
    joined["inside"] = ((y >= lo) & (y <= hi)).astype(float).where(lo.notna() & hi.notna())
    joined["residual"] = (y - joined["forecast"].to_numpy(dtype=float)) / joined["scale"]
    for step, g in joined.groupby("step", sort=True):
        out["by_step"].append({"step": int(step), "points": int(len(g)), "model_mase": float(g["err_model"].mean()),
                               "seasonal_naive_mase": float(g["err_naive"].mean()),
                               "coverage": _share(g["inside"]), "mean_residual": float(g["residual"].mean())})
    spec = case.spec
    out["by_series"] = _by_series(joined, spec.conformal.alpha)
    model_mase, naive_mase = float(joined["err_model"].mean()), float(joined["err_naive"].mean())
    # resampled by block: forecasts of one series whose steps overlap share their actuals, so they are one draw
    per_req = joined.assign(_block=_blocks(joined)).groupby("_block")[["err_naive", "err_model"]].mean()
    diff = (per_req["err_naive"] - per_req["err_model"]).to_numpy()
    rng = np.random.default_rng(spec.split.seed)
    boots = diff[rng.integers(0, len(diff), size=(1000, len(diff)))].mean(axis=1)
    lift = {"estimate": float(diff.mean()), "ci_low": float(np.percentile(boots, 2.5)),
            "ci_high": float(np.percentile(boots, 97.5))}
    out.update(model_mase=model_mase, seasonal_naive_mase=naive_mase, lift_over_seasonal_naive=lift)
    _assumptions(case, joined, out)
    lift["forecasts"] = int(joined["request_id"].nunique())
    lift["blocks"] = int(len(diff))
    enough = len(joined) >= spec.monitoring.min_window_rows
    if enough and model_mase > naive_mase:
        # the point estimate alone alarmed on unchanged data: datasets::nottem's 1935-37 temperatures, the model
        # 0.003 behind seasonal naive (95% CI -0.186 to 0.134) over 5 forecasts
        shown = (f"the model's realized MASE {model_mase:.3f} is worse than seasonal naive's {naive_mase:.3f} on the "
                 f"same {len(joined)} points of {lift['forecasts']} forecasts in {len(diff)} blocks that share no actual (gain {lift['estimate']:.3f}, 95% CI "
                 f"{lift['ci_low']:.3f} to {lift['ci_high']:.3f})")
        if len(diff) >= MIN_FORECASTS and lift["ci_high"] < 0:
            out["alerts"].append({"kind": "behind_seasonal_naive",
                                  "message": shown + "; retrain, or serve seasonal naive"})
        else:
            why = (f"fewer than {MIN_FORECASTS} blocks" if len(diff) < MIN_FORECASTS
                   else "the CI includes zero")
            out["warnings"].append(shown + f"; not an alert: {why}, so it may be chance")
    alpha = spec.conformal.alpha
    with_interval = joined["inside"].notna()
    cov = _share(joined["inside"])
    out.update(coverage=cov, coverage_target=1 - alpha, points_with_interval=int(with_interval.sum()))
    if cov is None:
        # the model answers without one where the backtests were too few to calibrate it (datasets::austres:
        # ridge answered every request, and this said seasonal naive had)
        by_model = bool((joined["tier"] == "model").any())
        why = ("the model's intervals were never calibrated: its backtests held too few forecasts per step, see the "
               "check no_intervals" if by_model else "seasonal naive answered, without a calibrated interval")
        out["warnings"].append(f"no forecast with an actual had an interval ({why}), so coverage is not measured")
    else:
        # 3 binomial sd over the points, not the forecasts' design effect: Rao-Scott's, read from 5 forecasts of which
        # the first missed every step, kept fpp2::h02's level shift (20% from 2003-07, 60% covered) and its fall to
        # zero (70%) under seasonal naive from any alert, and 3 sd already leaves room for the misses of one forecast
        sd = float(np.sqrt(alpha * (1 - alpha) / with_interval.sum()))
        out["coverage_sd"] = sd
        if with_interval.sum() >= spec.monitoring.min_window_rows and cov < 1 - alpha - 3 * sd:
            out["alerts"].append({"kind": "interval_coverage", "message": (
                f"intervals cover {cov:.1%} of {int(with_interval.sum())} actuals, below the {1 - alpha:.0%} target "
                "by more than 3 sd" + _worst(out["by_series"]))})
        _series_alert(out, alpha)
    ref = (bundle.reference if bundle is not None else _reference(case)) or {}
    deciles = ref.get("residual_deciles")
    if deciles and enough:
        from scipy import stats

        bins = np.searchsorted(np.asarray(deciles), joined["residual"].to_numpy())
        counts = np.bincount(bins, minlength=10)
        psi, js = psi_js(counts[None, :].astype(float), np.full(10, 0.1))
        # by forecast: the points of one forecast share its start, so they count as one draw, not 'horizon' draws
        per = pd.crosstab(joined["request_id"].to_numpy(), bins).reindex(columns=range(10), fill_value=0)
        deff = _design_effect(per.to_numpy(dtype=float), per.to_numpy().sum(axis=1).astype(float), np.full(10, 0.1))
        backtest_mase = ref.get("backtest_mase")
        backtest_mase = float(backtest_mase) if isinstance(backtest_mase, (int, float)) else None
        chi2 = float(((counts - len(joined) * 0.1) ** 2 / (len(joined) * 0.1)).sum()) / deff
        p = float(stats.chi2.sf(chi2, 9))
        out["drift"] = {"psi": float(psi[0]), "js": float(js[0]), "points": int(len(joined)), "forecasts": int(len(per)),
                        "chi2": chi2, "design_effect": deff, "p_value": p,
                        "reference": "deciles of the backtest's scaled residuals"}
        # a window whose residuals moved but whose errors shrank is no alarm: fpp2::h02's 2003-08 prescriptions, the
        # backtest's cut-offs (2000-03, steep growth) under-forecast by 1.6 scale units and the model refitted on them
        # did not (MASE 0.92 against the backtest's 1.41; PSI 3.05, chi-square p 1e-7)
        grew = backtest_mase is None or model_mase > backtest_mase
        out["drift"].update(backtest_mase=backtest_mase, errors_grew=grew)
        if psi[0] > spec.monitoring.psi_alert and p < DRIFT_ALPHA and grew:
            out["alerts"].append({"kind": "residual_drift", "message": (
                "the residuals drifted from the backtest's" + ("" if backtest_mase is None else (
                    f" and the errors grew (MASE {model_mase:.3f} against the backtest's {backtest_mase:.3f})"))
                + f" (PSI {psi[0]:.3f} > {spec.monitoring.psi_alert}, chi-square p = "
                f"{p:.2g} over {len(per)} forecasts, design effect {deff:.2f})")})
        elif psi[0] > spec.monitoring.psi_alert and p < DRIFT_ALPHA:
            out["warnings"].append(
                f"the residuals moved from the backtest's (PSI {psi[0]:.3f}, chi-square p = {p:.2g}) but the errors "
                f"shrank (MASE {model_mase:.3f} against the backtest's {backtest_mase:.3f}): not an alert")
    return out


def _by_series(joined: pd.DataFrame, alpha: float) -> list[dict]:
    """One row per series: its points and forecasts with an actual, the model's and seasonal naive's MASE, interval
    coverage, the mean scaled residual, and (from :data:`MIN_SERIES_BLOCKS` blocks with an interval) the one-sided
    p-value of its coverage against ``1 - alpha``, the variance Rao-Scott corrected for the points of a block of
    forecasts that share actuals falling together (``design_effect``; see :func:`_blocks`), and ``p_adjusted`` by
    Holm over the series tested."""
    from scipy import stats

    from ..numeric import holm

    rows = []
    joined = joined.assign(_block=_blocks(joined))
    for series, g in joined.groupby("series", sort=True):
        has = g["inside"].notna()
        row = {"series": str(series), "points": int(len(g)), "forecasts": int(g["request_id"].nunique()),
               "model_mase": float(g["err_model"].mean()), "seasonal_naive_mase": float(g["err_naive"].mean()),
               "coverage": _share(g["inside"]), "points_with_interval": int(has.sum()),
               "mean_residual": float(g["residual"].mean()), "design_effect": None, "p_value": None,
               "p_adjusted": None}
        # blocks, not forecasts: forecasts a step apart share actuals, and counting each as a draw alarmed on
        # ggplot2::economics_long's personal saving rate over 2000-02 (adjusted p 0.003 over 16 forecasts, 0.14 over
        # their 6 blocks) where no other test did
        per = g[has].groupby("_block")["inside"].agg(["sum", "size"])
        row["blocks"] = int(len(per))
        if len(per) >= MIN_SERIES_BLOCKS:
            n = float(per["size"].sum())
            deff = _design_effect(per[["sum"]].to_numpy(dtype=float), per["size"].to_numpy(dtype=float),
                                  np.array([1 - alpha]))
            z = (row["coverage"] - (1 - alpha)) / np.sqrt(alpha * (1 - alpha) * deff / n)
            row.update(design_effect=deff, p_value=float(stats.norm.cdf(z)))
        rows.append(row)
    tested = [r for r in rows if r["p_value"] is not None]
    for r, p in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
        r["p_adjusted"] = float(p)
    return rows


def _worst(by_series: list[dict]) -> str:
    """``; most misses in series X (coverage c of n)`` where there is more than one series, else nothing."""
    with_cov = [r for r in by_series if r["coverage"] is not None]
    if len(by_series) < 2 or not with_cov:
        return ""
    w = max(with_cov, key=lambda r: (r["points_with_interval"] * (1 - r["coverage"]), -r["coverage"]))
    return f"; most misses in series {w['series']!r} ({w['coverage']:.1%} of {w['points_with_interval']} covered)"


def _series_alert(out: dict, alpha: float) -> None:
    """``series_coverage``: the series whose Holm-adjusted p-value is under 5% (see the module docstring)."""
    rows = out["by_series"]
    low = [r for r in rows if r["p_adjusted"] is not None and r["p_adjusted"] < DRIFT_ALPHA]
    if len(rows) < 2 or not low:
        return
    shown = ", ".join(f"{r['series']!r} {r['coverage']:.1%} of {r['points_with_interval']} actuals over "
                      f"{r['forecasts']} forecasts in {r['blocks']} blocks (p = {r['p_adjusted']:.2g}, Holm over "
                      f"{sum(x['p_adjusted'] is not None for x in rows)} series)" for r in low)
    out["alerts"].append({"kind": "series_coverage", "series": [r["series"] for r in low], "message": (
        f"intervals cover less than the {1 - alpha:.0%} target in {len(low)} of {len(rows)} series: {shown}")})


def _blocks(joined: pd.DataFrame) -> pd.Series:
    """A block id per point: each series' forecasts in the order of their first step, a new block where a forecast
    starts after the last step of the block's first forecast (forecasts a step apart over a 4-step horizon: 4 to a
    block). fpp3::aus_arrivals' 2008-11 quarters, a forecast each quarter per origin: 52 forecasts, 16 blocks; the
    bootstrap over the 52 put the model behind seasonal naive (95% CI -0.25 to -0.06)."""
    first = joined.groupby("request_id").agg(series=("series", "first"), start=("ds", "min"), end=("ds", "max"))
    block, n = {}, 0
    for _, rows in first.sort_values("start").groupby("series", sort=False):
        last = None
        for rid, r in rows.iterrows():
            if last is None or r["start"] > last:   # past the block's first forecast: a new block
                n, last = n + 1, r["end"]
            block[rid] = n
    return joined["request_id"].map(block)


def _design_effect(counts: np.ndarray, sizes: np.ndarray, p0: np.ndarray) -> float:
    """Rao and Scott's mean design effect of the shares ``counts.sum(0) / sizes.sum()`` over clusters (rows of
    ``counts``, one per forecast; ``sizes`` its points), against the shares ``p0`` (one column per category, or one
    column of successes with ``p0`` its expected share): how many times the variance of simple random sampling the
    clustered shares have. At least 1 (a cluster too regular to tell is not counted as more than its points), and
    the number of points per forecast where there are fewer than 2 forecasts."""
    n, c = float(sizes.sum()), len(sizes)
    if c < 2 or n <= 0:
        return max(float(n), 1.0)
    if counts.shape[1] == 1:   # a share: its complement is the other column
        counts, p0 = np.column_stack([counts[:, 0], sizes - counts[:, 0]]), np.array([p0[0], 1 - p0[0]])
    share = counts.sum(axis=0) / n
    var = c / (c - 1) * ((counts - sizes[:, None] * share[None, :]) ** 2).sum(axis=0) / n ** 2
    deff = float((n * var / p0).sum() / (len(p0) - 1))
    return max(deff, 1.0)


def _reference(case) -> dict | None:
    """The drift reference of what `mlcase serve` forecasts with (:func:`~mlcase.forecast.service.load_served`): the
    champion's, else the proven baseline's, else seasonal naive's from the run's evaluation (``floor_reference``;
    a NO_GO case had none, so its residuals were never compared: fpp2::h02 20% higher, no residual_drift)."""
    from .. import results
    from .service import load_served

    bundle, _, _ = load_served(case)
    if bundle is not None:
        return bundle.reference
    return (results.load(case, "forecast_evaluation") or {}).get("floor_reference")
