"""The time-boxed bake-off: baselines first, then an adaptive search across model families.

:func:`run_bakeoff` scores every baseline and every trial on the rows of its
:class:`~mlcase.bakeoff.scoring.Plan`: cross-validation on the train *and* validation parts
(the validation rows get out-of-fold scores, so the served model can be refitted on both), or,
on large data, a holdout carved from the train part with samples that grow for the promising
configurations. Folds follow the split method (time-ordered expanding windows for ``time``,
group folds for ``group``, stratified otherwise). Trials are ranked on a proper scoring rule
(log loss, RMSE) unless ``bakeoff.select_on: cost``; the business cost is shown beside it.

The package's modules, along its seams:

- :mod:`~mlcase.bakeoff.scoring`: the scorer, the folds and the row plan;
- :mod:`~mlcase.bakeoff.search`: the allocation of the time box across families (FLAML's
  estimated cost for improvement, zero-shot portfolios, TPE, growing samples);
- :mod:`~mlcase.bakeoff.timebox`: the budget and the clock every fit checks;
- :mod:`~mlcase.bakeoff.ensemble`: Caruana ensemble selection and its estimator;
- :mod:`~mlcase.bakeoff.refit`: refit with lineage, running costs, ``refit: all``;
- :mod:`~mlcase.bakeoff.register`: model versions and their lineage tags;
- :mod:`~mlcase.bakeoff.core`: :func:`run_bakeoff` itself.

Every baseline and every trial is an MLflow child run of one parent run per bake-off, written
by a background thread (:mod:`~mlcase.bakeoff.writer`); :meth:`BakeoffResult.wait_tracking`
waits for it. Ctrl-C stops the search, keeps the best so far and sets ``result.interrupted``.
"""

from __future__ import annotations

from .core import optuna_quiet, run_bakeoff
from .refit import operating_cost, refit_all
from .register import register, register_refit
from .result import LEADERBOARD_COLUMNS, BakeoffResult, leaderboard_table
from .scoring import Scorer, cv_folds, log_loss
from .timebox import HARD_SHARE, parse_budget

_parse_budget = parse_budget  # the name the pipeline used before the split

__all__ = ["BakeoffResult", "HARD_SHARE", "LEADERBOARD_COLUMNS", "Scorer", "cv_folds", "leaderboard_table",
           "log_loss", "operating_cost", "optuna_quiet", "parse_budget", "refit_all", "register",
           "register_refit", "run_bakeoff"]
