"""The baselines of the out-of-core bake-off (:mod:`mlcase.bakeoff.large`): linear by ``partial_fit``, rules by DuckDB.

- ``linear``: :class:`sklearn.linear_model.SGDClassifier` (``loss="log_loss"``) or ``SGDRegressor``, trained with
  ``partial_fit`` on one training partition at a time, streamed from the workers to this process (the next one
  is fetched while the current one trains). One pass of statistics comes first, computed by Dask on the workers:
  the mean and standard deviation of each numeric feature (a missing value becomes the mean, then every numeric
  feature is standardised) and, for the regression target, its mean and deviation (SGD on a raw target of large
  scale diverges). Categorical features are one-hot over their known categories (``categorize``); an unseen or
  missing category is all zeros. :data:`EPOCHS` passes, the partitions in a seeded order and the rows of each
  shuffled with the same seed; averaged SGD (:data:`SGD`) lands close to the in-memory optimum on the same
  rows. The fitted model is a :class:`StreamedLinear`, which scores a partition's feature frame on a worker
  like any candidate.
- rules (``{rule: ..., name: ...}``): the same :class:`mlcase.rules.Rule` (the SQL guard, then DuckDB) evaluated on
  each training partition on the workers; only four counts per rule and partition come back (rows, positives, rows
  flagged, positives among them), from which :meth:`mlcase.baselines.RuleBaseline.from_sums` builds the model
  :meth:`~mlcase.baselines.RuleBaseline.fit` gives in memory on the same rows. A regression rule needs only the
  training mean (its value where the expression is NULL).
"""

from __future__ import annotations

import time
from typing import Any

EPOCHS = 3      # passes of partial_fit over the training partitions
# Averaged SGD with steps eta0 / t ** 0.5 (Polyak-Ruppert averaging). scikit-learn's defaults ("optimal" steps,
# 1 / (alpha * t)) start with steps far too large for a few thousand rows: on 9,600 rows of a planted logistic
# truth (tests/test_large.py) they gave a validation log loss of 0.53-0.60 against 0.442 for LogisticRegression on
# the same rows, and these settings 0.442 after one to three epochs (SGDRegressor: rmse 5.089 against Ridge's 5.090).
SGD = {"alpha": 1e-4, "learning_rate": "invscaling", "eta0": 0.5, "power_t": 0.5, "average": True}


def baseline_models(case, client, train, features: list[str], task: str, prior: float) -> list[dict]:
    """Fit the ``linear`` and rule baselines the spec names; one ``{"name", "estimator", "model", "fit_s", ...}`` each.

    The constant baselines (``majority``, ``prior``, ``mean``, ``median``) are the training prior, which
    :func:`mlcase.bakeoff.large.run_large_bakeoff` always validates as the floor.
    """
    from ..spec import RuleBaseline as RuleSpec

    spec = case.spec
    out: list[dict] = []
    rules = [(i, b) for i, b in enumerate(spec.baselines) if isinstance(b, RuleSpec)]
    if "linear" in spec.baselines:
        started = time.perf_counter()
        model = fit_linear(client, train, features, task, spec.split.seed)
        out.append({"name": "linear", "estimator": f"sklearn.linear_model.{type(model.est).__name__} (partial_fit)",
                    "model": model, "fit_s": round(time.perf_counter() - started, 3)})
    if rules:
        started = time.perf_counter()
        models = fit_rules(client, train, features, task, [(f"baselines[{i}].rule", b.rule) for i, b in rules], prior)
        fit_s = round(time.perf_counter() - started, 3)   # one pass for every rule together
        for (_, b), model, name in zip(rules, models, spec.rule_names(), strict=True):
            out.append({"name": name, "estimator": "mlcase.baselines.RuleBaseline (DuckDB)",
                        "expression": b.rule, "model": model, "fit_s": fit_s})
    return out


# --------------------------------------------------------------------------- rules
def rule_counts(part, rules: list, features: list[str]):
    """One training partition's counts per rule (run on a worker): rows, positives, rows flagged, positives flagged."""
    import pandas as pd

    y = part["_y"].to_numpy("float64")
    rows = []
    for rule in rules:
        flags = rule.predict(part[features]).astype(bool)
        rows.append({"rows": len(y), "positives": float(y.sum()), "flagged": int(flags.sum()),
                     "flagged_positives": float(y[flags].sum())})
    return pd.DataFrame(rows, columns=["rows", "positives", "flagged", "flagged_positives"])


def fit_rules(client, train, features: list[str], task: str, rules: list[tuple[str, str]], prior: float) -> list:
    """One :class:`~mlcase.baselines.RuleBaseline` per ``(where, expression)``, from one pass over ``train``."""
    import pandas as pd

    from ..baselines import RuleBaseline
    from ..rules import Rule

    if task == "regression":   # the value of the expression is the prediction; NULL gets the training mean
        return [RuleBaseline.from_sums(e, features, task, rows=1, mean=prior, where=w) for w, e in rules]
    parsed = [Rule(expression=e, columns=list(features), kind="boolean", where=w) for w, e in rules]
    meta = pd.DataFrame({"rows": pd.Series(dtype="int64"), "positives": pd.Series(dtype="float64"),
                         "flagged": pd.Series(dtype="int64"), "flagged_positives": pd.Series(dtype="float64")})
    counts = client.compute(train.map_partitions(rule_counts, parsed, features, meta=meta), sync=True)
    # each partition gave one row per rule, in order: rule k's rows are k, k + len(rules), ...
    counts = counts.reset_index(drop=True)
    models = []
    for k, (where, expression) in enumerate(rules):
        s = counts.iloc[k::len(rules)].sum()
        models.append(RuleBaseline.from_sums(expression, features, task, rows=int(s["rows"]),
                                             positives=float(s["positives"]), flagged=int(s["flagged"]),
                                             flagged_positives=float(s["flagged_positives"]), where=where))
    return models


# --------------------------------------------------------------------------- linear
class StreamedLinear:
    """A linear model trained partition by partition; scores a feature frame (picklable, to run on a worker).

    Parameters
    ----------
    est : SGDClassifier or SGDRegressor
    numeric : list of str
        Numeric features, standardised with ``means`` / ``sds`` (missing values become the mean, i.e. 0).
    categories : dict
        Categorical feature -> its known categories, one-hot encoded (unknown or missing: all zeros).
    y_mean, y_sd : float
        Regression: the target's standardisation, undone by :meth:`predict`.
    """

    def __init__(self, est, numeric: list[str], means, sds, categories: dict[str, list], y_mean: float = 0.0,
                 y_sd: float = 1.0):
        import numpy as np

        self.est, self.numeric, self.categories = est, list(numeric), dict(categories)
        self.means = np.asarray(means, dtype="float64")
        self.sds = np.where(np.asarray(sds, dtype="float64") > 0, np.asarray(sds, dtype="float64"), 1.0)
        self.y_mean, self.y_sd = float(y_mean), float(y_sd)

    def design(self, X) -> Any:
        """The model's input: standardised numeric columns, then one 0/1 column per known category."""
        import numpy as np
        import pandas as pd

        blocks = []
        if self.numeric:
            num = (X[self.numeric].to_numpy("float64", na_value=np.nan) - self.means) / self.sds
            blocks.append(np.where(np.isnan(num), 0.0, num))
        for col, cats in self.categories.items():
            codes = pd.Categorical(X[col], categories=cats).codes
            onehot = np.zeros((len(X), len(cats)))
            known = codes >= 0
            onehot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(onehot)
        return np.hstack(blocks) if blocks else np.zeros((len(X), 0))

    def predict_proba(self, X):
        return self.est.predict_proba(self.design(X))

    def predict(self, X):
        if hasattr(self.est, "predict_proba"):
            return self.est.predict(self.design(X))
        return self.y_mean + self.y_sd * self.est.predict(self.design(X))


def fit_linear(client, train, features: list[str], task: str, seed: int) -> StreamedLinear:
    """Standardise from Dask's statistics, then ``partial_fit`` over the training partitions, :data:`EPOCHS` times.

    scikit-learn's ``partial_fit`` rather than dask-ml: dask-ml is not installed, and it would be a new, heavy
    dependency for one baseline; SGD over streamed partitions needs no more than scikit-learn and the client.
    """
    import numpy as np
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    from .large import numeric_dtype

    numeric = [c for c in features if numeric_dtype(train[c].dtype)]
    categories = {c: list(train[c].cat.categories) for c in features if c not in numeric}
    stats = [train[numeric].astype("float64").mean(), train[numeric].astype("float64").std()] if numeric else []
    stats += [train["_y"].mean(), train["_y"].std()]
    values = client.compute(stats, sync=True)
    means, sds = (values[0].to_numpy(), values[1].to_numpy()) if numeric else ([], [])
    y_mean, y_sd = float(values[-2]), float(values[-1])
    if task == "binary":
        est = SGDClassifier(loss="log_loss", random_state=seed, **SGD)
        model = StreamedLinear(est, numeric, means, sds, categories)
    else:
        est = SGDRegressor(random_state=seed, **SGD)
        model = StreamedLinear(est, numeric, means, sds, categories, y_mean, y_sd if y_sd > 0 else 1.0)
    rng = np.random.default_rng(seed)
    order = [int(i) for _ in range(EPOCHS) for i in rng.permutation(train.npartitions)]
    ahead = client.compute(train.partitions[order[0]])
    for k in range(len(order)):
        part = ahead.result()
        if k + 1 < len(order):   # fetch the next partition while this one trains: at most two here at once
            ahead = client.compute(train.partitions[order[k + 1]])
        if not len(part):
            continue
        part = part.iloc[rng.permutation(len(part))]
        y = part["_y"].to_numpy("float64")
        if task == "binary":
            est.partial_fit(model.design(part[features]), y, classes=np.array([0.0, 1.0]))
        else:
            est.partial_fit(model.design(part[features]), (y - model.y_mean) / model.y_sd)
    if not hasattr(est, "coef_"):
        from ..errors import DataError

        raise DataError("data.source: the training partitions are empty; the linear baseline has no rows to learn from",
                        "check data.source and split.valid_size")
    return model


__all__ = ["baseline_models", "fit_linear", "fit_rules", "rule_counts", "StreamedLinear", "EPOCHS"]
