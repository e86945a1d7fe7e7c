"""What the bake-off scores and on which rows: the scorer, the folds and the row plan.

Selection is on a proper scoring rule by default (``bakeoff.select_on: loss``): log loss for
classification, RMSE for regression. The business cost (binary: at the best threshold of each
fold within the review capacity) is computed beside it for the leaderboard, and is the selection
metric with ``bakeoff.select_on: cost``. Money always sets the threshold and makes the decision
later, in the evaluation.

:class:`Plan` says which rows the search sees. Below ``bakeoff.holdout_above`` rows it
cross-validates on the train *and* validation parts, so the validation rows get out-of-fold
(cross-fitted) scores from models that never saw them and the chosen model can be refitted on
both parts. Above it, it validates on one holdout carved from the train part (as FLAML and
AutoGluon do on large data) and treats rows as a resource: trials start on a subsample
(:data:`FIRST_SAMPLE` rows, FLAML's ``MIN_SAMPLE_TRAIN``) that grows by
:data:`SAMPLE_FACTOR` (FLAML's ``SAMPLE_MULTIPLY_FACTOR``) for the promising configurations;
the validation part then stays untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..case import Case
from ..errors import SpecError

EPS = 1e-15
FIRST_SAMPLE = 10_000      # rows of the first sample in holdout mode
SAMPLE_FACTOR = 4          # each sample size is this many times the previous one
HOLDOUT_SHARE = 0.1        # share of the train part held out in holdout mode
HOLDOUT_MAX = 50_000       # rows of the holdout at most (scoring cost stays bounded)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Binary log loss of P(positive) ``p`` (clipped at 1e-15)."""
    return float(np.mean(binary_row_loss(y, p)))


def binary_row_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    y = np.asarray(y, dtype="float64")
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


class Scorer:
    """The case's scores on validation rows: the proper loss, the business cost, and which one selects.

    Parameters
    ----------
    case : Case
    rows : DataFrame
        All columns of the rows the search scores (per-row cost expressions read them).
    y : ndarray
        Targets of those rows (multiclass: class codes).
    classes : list, optional
        Multiclass class labels (codes index them).
    """

    def __init__(self, case: Case, rows: pd.DataFrame, y: np.ndarray, classes: list | None = None):
        from .. import tasks

        spec = case.spec
        self.task = spec.task
        self.classes = [str(c) for c in classes] if classes is not None else None
        self.n_classes = len(classes) if classes is not None else None
        self.costs = self.capacity = self.under = self.over = self.matrix = None
        if self.task == "binary" and spec.costs.binary_given():
            self.costs = tasks.binary_costs(case, rows)
            self.capacity = tasks.capacity_share(case)
        elif self.task == "regression" and spec.costs.regression_given():
            self.under, self.over = tasks.regression_rates(case, rows)
        elif self.task == "multiclass" and spec.costs.matrix:
            self.matrix = self._matrix(spec.costs.matrix)
        self.has_cost = any(v is not None for v in (self.costs, self.under, self.matrix))
        self.loss_name = "rmse" if self.task == "regression" else "log_loss"
        self.select_on = spec.bakeoff.select_on
        self.metric = "business_cost" if self.select_on == "cost" and self.has_cost else self.loss_name

    @property
    def by_loss(self) -> bool:
        """True when the selection metric is the proper loss (row-level paired comparisons apply)."""
        return self.metric == self.loss_name

    def _matrix(self, matrix: dict) -> np.ndarray:
        """``matrix[actual][predicted]`` as an array; missing cells cost 0 on the diagonal, 1 off it."""
        classes = self.classes
        m = np.array([[0.0 if a == p else 1.0 for p in classes] for a in classes])
        from ..tasks.multiclass import check_matrix

        check_matrix(matrix, classes)
        for a, row in matrix.items():
            for p, v in row.items():
                m[classes.index(str(a)), classes.index(str(p))] = float(v)
        return m

    def scores(self, model, X: pd.DataFrame) -> np.ndarray:
        """Binary: P(positive); multiclass: the full probability matrix; regression: the prediction."""
        if self.task == "regression":
            return np.asarray(model.predict(X), dtype="float64")
        proba = np.asarray(model.predict_proba(X), dtype="float64")
        if self.task == "binary":
            classes = list(model.classes_)
            return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(X))
        full = np.zeros((len(X), self.n_classes))
        full[:, np.asarray(model.classes_, dtype=int)] = proba
        return full

    def row_loss(self, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Per-row proper loss: log loss, or the squared error (its mean's root is the RMSE)."""
        if self.task == "binary":
            return binary_row_loss(y, s)
        if self.task == "multiclass":
            return -np.log(np.clip(s[np.arange(len(y)), np.asarray(y, dtype=int)], EPS, 1))
        return (np.asarray(s, dtype="float64") - np.asarray(y, dtype="float64")) ** 2

    def loss(self, y: np.ndarray, s: np.ndarray) -> float:
        m = float(np.mean(self.row_loss(y, s)))
        return float(np.sqrt(m)) if self.task == "regression" else m

    def cost(self, y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> float | None:
        """Business cost per decision on rows ``idx`` (positions in the scored rows); None without costs."""
        if self.costs is not None:
            from ..tasks import choose_cut

            return float(choose_cut(y, s, self.costs.take(idx), self.capacity)[2])
        if self.matrix is not None:
            decision = np.argmin(s @ self.matrix, axis=1)
            return float(self.matrix[np.asarray(y, dtype=int), decision].mean())
        if self.under is not None:
            from ..tasks import regression_cost_of

            return float(np.mean(regression_cost_of(self.under[idx], self.over[idx], y, s)))
        return None

    def fold(self, y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> dict:
        """``{"loss", "cost", "score"}`` on one validation fold; ``score`` is the selection metric."""
        loss, cost = self.loss(y, s), self.cost(y, s, idx)
        return {"loss": loss, "cost": cost, "score": cost if self.metric == "business_cost" else loss}


# --------------------------------------------------------------------------- folds
def cv_folds(case: Case, dataset, n_folds: int | None = None,
             rows: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds: ``(fit positions, validation positions)`` pairs into ``rows``.

    ``rows`` are positions into ``dataset.frame`` (default: the train part). ``time``:
    expanding windows, each validation block later than everything it is fitted on (rows
    sharing a timestamp stay on one side). ``group``: no group on both sides.
    ``stratified``: class shares kept. ``random``: shuffled.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    spec = case.spec
    k = n_folds or spec.split.cv_folds
    rows = dataset.split.train if rows is None else np.asarray(rows)
    n = len(rows)
    method = dataset.split.method
    seed = spec.split.seed
    if n < 2 * k:
        raise SpecError(f"split.cv_folds: {k} folds need at least {2 * k} training rows, the train part has {n}",
                        "lower split.cv_folds or add data")
    if method == "time":
        t = pd.to_datetime(dataset.time.to_numpy()[rows]).asi8 if dataset.time is not None else np.arange(n)
        ts = np.sort(t)
        cuts = [ts[int(round(i * n / (k + 1)))] for i in range(1, k + 1)] + [ts[-1] + 1]
        folds = []
        for i in range(k):
            fit = np.flatnonzero(t < cuts[i])
            val = np.flatnonzero((t >= cuts[i]) & (t < cuts[i + 1]))
            if len(fit) and len(val):
                folds.append((fit, val))
        if len(folds) < 2:
            raise SpecError("split: the training rows have too few distinct times for time-ordered CV folds",
                            "use split.method: random or stratified, or add data over more time")
        return _with_classes(folds, dataset, rows, "time", "its earliest rows",
                             "use split.method: stratified, or start the data where every class occurs")
    if method == "group":
        groups = dataset.frame[spec.data.group].to_numpy()[rows]
        n_groups = len(pd.unique(groups))
        if n_groups < 2:
            raise SpecError("split.method 'group': the train part holds one group, so group CV is impossible",
                            "use another split method or add groups")
        splitter = GroupKFold(n_splits=min(k, n_groups), shuffle=True, random_state=seed)
        return _with_classes([(a, b) for a, b in splitter.split(np.zeros(n), groups=groups)], dataset, rows,
                             "group", "its groups", "add groups that hold more than one class")
    y = dataset.y[rows]
    if spec.task != "regression" and method == "stratified":
        # class codes in order of appearance, as StratifiedKFold encodes them itself (the same folds): its
        # np.unique sorted openintro::military's 1.1 million labels as strings, 10 s of the run
        codes = pd.factorize(y)[0]
        counts = np.bincount(codes)
        splitter = StratifiedKFold(n_splits=max(2, min(k, int(counts.min()))), shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), codes))
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))


def _with_classes(folds: list, dataset, rows: np.ndarray, method: str, where: str, fix: str) -> list:
    """The folds whose fit rows hold two classes or more (classification): a model cannot be fitted on one.

    palmerpenguins::penguins_raw split by ``Date Egg``: the first sixth of the nests were all Adelie
    penguins, so the first time fold's fit rows held one species and the linear baseline's fit raised
    scikit-learn's "needs samples of at least 2 classes" (an internal error). Such a fold is left out, as
    the first fold of an expanding window is the one it happens to.
    """
    if dataset.task not in ("binary", "multiclass"):
        return folds
    y = np.asarray(dataset.y)[rows]
    kept = [(a, b) for a, b in folds if len(pd.unique(y[a])) >= 2]
    if len(kept) < 2:
        raise SpecError(f"split.method '{method}': {len(folds) - len(kept)} of the {len(folds)} CV folds fit on "
                        f"rows of a single class ({where} hold one class), and at least 2 folds must hold two",
                        fix)
    return kept


# --------------------------------------------------------------------------- which rows
@dataclass
class Plan:
    """The rows of the search.

    Attributes
    ----------
    mode : {"cv", "holdout"}
    pool : ndarray
        Positions into ``dataset.frame`` of every row the search uses; fold positions index it.
    folds : list of (fit, validation) position pairs into ``pool``
    sizes : list of int
        Sample sizes of the fit rows (holdout mode: growing; cv mode: one, all of them).
    valid_in_pool : ndarray
        Positions in ``pool`` of the validation part's rows (cv mode: they get out-of-fold
        scores; holdout mode: empty, the validation part is not used).
    order : ndarray
        A fixed random order of the holdout-mode fit rows; a sample of size ``s`` is its first ``s``.
    """

    mode: str
    pool: np.ndarray
    folds: list
    sizes: list[int]
    valid_in_pool: np.ndarray
    order: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def parts(self) -> str:
        return "train+valid" if len(self.valid_in_pool) else "train"

    def fit_rows(self, fold: int, size: int | None = None) -> np.ndarray:
        """Positions (in ``pool``) a trial fits on in ``fold``, at sample ``size`` (holdout mode)."""
        fit = self.folds[fold][0]
        if self.mode == "cv" or size is None or size >= len(self.order):
            return fit
        return np.sort(self.order[:size])

    def to_dict(self) -> dict:
        return {"mode": self.mode, "parts": self.parts, "n_pool": int(len(self.pool)), "folds": len(self.folds),
                "sizes": [int(s) for s in self.sizes],
                "n_holdout": int(len(self.folds[0][1])) if self.mode == "holdout" else None,
                "n_valid_out_of_fold": int(len(self.valid_in_pool))}


def make_plan(case: Case, dataset) -> Plan:
    """Cross-validation on train + valid, or, past ``bakeoff.holdout_above`` rows, a holdout with growing samples."""
    split = dataset.split
    limit = case.spec.bakeoff.holdout_above
    n_train = len(split.train)
    if n_train + len(split.valid) <= limit:
        pool = np.concatenate([split.train, split.valid])
        folds = cv_folds(case, dataset, rows=pool)
        covered = np.zeros(len(pool), dtype=bool)
        for _, val in folds:
            covered[val] = True
        if covered[n_train:].all():
            return Plan("cv", pool, folds, [len(pool)], np.arange(n_train, len(pool)))
        # time-ordered folds that leave some validation rows without an out-of-fold score (they would
        # need a model fitted on later rows): search and refit on the train part, as before
        pool = np.asarray(split.train)
        return Plan("cv", pool, cv_folds(case, dataset, rows=pool), [len(pool)], np.array([], dtype=int),
                    notes=["some validation rows precede every time-ordered fold: the search and the refit use "
                           "the train part only"])
    pool = np.asarray(split.train)
    k = max(2, int(round(1 / HOLDOUT_SHARE)))
    fit, held = cv_folds(case, dataset, n_folds=k, rows=pool)[-1]   # the last fold: latest rows for a time split
    rng = np.random.default_rng(case.spec.split.seed)
    notes = []
    if len(held) > HOLDOUT_MAX:
        held = np.sort(rng.choice(held, HOLDOUT_MAX, replace=False))
        notes.append(f"holdout subsampled to {HOLDOUT_MAX:,} rows")
    order = rng.permutation(fit)
    sizes, s = [], FIRST_SAMPLE
    while s < len(fit):
        sizes.append(s)
        s *= SAMPLE_FACTOR
    if not sizes or len(fit) > sizes[-1] * 1.5:
        sizes.append(len(fit))
    else:
        sizes[-1] = len(fit)
    return Plan("holdout", pool, [(np.sort(fit), held)], sizes, np.array([], dtype=int), order=order, notes=notes)
