"""Helpers every part of the evaluation shares: the validation-scores hook, money formatting,
operating cost, volume, and which bundles count as trivial or as rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import formats as F
from .. import tasks as T
from ..case import Case
from ..errors import ModelError

#: bundle names (or name prefixes before ':') that count as trivial baselines
TRIVIAL = ("majority", "prior", "mean", "median", "constant", "do_nothing")


def valid_scores(bundle, dataset) -> np.ndarray:
    """A bundle's scores on the validation rows: the one place evaluation, calibration and
    conformal calibration get them.

    By default ``bundle.scores`` of the validation rows. When the bundle's model was
    refitted on rows that include the validation rows, the bake-off stores cross-fitted
    (out-of-fold) scores for them as ``bundle.oof_valid`` (aligned with
    ``dataset.split.valid``), and those are returned instead, so thresholds, calibrators
    and conformal quantiles are never fitted on scores of rows the model was trained on.

    Parameters
    ----------
    bundle : ModelBundle
    dataset : mlcase.data.Dataset

    Returns
    -------
    ndarray
        Binary: P(positive) per row; multiclass: one probability column per class;
        regression: the prediction.
    """
    oof = getattr(bundle, "oof_valid", None)
    if oof is not None:
        oof = np.asarray(oof, dtype="float64")
        if len(oof) != len(dataset.split.valid):
            raise ModelError(f"model '{bundle.name}': oof_valid has {len(oof)} rows but the validation part has "
                             f"{len(dataset.split.valid)}", "store one out-of-fold score per validation row, in "
                             "the order of dataset.split.valid")
        missing = ~np.isfinite(oof).reshape(len(oof), -1).all(axis=1)
        if missing.any():
            # a row no out-of-fold model scored (a member's fold cut by the time box) gets the model's own
            # score rather than NaN, which would make the conformal quantile and the thresholds NaN
            rows = dataset.rows("valid").iloc[np.flatnonzero(missing)]
            oof = oof.copy()
            oof[missing] = bundle.scores(features_of(rows, bundle, dataset))
        return oof
    return bundle.scores(features_of(dataset.rows("valid"), bundle, dataset))


def features_of(rows: pd.DataFrame, bundle, dataset) -> pd.DataFrame:
    """The columns ``bundle`` reads, from rows holding every column."""
    cols = list(bundle.features) if getattr(bundle, "features", None) else list(dataset.features)
    return rows[cols]


def is_trivial(bundle) -> bool:
    """Whether a bundle is a trivial baseline (majority/prior/mean/median/constant)."""
    name = str(getattr(bundle, "name", bundle)).lower().split(":")[0]
    if name in TRIVIAL:
        return True
    model = getattr(bundle, "model", None)
    return type(model).__name__ in ("MajorityBaseline", "MeanBaseline", "DummyClassifier", "DummyRegressor")


def is_rule(bundle) -> bool:
    """Whether a bundle is an expert's rule."""
    return bool(getattr(bundle, "rule", None)) or type(getattr(bundle, "model", None)).__name__ == "RuleBaseline"


def operating_cost(case: Case, bundle=None) -> tuple[float, str]:
    """Operating cost per decision and where it came from.

    ``constraints.operating_cost: auto`` uses what the bake-off measured
    (``bundle.metrics["operating_cost_per_decision"]``), else 0.
    """
    oc = case.spec.constraints.operating_cost
    if oc == "auto":
        measured = (getattr(bundle, "metrics", None) or {}).get("operating_cost_per_decision")
        if measured is not None:
            return float(measured), "measured by the bake-off (operating_cost: auto)"
        return 0.0, "operating_cost: auto, not measured yet (counted as 0)"
    return float(oc), "constraints.operating_cost"


def volume(case: Case) -> dict | None:
    v = T.volume_per_period(case)
    return None if v is None else {"count": float(v[0]), "period": v[1]}


def per_period(case: Case, per_decision: float | None) -> float | None:
    v = T.volume_per_period(case)
    return None if (v is None or per_decision is None) else float(per_decision * v[0])


def money(v: float | None, currency: str = "$", digits: int = 2) -> str:
    return "n/a" if v is None else F.money(v, currency, digits)


def num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.3g}%"
