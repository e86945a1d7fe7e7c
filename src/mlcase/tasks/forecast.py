"""Forecast: ``horizon`` numbers per series from a cut-off, priced per unit below (``under``) and above (``over``).

The task object answers what the stages ask of every task; the stages of a forecast case
themselves are in :mod:`mlcase.forecast` (series, rolling-origin backtests, statsforecast
baselines, mlforecast candidates, conformal intervals per step). Its primary metric is MASE
(lower is better); the model-free floor is seasonal naive, the value one season back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..case import Case
from .base import ModelFreePolicy, Task


class ForecastTask(Task):
    name = "forecast"
    primary_metric = "mase"
    greater_is_better = False
    floor_description = "seasonal naive (the value one season back)"

    def metrics(self, y, pred, scale: float = 1.0, **_) -> dict[str, float]:
        """MASE (with the series' ``scale``), sMAPE (0 to 1) and RMSE of one series' forecasts."""
        y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
        err = np.abs(y - pred)
        denom = np.abs(y) + np.abs(pred)
        return {"mase": float(err.mean() / scale), "rmse": float(np.sqrt(np.mean(err ** 2))),
                "smape": float(np.mean(np.divide(err, denom, out=np.zeros_like(err), where=denom > 0)))}

    def row_losses(self, y, scores, classes=None):
        return np.abs(np.asarray(scores, dtype=float) - np.asarray(y, dtype=float)), (lambda v: v), "mae"

    def costs(self, case: Case, rows: pd.DataFrame, classes=None):
        from ..forecast.evaluate import unit_prices
        from .regression import RegressionCosts

        under, over = unit_prices(case)
        return RegressionCosts(np.full(len(rows), under), np.full(len(rows), over))

    def model_free(self, case: Case, rows: pd.DataFrame, y, classes=None) -> list[ModelFreePolicy]:
        """Seasonal naive: computed per cut-off by :mod:`mlcase.forecast.backtest`, so no parameters here."""
        return [ModelFreePolicy("seasonal_naive", self.floor_description, "seasonal_naive")]

    def perfect_cost(self, case: Case, rows: pd.DataFrame, y, classes=None):
        return np.zeros(len(y)), {}

    def scores(self, model, X, classes=None) -> np.ndarray:
        """The point forecasts of a forecaster given a history frame (``unique_id, ds, y``)."""
        from ..errors import ModelError

        if not hasattr(X, "columns") or not {"unique_id", "ds", "y"} <= set(X.columns):
            raise ModelError("a forecast model forecasts from a series' history (unique_id, ds, y), not from a "
                             "record", "use POST /forecast or `mlcase score`; the report shows SHAP of the "
                             "boosting model's features")
        return model.forecast(X)["yhat"].to_numpy(dtype="float64")
