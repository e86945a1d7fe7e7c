"""Data checks of a forecast case, reported like every other case's (:class:`mlcase.checks.CheckReport`)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..checks.report import Check, CheckReport, apply_accepted
from .data import DS, ID, SeriesData, Y

IDS = ("series_length", "no_intervals", "constant_series", "intermittent", "known_covariate_leak",
       "undeclared_columns")


def run_forecast_checks(case, data: SeriesData) -> CheckReport:
    """The checks of :data:`IDS` on the prepared series."""
    t0 = time.perf_counter()
    report = CheckReport(rows=int(len(data.frame)), ran=list(IDS))
    f = data.frame
    lengths = f.groupby(ID, observed=True).size()
    for note in data.notes:
        report.checks.append(Check("series_length", "warning", note, evidence={"shortest": int(lengths.min())},
                                   fix="forecast a shorter horizon or fewer windows, or add history"))
    gap = _interval_gap(case, data)
    if gap:
        report.checks.append(gap)
    sd = f.groupby(ID, observed=True)[Y].std(ddof=0)
    flat = sd[sd == 0].index.tolist()
    if flat:
        report.checks.append(Check("constant_series", "warning", f"{len(flat)} series never change (e.g. '{flat[0]}'): "
                                   "every forecaster ties on them", evidence={"series": flat[:20]},
                                   fix="drop them, or forecast them with a rule"))
    zeros = f.groupby(ID, observed=True)[Y].apply(lambda s: float((s == 0).mean()))
    sparse = zeros[zeros > 0.5]
    if len(sparse):
        report.checks.append(Check("intermittent", "warning", f"{len(sparse)} series are zero more than half the "
                                   "time: MASE and sMAPE judge such demand poorly", evidence={
                                       "series": sparse.index.tolist()[:20], "largest_zero_share": float(sparse.max())},
                                   fix="judge them on the money (costs.under/over) and consider a Croston-type model"))
    for col in data.known:
        x, y = f[col].to_numpy(dtype=float), f[Y].to_numpy(dtype=float)
        if np.std(x) > 0 and np.std(y) > 0:
            r = float(np.corrcoef(x, y)[0, 1])
            if abs(r) >= 0.98:
                report.checks.append(Check(
                    "known_covariate_leak", "error", f"known covariate '{col}' moves with the target at the same step "
                    f"(correlation {r:.3f}): it looks measured with the outcome, not known in advance", column=col,
                    evidence={"correlation": r}, fix=f"move '{col}' to forecast.past_only (used lagged by the "
                    "horizon), or drop it"))
    declared = {data.target, data.time, data.series_col, *data.known, *data.past_only}
    unused = [c for c in data.columns if c not in declared and c != "rownames"]
    if unused:
        report.checks.append(Check("undeclared_columns", "info", f"{len(unused)} column(s) are not used: a covariate "
                                   "must be declared known in advance or past-only, so the future is never used by "
                                   "accident", evidence={"columns": unused[:30]},
                                   fix="list the ones you can use in forecast.known or forecast.past_only"))
    measured = _assumptions(case, data, report)
    named = [c for c in (case.spec.data.target, case.spec.data.time, case.spec.data.series) if c]
    apply_accepted(report, case.spec.checks.accept, {*IDS, "assumption"}, [*f.columns, *named])  # sorts: errors first
    report.stats = {"series": int(data.n_series), "shortest": int(lengths.min()), "longest": int(lengths.max()),
                    "freq": data.freq, "season_length": data.season_length}
    if measured is not None:
        report.stats["assumptions"] = measured
    report.elapsed_s = time.perf_counter() - t0
    return report


def _named_rows(data: SeriesData, frame: pd.DataFrame) -> pd.DataFrame:
    """Series rows under the data's own column names (the target, time and series columns as the spec names them),
    which is what an assumption check is written against."""
    rename = {Y: data.target, DS: data.time}
    if data.series_col:
        rename[ID] = data.series_col
    out = frame.rename(columns=rename)
    return out if data.series_col else out.drop(columns=[ID])


def _assumptions(case, data: SeriesData, report: CheckReport) -> list[dict] | None:
    """The spec's assumption checks on each series without its test period (what a tabular case's checks read:
    the training rows), as check ``assumption``: false is an error that stops the run, NULL a warning."""
    from ..checks.assumptions import evaluate_assumptions
    from ..errors import RuleError

    items = [(i, a) for i, a in enumerate(case.spec.assumptions) if a.check]
    if not items:
        return None
    report.ran.append("assumption")
    rows = _named_rows(data, data.before_test())
    try:
        found, measured = evaluate_assumptions(items, rows, list(rows.columns))
    except RuleError as exc:
        unused = set(data.columns) - set(rows.columns)
        named = [c for c in getattr(exc, "columns", None) or [] if c in unused]   # the unknown ones it names
        if named:  # a column of the file the series do not keep: say how to keep it
            raise RuleError(f"{exc.message}: a forecast case's series keep only the columns the spec declares",
                            f"declare '{named[0]}' in forecast.known or forecast.past_only to check it") from None
        raise
    report.checks += found
    return measured


def _interval_gap(case, data: SeriesData) -> Check | None:
    """A warning when the backtests hold too few forecasts per horizon step for the spec's intervals.

    Split conformal at level ``1 - alpha`` over ``n`` scores is infinite while ``ceil((n + 1)(1 - alpha)) > n``:
    90% needs 9. datasets::JohnsonJohnson (80 quarters, one series) held 4 backtest windows, so its forecasts
    carried no interval, and only monitoring said so, blaming the fallback.
    """
    from .conformal import conformal_level, widest_alpha
    from .decision import MIN_TEST_BLOCKS

    alpha = float(case.spec.conformal.alpha)
    n = data.backtest_windows * data.n_series
    if conformal_level(n, alpha) <= n:
        return None
    need = next(k for k in range(n + 1, 10_000) if conformal_level(k, alpha) <= k)
    per_series = -(-need // data.n_series)
    windows = data.backtest_windows + data.test_windows
    test_min = -(-MIN_TEST_BLOCKS // data.n_series)
    wider = widest_alpha(n)
    ways = [f"set conformal.alpha: {wider:g} ({1 - wider:.0%} intervals need {n})"] if wider else []
    if per_series + test_min <= windows:
        ways.append(f"set forecast.backtest_windows: {per_series} and test_windows: {windows - per_series} "
                    "(the same history)")
    ways.append("add history or forecast more series")
    return Check("no_intervals", "warning",
                 f"{1 - alpha:.0%} intervals need {need} backtest forecasts per horizon step and the backtests hold "
                 f"{n} ({data.backtest_windows} window(s) x {data.n_series} series): the forecasts will carry no "
                 "interval", evidence={"alpha": alpha, "per_step": n, "needed": need},
                 fix="; or ".join(ways))
