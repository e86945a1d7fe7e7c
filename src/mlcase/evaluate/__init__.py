"""Evaluation in the decision's units: value ceiling, model-free policies, money, lift CIs,
calibration, slices, latency.

Two stage functions:

- :func:`value_ceiling` runs right after the data checks, before any model is
  trained: what the processes that need no trained model cost per decision
  (never act, act at random at the review capacity, a constant, the prior, each
  rule baseline), and what a *perfect* model (binary: limited to the review
  capacity) would cost. When even that perfect model cannot save
  ``operating_cost + min_lift`` per decision, the run stops with ``NO_GO``.
- :func:`evaluate` judges the candidate against the baselines and the
  model-free policies. Every choice (calibration, thresholds, which baseline and
  which model-free policy are the best) is made on the validation part, from
  :func:`valid_scores`; the test part is used once, for the numbers reported:
  metrics, money per decision / per 1,000 / per period, paired bootstrap CIs of
  the lift over the best baseline and over the best model-free policy (money
  and primary metric, same resampled rows), slices and fairness gaps, and
  latency.

Money follows the spec's cost matrix, row by row (costs may be SQL
expressions over the row, e.g. ``"0.6 * loan_amount"``). Lift is always
oriented so that a positive number favours the candidate.

Modules: :mod:`.policies` (model-free policies, thresholds under capacity),
:mod:`.lift` (bootstrap), :mod:`.calibration`, :mod:`.slices`, :mod:`.latency`,
:mod:`.ceiling`, :mod:`.core` (:func:`evaluate`).
"""

from __future__ import annotations

from ..latency import measure_latency
from .calibration import (
    ECE_POOR,
    calibrate_bundle,
    expected_calibration_error,
    reliability_curve,
)
from .ceiling import Ceiling, perfect_cost, value_ceiling
from .common import TRIVIAL, is_trivial, operating_cost, valid_scores
from .core import Evaluation, evaluate
from .lift import bootstrap_means, paired_bootstrap
from .policies import FloorPolicies, decision_threshold, model_free_policies

__all__ = [
    "ECE_POOR", "TRIVIAL", "Ceiling", "Evaluation", "FloorPolicies", "bootstrap_means", "calibrate_bundle",
    "decision_threshold", "evaluate", "expected_calibration_error", "is_trivial", "measure_latency",
    "model_free_policies", "operating_cost", "paired_bootstrap", "perfect_cost", "reliability_curve",
    "valid_scores", "value_ceiling",
]
