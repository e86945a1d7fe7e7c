"""Conformal prediction with deferral to human review; the only module that imports MAPIE.

Split conformal on the validation fold (the calibration set):

- classification: prediction sets with the LAC score (``1 - p(true class)``)
  or APS (cumulated probability up to the true class, randomised at
  calibration; sets include the last label, so APS over-covers slightly);
- regression: intervals ``prediction +- q`` from absolute residuals, and, in
  the evaluation only, conformalized quantile regression (CQR) for boosted
  models.

:func:`calibrate` runs MAPIE and keeps only what serving needs to rebuild the
sets from ``bundle.scores`` (method, alpha, the conformal quantile): a small
JSON dict stored in ``bundle.conformal``. :func:`predict_sets` rebuilds sets
or intervals from that dict with numpy alone; a test pins it to MAPIE's own
``predict_set`` / ``predict_interval``.

:func:`evaluate_conformal` measures coverage and set size (or width) on the
test split and the deferral policy: a case whose set is not a single class (or
whose interval is wider than ``conformal.max_interval_width``) goes to human
review, most uncertain first, as long as flagged + deferred cases stay within
``constraints.review_capacity``: a cut chosen on the validation rows (:mod:`.deferral`), which the
evaluation, ``mlcase score``, the server and ``mlcase replay`` all apply.

The quantile is the ``ceil((n + 1)(1 - alpha))``-th smallest calibration score,
so for exchangeable data coverage is at least ``1 - alpha`` and, with
continuous scores, at most ``1 - alpha + 1/(n + 1)``.

Modules: :mod:`.calibrate` (MAPIE on given scores, the quantile), :mod:`.sets` (sets and intervals
from scores, for serving), :mod:`.deferral` (which cases go to review), :mod:`.evaluation` (coverage,
deferral, CQR).
"""

from __future__ import annotations

from .calibrate import (
    BOOSTED,
    CLASSIFICATION_METHODS,
    CONFORMAL_VERSION,
    EPSILON,
    REGRESSION_METHODS,
    calibrate,
    calibrate_on,
    conformal_quantile,
)
from .evaluation import (
    COVERAGE_SDS,
    coverage_check,
    coverage_floor,
    coverage_sd,
    evaluate_conformal,
    group_design,
)
from .sets import intervals_from_scores, predict_sets, sets_from_scores

__all__ = [
    "BOOSTED", "CLASSIFICATION_METHODS", "CONFORMAL_VERSION", "COVERAGE_SDS", "EPSILON", "REGRESSION_METHODS",
    "calibrate", "calibrate_on", "conformal_quantile", "coverage_check", "coverage_floor", "coverage_sd",
    "evaluate_conformal", "group_design",
    "intervals_from_scores", "predict_sets", "sets_from_scores",
]
