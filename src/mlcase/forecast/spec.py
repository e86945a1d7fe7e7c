"""What ``task: forecast`` asks of the spec: defaults for its baselines and candidates, and the checks.

Called from :class:`mlcase.spec.CaseSpec`'s validators; every problem is a ``ValueError``
whose text names the field and the fix (the spec loader turns it into one :class:`SpecError`
line with the YAML path).
"""

from __future__ import annotations

#: baselines of a forecast case when the spec names none: every model-free one, and AutoETS
DEFAULT_BASELINES = ["naive", "seasonal_naive", "moving_average", "auto_ets"]
#: the learned candidates a forecast case knows (LightGBM and a ridge on the same lag/calendar features)
CANDIDATES = ("lightgbm", "ridge")
TABULAR_BASELINES = ("majority", "prior", "mean", "median", "linear")


def forecast_defaults(raw: dict) -> dict:
    """The raw spec of a forecast case with its baselines and candidates filled in when left out."""
    raw = dict(raw)
    _unread_split(raw.get("split"))
    raw.setdefault("baselines", list(DEFAULT_BASELINES))
    raw.setdefault("candidates", list(CANDIDATES))
    return raw


#: split fields a forecast case does not read, and what it reads instead
_SPLIT_INSTEAD = {"test_size": "forecast.test_windows (cut-offs held out at the end)",
                  "valid_size": "forecast.backtest_windows (cut-offs before the test period)",
                  "cv_folds": "forecast.backtest_windows (cut-offs before the test period)",
                  "method": "nothing: a forecast case always holds out its last cut-offs"}


def _unread_split(split) -> None:
    """Refuse a ``split`` field written for a forecast case that it would not read (it splits by cut-offs).

    Checked on the raw spec, so a value equal to the field's default passes: that is what a dumped spec holds
    (:func:`mlcase.spec.dump_spec` writes the defaults, and the report validates it again), and it changes
    nothing. ``method: time`` is what a forecast case does, so it passes too.
    """
    from ..spec.sections import SplitSpec

    if not isinstance(split, dict):
        return
    for key, instead in _SPLIT_INSTEAD.items():
        if key not in split or split[key] == SplitSpec.model_fields[key].default or (key, split[key]) == ("method", "time"):
            continue
        raise ValueError(f"split.{key}: a forecast case does not read it (it splits by cut-offs, not by a share of "
                         f"rows); remove split.{key} and set {instead}" if not instead.startswith("nothing")
                         else f"split.{key}: a forecast case does not read it: it always holds out its last "
                         f"cut-offs (forecast.test_windows); remove split.{key} or write 'method: time'")


def check_forecast_spec(spec) -> None:
    """Raise ``ValueError`` (one sentence: the field and the fix) when a forecast spec is inconsistent."""
    from ..spec import FORECAST_BASELINES

    names = [b for b in spec.baselines if isinstance(b, str)]
    if spec.task != "forecast":
        if spec.forecast is not None:
            raise ValueError(f"forecast: this section applies to task: forecast, and the task is {spec.task}; "
                             "remove the section or set task: forecast")
        bad = [b for b in names if b in FORECAST_BASELINES]
        if bad:
            raise ValueError(f"baselines: '{bad[0]}' is a forecast baseline; a {spec.task} case uses majority, "
                             "mean, median, linear or a rule")
        return
    if not spec.data.time:
        raise ValueError("data.time: a forecast case needs the time column; set data.time to the date column")
    if spec.forecast is None:
        raise ValueError("forecast: a forecast case needs this section with at least the horizon; add "
                         "'forecast: {horizon: 14}' (steps ahead each forecast covers)")
    if spec.costs.binary_given() or spec.costs.matrix is not None:
        raise ValueError("costs: a forecast case prices errors with 'under' and 'over' (money per unit below and "
                         "above the actual); remove true_positive/false_positive/... and matrix")
    for c in ("under", "over"):
        v = getattr(spec.costs, c)
        if v is not None and not isinstance(v, float):
            raise ValueError(f"costs.{c}: a forecast case takes a number per unit ({v!r} is an expression); "
                             "write the money per unit of error as a number")
        if isinstance(v, float) and v < 0:
            raise ValueError(f"costs.{c}: expected money >= 0 per unit, got {v}")
    bad = [b for b in names if b in TABULAR_BASELINES]
    if bad:
        raise ValueError(f"baselines: '{bad[0]}' is not a forecast baseline; use {', '.join(FORECAST_BASELINES)} "
                         "or a rule over lag_<k> columns such as 'rule: 1.05 * lag_364'")
    bad = [c for c in spec.candidates if c not in CANDIDATES]
    if bad:
        raise ValueError(f"candidates: '{bad[0]}' is not a forecast candidate; use {' and '.join(CANDIDATES)} "
                         "(gradient boosting and a ridge on lag, rolling and calendar features)")
    f = spec.forecast
    both = sorted(set(f.known) & set(f.past_only))
    if both:
        raise ValueError(f"forecast.known and forecast.past_only both name '{both[0]}'; a covariate is either known "
                         "in advance for the forecast's steps or observed only up to its cut-off: keep it in one list")
    d = spec.data
    reserved = {d.target: "data.target", d.time: "data.time", d.series: "data.series"}
    for key in ("known", "past_only"):
        for col in getattr(f, key):
            if col in reserved:
                raise ValueError(f"forecast.{key}: '{col}' is {reserved[col]}, not a covariate; remove it there")
    if f.lags is not None and max(f.lags) > 100_000:
        raise ValueError(f"forecast.lags: {max(f.lags)} steps is longer than any history; use lags up to a few seasons")
