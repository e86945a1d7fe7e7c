"""``task: forecast``: series, rolling-origin backtests, statistical baselines, learned candidates, money.

The stages of a forecast case (called in order by :func:`mlcase.pipeline.run`):
:mod:`.data` (the series and their cut-offs), :mod:`.checks`, :mod:`.bakeoff` (baselines from
statsforecast and the spec's rule, LightGBM and a ridge on mlforecast features tuned in the
time box), :mod:`.evaluate` (MASE, sMAPE, RMSE, pinball loss and money per horizon step,
bootstrap CIs), :mod:`.conformal` (intervals per step), :mod:`.decision`, then the bundles,
the card and the report. Serving is :mod:`mlcase.serve.forecast_app`, batch forecasts
:mod:`.batch`, monitoring :mod:`.monitor`. Nothing heavy is imported here.
"""
