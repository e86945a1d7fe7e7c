"""SHAP explanations in terms of the case's original columns.

The only module that imports :mod:`shap`. Each bundle is explained by the
fastest exact explainer its model family allows:

- ``tree``: :class:`shap.TreeExplainer` on the preprocessed matrix for tree
  ensembles (LightGBM, XGBoost, HistGradientBoosting, random forests, ...);
  boosted classifiers are explained in log-odds (the raw margin), forests in
  probability.
- ``linear``: :class:`shap.LinearExplainer` on the preprocessed matrix for
  linear models (log-odds for classifiers).
- ``permutation``: model-agnostic permutation SHAP (:func:`permutation_shap`): exact Shapley values over
  every coalition of columns (:func:`exact_shap`) where they take at most :data:`EXACT_EVALS` model
  evaluations per row (13 columns against one reference row), sampled feature orders past that.
  On the preprocessed matrix, in the same output space, when the fast
  explainer cannot follow the model (HistGradientBoosting with native
  categorical splits) or its values fail the additivity check; over the
  original columns, explaining the bundle's score (probability or
  prediction), for everything else (rule and majority baselines, unknown
  estimators).

A weighted ensemble from the bake-off pools its members' log-odds, so its SHAP values are
the weighted sum of its members' values (see :func:`_explain_ensemble`).

A model calibrated after the bake-off
(``CalibratedClassifierCV(FrozenEstimator(pipeline))``) is explained through
the pipeline inside it, and the result says so: calibration is a monotone map
of that pipeline's output, so the contributions keep their sign and order.

Contributions of the columns a preprocessing step derives from one source
column (one-hot indicators, missing indicators) are summed back to that
column, so every explanation names the columns of the case's data.
SHAP values are additive: ``base_value + sum(contributions) == output`` for
each row; :func:`explain_rows` reports that check per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ModelError

TREE_ESTIMATORS = (
    "LGBMClassifier", "LGBMRegressor", "LGBMRanker", "XGBClassifier", "XGBRegressor", "XGBRanker",
    "CatBoostClassifier", "CatBoostRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
    "GradientBoostingClassifier", "GradientBoostingRegressor",
    "DecisionTreeClassifier", "DecisionTreeRegressor",
)
# tree models whose TreeExplainer output is the probability itself (leaf averages), not a margin
PROBABILITY_TREES = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier")
MAX_BEESWARM_FEATURES = 20
MAX_BEESWARM_POINTS = 200
AGNOSTIC_BACKGROUND = 30
PERMUTATIONS = 4
# per explained row, at most this many model evaluations (coalitions x background rows) for exact Shapley values;
# past it, sampled permutations. Per row, not per call: a row's values do not depend on the rows beside it.
EXACT_EVALS = 8192
ADDITIVITY_TOL = 1e-4   # relative to the largest output: float32 models (XGBoost) sum with ~1e-6 error


# --------------------------------------------------------------------------- public API
def explain_global(bundle, X: pd.DataFrame, max_rows: int = 500, seed: int = 0) -> dict:
    """Global explanation of ``bundle`` from a sample of ``X`` (the test split).

    Parameters
    ----------
    bundle : ModelBundle
    X : DataFrame
        Rows with the bundle's feature columns.
    max_rows : int
        At most this many rows (sampled with ``seed``) are explained.
    seed : int

    Returns
    -------
    dict
        ``explainer`` (tree / linear / permutation), ``output`` (the space
        explained: log_odds, probability, prediction, margin), ``base_value``,
        ``importance`` (``[{"feature", "mean_abs_shap"}]`` over the original
        columns, largest first), ``beeswarm`` (per feature, in importance order,
        up to 200 ``[value, shap]`` points), ``n_rows``, ``additivity_max_error``
        (largest ``|base + sum(shap) - output|``), ``explained_model`` and
        ``notes``.
    """
    X = _features(bundle, X)
    if len(X) == 0:
        raise ModelError("explain: no rows to explain", "pass a non-empty sample of the test split")
    if len(X) > max_rows:
        X = X.sample(n=max_rows, random_state=seed)
    exp = _explain(bundle, X, seed=seed)
    values = exp.values_for_summary()          # (n, n_features) for ranking and the beeswarm
    mean_abs = exp.mean_abs()
    order = np.argsort(-mean_abs, kind="stable")
    importance = [{"feature": exp.features[i], "mean_abs_shap": float(mean_abs[i])} for i in order]
    rng = np.random.default_rng(seed)
    pick = np.arange(len(X)) if len(X) <= MAX_BEESWARM_POINTS else np.sort(
        rng.choice(len(X), MAX_BEESWARM_POINTS, replace=False))
    beeswarm = []
    for i in order[:MAX_BEESWARM_FEATURES]:
        col = exp.features[i]
        raw = X[col].to_numpy()[pick]
        beeswarm.append({"feature": col, "numeric": bool(_is_numeric(X[col])),
                         "points": [[_json_value(v), float(s)] for v, s in zip(raw, values[pick, i], strict=True)]})
    return {
        "model": bundle.name,
        "explainer": exp.explainer,
        "explained_model": exp.explained_model,
        "output": exp.output,
        "classes": exp.classes,
        "base_value": _json_value(exp.base_scalar()),
        "n_rows": int(len(X)),
        "importance": importance,
        "beeswarm": beeswarm,
        "additivity_max_error": float(np.max(np.abs(exp.additivity_error()))),
        "notes": exp.notes,
    }


def explain_rows(bundle, X: pd.DataFrame, top: int = 5, background: pd.DataFrame | None = None,
                 seed: int = 0) -> list[dict]:
    """Local explanations: per row the prediction and its top contributions.

    Parameters
    ----------
    bundle : ModelBundle
    X : DataFrame
        The rows to explain (feature columns; extra columns are ignored).
    top : int
        How many contributions to list (largest absolute first); the rest is
        summed in ``other``.
    background : DataFrame, optional
        Reference rows for the linear and model-agnostic explainers. Without
        it, one typical row built from the bundle's training schema (median
        numbers, most frequent categories) is the reference; tree explainers
        need none.
    seed : int

    Returns
    -------
    list of dict
        Per row: ``prediction`` (score: P(positive), prediction, or the
        predicted class), ``decision``, ``output`` (the explained value, in
        ``output_space``), ``base_value``, ``contributions``
        (``[{"feature", "value", "contribution"}]``), ``other``, ``sum_check``
        (``{"base_plus_contributions", "output", "abs_error"}``), ``explainer``,
        ``explained_model`` and ``notes`` (what the explained output is, where it is not the served
        score's: the model inside a calibration wrapper, a fallback explainer).
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ModelError(f"explain: top {top!r} is not a whole number of at least 1",
                         "pass top=5, say: the contributions to list per row")
    X = _checked(bundle, _features(bundle, X))
    if len(X) == 0:
        return []
    bg = _features(bundle, background) if background is not None else typical_rows(bundle, X)
    exp = _explain(bundle, X, background=bg, seed=seed)
    scores = bundle.scores(X)
    decisions = bundle.decide(scores)
    out = []
    for r in range(len(X)):
        k = exp.row_class(r)
        contrib = exp.row_values(r, k)
        order = np.argsort(-np.abs(contrib), kind="stable")
        shown = order[:max(int(top), 0)]
        base = float(exp.row_base(r, k))
        output = float(exp.row_output(r, k))
        total = base + float(contrib.sum())
        if bundle.task == "multiclass":
            prediction = _json_value(decisions[r])
        else:  # binary: the probability; regression: the prediction (the score, or its cost map)
            prediction = float(decisions[r] if bundle.task == "regression" else scores[r])
        out.append({
            "prediction": prediction,
            "decision": _json_value(decisions[r]),
            "explained_class": None if k is None else _json_value(exp.classes[k]),
            "output": output,
            "output_space": exp.output,
            "base_value": base,
            "contributions": [{"feature": exp.features[i], "value": _json_value(X.iloc[r][exp.features[i]]),
                               "contribution": float(contrib[i])} for i in shown],
            "other": float(contrib[order[len(shown):]].sum()),
            "sum_check": {"base_plus_contributions": total, "output": output, "abs_error": abs(total - output)},
            "explainer": exp.explainer,
            "explained_model": exp.explained_model,
            "notes": _row_notes(bundle, exp, output, prediction),
        })
    return out


def _row_notes(bundle, exp, output: float, prediction) -> list[str]:
    """The explanation's notes for one row. A binary model calibrated after the bake-off is explained before its
    calibration: its output is not the served probability's log-odds, and the note says so with both numbers
    (modeldata::credit_data's CatBoost printed P(bad) = 0.178 above an output of -1.036 log-odds, 0.262, with
    nothing between them)."""
    if bundle.task == "regression" and exp.output == "prediction":
        return list(exp.notes) + _point_note(bundle.point or {}, output, float(prediction))
    if bundle.task != "binary" or type(bundle.model).__name__ != "CalibratedClassifierCV":
        return list(exp.notes)
    before = 1.0 / (1.0 + np.exp(-output)) if exp.output == "log_odds" else output
    return [n for n in exp.notes if not n.startswith("explains the pipeline inside the calibration")] + [
        f"the output is the {exp.output} of the model before its calibration (P {before:.3f}); the served "
            f"probability {float(prediction):.3f} is its calibrated map, which keeps the contributions' sign and "
            "order, not their sizes"]


def typical_rows(bundle, X: pd.DataFrame | None = None) -> pd.DataFrame:
    """One reference row from the bundle's training schema: medians and most frequent categories.

    A column the schema gives no typical value for (a date, text of too many values) is missing in the
    reference, which the model reads as it reads any missing value (a linear model's imputer: the training
    median). It used to take the first row of ``X``: a date then never contributed to a row explained
    alone, and a record's contributions changed with the records sent beside it (robustbase::ambientNOxCH,
    row 200: date 0.0 alone, -1.63 second of two). ``X`` only types the row like the rows it explains.
    """
    cols = {c.get("name"): c for c in (bundle.schema or {}).get("columns", [])}
    row = {}
    for f in bundle.features:
        info = cols.get(f)
        value: Any = None
        if info is not None:
            if info.get("kind") == "numeric":
                q = info.get("quantiles")
                value = q[len(q) // 2] if q else info.get("mean")
            elif info.get("categories"):
                value = info["categories"][0]
            elif info.get("kind") == "boolean":
                value = False
        row[f] = [value]
    frame = pd.DataFrame(row)
    if X is not None:
        for f in bundle.features:
            if f in X.columns:
                if pd.api.types.is_datetime64_any_dtype(X[f]) and frame[f].isna().all():
                    frame[f] = pd.Series([pd.NaT], dtype=X[f].dtype)
                else:
                    frame[f] = _cast_like(frame[f], X[f])
    return frame


def _point_note(point: dict, output: float, prediction: float) -> list[str]:
    """A regression's served prediction is its score mapped to the cheapest quantile under ``costs.under`` and
    ``costs.over`` (``intercept + slope x score``), or raised to the target's floor: the explained output is the
    score, and the note gives the map (Ecdat::MedExp's ridge printed prediction 54.756 above an output of 243.332,
    its score, with nothing between them)."""
    floor = point.get("floor")
    raised = floor is not None and prediction == float(floor) and not np.isclose(prediction, output)
    if "slope" in point:
        a, b = float(point["intercept"]), float(point["slope"])
        return [f"the output is the model's score; the served prediction {prediction:.6g} is {a:.6g} + {b:.6g} x "
                f"score, the cheapest quantile under costs.under and costs.over"
                + (f", raised to the floor {float(floor):g}" if raised else "")
                + f": each contribution times {b:.4g} is its share of the prediction"]
    if raised:
        return [f"the output is the model's score {output:.6g}; the served prediction is raised to {float(floor):g}, "
                "below which no training target was"]
    return []


# --------------------------------------------------------------------------- explanation object
@dataclass
class _Explanation:
    """SHAP values over the original columns, with what they explain."""

    values: np.ndarray            # (n, m) or (n, m, k) over the original columns
    base: np.ndarray              # (n,) or (n, k)
    output_values: np.ndarray     # (n,) or (n, k): what base + sum(values) must equal
    features: list[str]
    explainer: str
    output: str
    explained_model: str
    task: str
    classes: list | None = None
    predicted: np.ndarray | None = None   # multiclass: index of the predicted class per row
    notes: list[str] = field(default_factory=list)

    @property
    def multi(self) -> bool:
        return self.values.ndim == 3

    def values_for_summary(self) -> np.ndarray:
        if not self.multi:
            return self.values
        return self.values[np.arange(len(self.values)), :, self.predicted]

    def mean_abs(self) -> np.ndarray:
        if not self.multi:
            return np.abs(self.values).mean(axis=0)
        return np.abs(self.values).mean(axis=(0, 2))

    def base_scalar(self):
        if not self.multi:
            return float(np.mean(self.base))
        return [float(v) for v in np.mean(self.base, axis=0)]

    def additivity_error(self) -> np.ndarray:
        return self.base + self.values.sum(axis=1) - self.output_values

    def row_class(self, r: int) -> int | None:
        return int(self.predicted[r]) if self.multi else None

    def row_values(self, r: int, k: int | None) -> np.ndarray:
        return self.values[r] if k is None else self.values[r, :, k]

    def row_base(self, r: int, k: int | None) -> float:
        return self.base[r] if k is None else self.base[r, k]

    def row_output(self, r: int, k: int | None) -> float:
        return self.output_values[r] if k is None else self.output_values[r, k]


def _explain(bundle, X: pd.DataFrame, background: pd.DataFrame | None = None, seed: int = 0) -> _Explanation:
    inner, notes = unwrap(bundle.model)
    if type(inner).__name__ in ENSEMBLES:
        return _explain_ensemble(bundle, inner, X, background, seed, notes)
    pre, est = _split_pipeline(inner)
    family = _family(est)
    if family in ("tree", "linear"):
        try:
            return _explain_fast(bundle, inner, pre, est, family, X, background, notes, seed)
        except _Unsupported as exc:
            notes = notes + [f"the {family} explainer could not explain {type(est).__name__} ({exc})"]
        try:
            return _explain_fast(bundle, inner, pre, est, "permutation", X, background, notes, seed)
        except _Unsupported as exc:
            notes = notes + [f"the preprocessed columns could not be explained ({exc})"]
    return _explain_agnostic(bundle, X, background, seed, notes)


class _Unsupported(Exception):
    """The fast path cannot explain this model; fall back to the model-agnostic explainer."""


ENSEMBLES = ("EnsembleClassifier", "EnsembleRegressor")
_ENSEMBLE_SPACE = {"binary": "log_odds", "multiclass": "margin", "regression": "prediction"}


def _explain_ensemble(bundle, ens, X, background, seed, notes) -> _Explanation:
    """A weighted ensemble (:mod:`mlcase.bakeoff.ensemble`): the weighted sum of its members' SHAP values.

    The ensemble pools its members' log-odds (margins; predictions for regression) with
    weights ``w``, so when every member is explained in that space its SHAP values are
    ``sum_i w_i * shap_i`` and its base value ``sum_i w_i * base_i``: additive, like each
    member's. When a member can only be explained in another space (a random forest's
    probabilities), the ensemble is explained model-agnostically instead.
    """
    from dataclasses import replace

    space = _ENSEMBLE_SPACE[bundle.task]
    parts = []
    for w, member in zip(ens.weights_, ens.estimators_, strict=True):
        part = _explain(replace(bundle, model=member), X, background, seed)
        if part.output != space:
            return _explain_agnostic(bundle, X, background, seed, notes + [
                f"a member ({part.explained_model}) is explained in {part.output}, not {space}: the ensemble is "
                "explained model-agnostically"])
        parts.append((float(w), part))
    values = sum(w * p.values for w, p in parts)
    base = sum(w * p.base for w, p in parts)
    output = sum(w * p.output_values for w, p in parts)
    predicted = _decided(bundle, bundle.scores(X)) if values.ndim == 3 else None
    explainers = sorted({p.explainer for _, p in parts})
    members = ", ".join(f"{w:.2f} x {p.explained_model}" for w, p in parts)
    return _Explanation(values=values, base=base, output_values=output, features=list(bundle.features),
                        explainer="+".join(explainers), output=space,
                        explained_model=f"weighted ensemble ({members})", task=bundle.task,
                        classes=list(bundle.classes) if bundle.classes is not None else None, predicted=predicted,
                        notes=notes + ["an ensemble's SHAP values are the weighted sum of its members' values"])


def unwrap(model) -> tuple[Any, list[str]]:
    """The model SHAP explains: the pipeline inside a calibration wrapper, else the model itself.

    Returns the model and notes saying what was unwrapped.
    """
    notes: list[str] = []
    if type(model).__name__ == "CalibratedClassifierCV":
        inner = getattr(model, "estimator", None)
        if type(inner).__name__ == "FrozenEstimator":
            inner = inner.estimator
            notes.append("explains the pipeline inside the calibration wrapper; calibration is a monotone "
                         "map of its output, so contributions keep their sign and order")
        else:
            inner = model.calibrated_classifiers_[0].estimator
            if type(inner).__name__ == "FrozenEstimator":
                inner = inner.estimator
            notes.append("explains the first cross-validated pipeline inside the calibration wrapper")
        model = inner
    return model, notes


def _split_pipeline(model):
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        if len(model.steps) == 1:
            return None, model[-1]
        return model[:-1], model[-1]
    return None, model


def _family(est) -> str:
    name = type(est).__name__
    if name in TREE_ESTIMATORS:
        return "tree"
    module = type(est).__module__
    if module.startswith("sklearn.linear_model") and hasattr(est, "coef_"):
        return "linear"
    return "agnostic"


def _shap():
    """:mod:`shap`, imported without pinning the caller's frames.

    SHAP keeps the ImportError of each optional extension it lacks (its GPU tree explainer's ``_cext_gpu``) in
    ``shap.utils._general.import_errors``, traceback included. Imported here, inside ``mlcase.run``, that traceback
    held every frame of the run that first imported it (the dataset, every bundle, and on the Dask engine its
    client and closed cluster) for as long as the notebook's process lived. The errors stay (SHAP raises them
    again when asked for that extension); their tracebacks go.
    """
    import shap

    errors = getattr(getattr(getattr(shap, "utils", None), "_general", None), "import_errors", None)
    for entry in (errors.values() if isinstance(errors, dict) else ()):
        exc = entry[1] if isinstance(entry, tuple) and len(entry) > 1 else None
        while isinstance(exc, BaseException) and exc.__traceback__ is not None:
            exc.__traceback__ = None
            exc = exc.__cause__ or exc.__context__
    return shap


def _explain_fast(bundle, inner, pre, est, family, X, background, notes, seed=0) -> _Explanation:
    """SHAP on the preprocessed matrix: TreeExplainer, LinearExplainer, or permutation SHAP of the estimator.

    The values are checked against the model's own output; a miss (e.g. a
    tree explainer that ignores native categorical splits) raises
    ``_Unsupported`` so the caller falls back.
    """
    shap = _shap()

    Z = pre.transform(X) if pre is not None else X
    Zd = _dense(Z)
    catboost = type(est).__module__.startswith("catboost")  # categories stay text: an object matrix
    if not catboost and not np.issubdtype(Zd.dtype, np.number):
        raise _Unsupported("the preprocessed matrix is not numeric")
    source = feature_sources(pre, bundle.features, Zd.shape[1], X)
    est_name = type(est).__name__
    task = bundle.task
    if family == "tree" and est_name in PROBABILITY_TREES:
        output = "probability"
    else:
        output = "prediction" if task == "regression" else ("log_odds" if task == "binary" else "margin")
    raw = _raw_output(est, Z, output, task)
    if family == "tree":
        cats = getattr(est, "is_categorical_", None)
        if est_name.startswith("HistGradientBoosting") and cats is not None and np.any(cats):
            raise _Unsupported("shap's TreeExplainer does not follow its native categorical splits")
        if catboost:
            # the matrix as the model read it: _dense turns text categories that read as numbers into floats
            # (datasets::attenu's station, '117'), and CatBoost refused floats for its categorical columns
            values, base = _catboost_shap(est, Z if not hasattr(Z, "toarray") else Zd)
        else:
            try:
                sv = shap.TreeExplainer(est)(Zd, check_additivity=False)
            except Exception as exc:  # shap raises bare Exceptions for trees it cannot read
                raise _Unsupported(f"{type(exc).__name__}: {str(exc)[:120]}") from None
            values, base = np.asarray(sv.values, dtype="float64"), np.asarray(sv.base_values, dtype="float64")
    elif family == "linear":
        bg = Zd if background is None else _dense(pre.transform(background) if pre is not None else background)
        sv = shap.LinearExplainer(est, shap.maskers.Independent(bg, max_samples=len(bg)))(Zd)
        values, base = np.asarray(sv.values, dtype="float64"), np.asarray(sv.base_values, dtype="float64")
    else:
        bg = Zd if background is None else _dense(pre.transform(background) if pre is not None else background)
        if len(bg) > AGNOSTIC_BACKGROUND:
            bg = bg[np.random.default_rng(seed).choice(len(bg), AGNOSTIC_BACKGROUND, replace=False)]

        def f(M: np.ndarray) -> np.ndarray:
            out = _raw_output(est, _like(M, Z), output, task)
            return out[:, 1] if task == "binary" and out.ndim == 2 else out

        values, base, _ = permutation_shap(f, Zd, bg, PERMUTATIONS, seed)
    if task == "binary":
        if values.ndim == 3:          # (n, features, 2): keep the positive class
            values = values[:, :, 1]
            base = base[:, 1] if base.ndim == 2 else base.reshape(-1)[-1]
        if raw.ndim == 2:
            raw = raw[:, 1]
    if task == "multiclass" and values.ndim == 2:
        raise _Unsupported("the explainer returned one output for a multiclass model")
    base = _broadcast_base(base, values)
    miss = float(np.max(np.abs(base + values.sum(axis=1) - raw))) if len(raw) else 0.0
    if miss > ADDITIVITY_TOL * max(1.0, float(np.max(np.abs(raw)))):
        raise _Unsupported(f"its values miss the model output by up to {miss:.3g}")
    classes = list(bundle.classes) if bundle.classes is not None else None
    predicted = None
    if values.ndim == 3:
        classes, predicted = _output_classes(bundle, inner, est, values.shape[2], X)
    what = f"{est_name} in a pipeline" if pre is not None else est_name
    if inner is not bundle.model:
        what += f" (inside {type(bundle.model).__name__})"
    return _Explanation(values=_fold(values, source, bundle.features), base=base, output_values=raw,
                        features=list(bundle.features), explainer=family, output=output, explained_model=what,
                        task=task, classes=classes, predicted=predicted, notes=notes)


def _decided(bundle, scores) -> np.ndarray:
    """Per row, the index into ``bundle.classes`` of the class the bundle decides (the most probable,
    or the cheapest under an uneven cost matrix): the class whose output an explanation shows."""
    at = {str(c): i for i, c in enumerate(bundle.classes)}
    return np.array([at[str(d)] for d in bundle.decide(np.asarray(scores))], dtype=int)


def _output_classes(bundle, inner, est, n_outputs: int, X) -> tuple[list, np.ndarray]:
    """The class of each explained output and, per row, the output of the decided class (the most
    probable one, or the cheapest under an uneven cost matrix: :meth:`ModelBundle.decide`).

    The explainer has one output per class the *model* knows (``classes_``: codes into
    ``bundle.classes`` when fitted by the bake-off, labels otherwise); a class absent from
    the training rows has no output, so the outputs are not always ``bundle.classes``.
    """
    scores = np.asarray(bundle.scores(X))
    labels = list(bundle.classes)
    top = _decided(bundle, scores)
    known = getattr(inner, "classes_", getattr(est, "classes_", None))
    if known is None or len(known) != n_outputs:
        return labels[:n_outputs], np.minimum(top, n_outputs - 1)
    known = np.asarray(known)
    if known.dtype.kind in "iub":
        cols = known.astype(int)
    else:
        pos = {str(c): i for i, c in enumerate(labels)}
        cols = np.array([pos.get(str(c), -1) for c in known])
    where = {int(c): j for j, c in enumerate(cols)}
    predicted = np.array([where.get(int(t), -1) for t in top])
    # a row whose top class the model never saw (only if every known class scores 0): its largest output
    missing = predicted < 0
    if missing.any():
        predicted[missing] = np.argmax(scores[missing][:, np.clip(cols, 0, None)], axis=1)
    return [labels[c] if 0 <= c < len(labels) else str(known[j]) for j, c in enumerate(cols)], predicted


def _like(M: np.ndarray, Z):
    """``M`` in the container type of the preprocessed matrix ``Z`` (a DataFrame keeps its columns)."""
    if isinstance(Z, pd.DataFrame):
        return pd.DataFrame(M, columns=Z.columns).astype(Z.dtypes.to_dict())
    return M


def _catboost_shap(est, Z) -> tuple[np.ndarray, np.ndarray]:
    """Exact tree SHAP from CatBoost itself (``ShapValues``, the algorithm shap's TreeExplainer calls
    for CatBoost), on the object matrix whose text columns are its categories: ``(values, base)``,
    values ``(n, features)`` or ``(n, features, classes)``."""
    from catboost import Pool

    sv = np.asarray(est.get_feature_importance(Pool(Z, cat_features=est.get_cat_feature_indices()),
                                               type="ShapValues"), dtype="float64")
    if sv.ndim == 3:  # multiclass: (n, classes, features + 1)
        return np.transpose(sv[:, :, :-1], (0, 2, 1)), sv[:, :, -1]
    return sv[:, :-1], sv[:, -1]


def _raw_output(est, Z, output: str, task: str) -> np.ndarray:
    """The model output the explainer explains, computed by the model itself."""
    if output == "probability":
        return np.asarray(est.predict_proba(Z), dtype="float64")
    if task in ("regression", "ranking"):  # a ranker's score is its prediction (a ranking's linear baseline is a Ridge)
        return np.asarray(est.predict(Z), dtype="float64")
    name = type(est).__name__
    if name.startswith("LGBM"):
        return np.asarray(est.predict(Z, raw_score=True), dtype="float64")
    if name.startswith("XGB"):
        return np.asarray(est.predict(Z, output_margin=True), dtype="float64")
    if name.startswith("CatBoost"):
        return np.asarray(est.predict(Z, prediction_type="RawFormulaVal"), dtype="float64")
    return np.asarray(est.decision_function(Z), dtype="float64")


def _broadcast_base(base: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The base value per row: ``(n,)``, or ``(n, k)`` for multi-output values."""
    n = values.shape[0]
    base = np.asarray(base, dtype="float64")
    if values.ndim == 3:
        return np.broadcast_to(base.reshape(-1, values.shape[2]), (n, values.shape[2])).copy()
    return np.broadcast_to(base.reshape(-1), (n,)).copy()


def _fold(values: np.ndarray, source: list[str], features: list[str]) -> np.ndarray:
    """Sum the columns of ``values`` that share a source column (axis 1)."""
    index = {f: i for i, f in enumerate(features)}
    M = np.zeros((len(source), len(features)))
    for j, s in enumerate(source):
        M[j, index[s]] = 1.0
    if values.ndim == 2:
        return values @ M
    return np.einsum("njk,jm->nmk", values, M)


# --------------------------------------------------------------------------- model-agnostic path
def _explain_agnostic(bundle, X, background, seed, notes) -> _Explanation:
    codec = _Codec(X if background is None else pd.concat([background, X], ignore_index=True), bundle.features)
    bg = X if background is None else background
    if len(bg) > AGNOSTIC_BACKGROUND:
        bg = bg.sample(n=AGNOSTIC_BACKGROUND, random_state=seed)
    task = bundle.task

    def f(codes: np.ndarray) -> np.ndarray:
        return np.asarray(bundle.scores(codec.decode(codes)), dtype="float64")

    values, base, raw = permutation_shap(f, codec.encode(X), codec.encode(bg), PERMUTATIONS, seed)
    predicted = _decided(bundle, raw) if task == "multiclass" else None
    output = {"binary": "probability", "multiclass": "probability", "regression": "prediction",
              "ranking": "score"}[task]
    return _Explanation(values=values, base=base, output_values=raw, features=list(bundle.features),
                        explainer="permutation", output=output,
                        explained_model=type(bundle.model).__name__ + (f" ({bundle.name})" if bundle.name else ""),
                        task=task, classes=list(bundle.classes) if bundle.classes is not None else None,
                        predicted=predicted, notes=notes)


def permutation_shap(f, X: np.ndarray, background: np.ndarray, permutations: int = 4, seed: int = 0,
                     max_batch: int = 200_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation SHAP values with an independent (interventional) background.

    For each sampled feature order (and its reverse: antithetic pairs), the
    features of a row are switched from background values to the row's own
    values one at a time; the change of the mean output is the feature's
    contribution. Every order adds up exactly, so ``base + values.sum(1) ==
    f(X)``. All rows of a chunk are evaluated in one call of ``f``, which
    keeps slow models (a SQL rule run by DuckDB) fast; this is the algorithm of
    :class:`shap.PermutationExplainer` without its per-row calls and its numba
    compilation (several seconds on every start of the CLI).

    Returns ``(values (n, m[, k]), base (n[, k]), output (n[, k]))``.
    """
    X = np.asarray(X, dtype="float64")
    B = np.asarray(background, dtype="float64")
    n, m = X.shape
    b = len(B)
    if (2 ** m) * b <= EXACT_EVALS:
        return exact_shap(f, X, B, max_batch=max_batch)
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(max(1, permutations // 2)):
        perm = rng.permutation(m)
        orders += [perm, perm[::-1]]
    chunk = max(1, max_batch // ((m + 1) * b))
    values = None
    out_last = None
    base = None
    for start in range(0, n, chunk):
        Xc = X[start:start + chunk]
        nc = len(Xc)
        acc = None
        for perm in orders:
            Z = np.broadcast_to(B, (nc, m + 1, b, m)).copy()
            for k, j in enumerate(perm, start=1):
                Z[:, k:, :, j] = Xc[:, None, None, j]
            out = f(Z.reshape(-1, m))
            out = out.reshape((nc, m + 1, b) + out.shape[1:]).mean(axis=2)   # (nc, m+1[, k])
            delta = np.diff(out, axis=1)                                        # (nc, m[, k])
            contrib = np.empty_like(delta)
            contrib[:, perm] = delta
            acc = contrib if acc is None else acc + contrib
        acc /= len(orders)
        values = acc if values is None else np.concatenate([values, acc])
        out_last = out[:, m] if out_last is None else np.concatenate([out_last, out[:, m]])
        base = out[:, 0] if base is None else np.concatenate([base, out[:, 0]])
    return values, base, out_last


def exact_shap(f, X: np.ndarray, background: np.ndarray, max_batch: int = 200_000
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Shapley values with an independent (interventional) background, over every coalition of columns.

    The value of a coalition ``S`` is the mean of ``f`` over the background rows with the columns of ``S`` set to
    the row's own; each column's value is the Shapley-weighted sum of its marginal gains (the algorithm of
    :class:`shap.ExactExplainer`). :func:`permutation_shap` calls it where ``2**m`` coalitions times the
    background rows fit :data:`EXACT_EVALS` per row: four sampled orders missed a HistGradientBoosting model's
    exact values on modeldata::credit_data by up to 0.13 log-odds of 0.75, and swapped two of a row's top three
    columns. Kept by hand for :func:`permutation_shap`'s reason: every row of a chunk in one call of ``f``, and
    no numba compilation on the CLI's start.
    Returns ``(values (n, m[, k]), base (n[, k]), output (n[, k]))``.
    """
    from math import comb

    X = np.asarray(X, dtype="float64")
    B = np.asarray(background, dtype="float64")
    n, m = X.shape
    b = len(B)
    codes = np.arange(2 ** m)
    masks = ((codes[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)          # (2^m, m)
    size = masks.sum(axis=1)
    # the Shapley weight of a coalition of size s that lacks the column: s! (m - s - 1)! / m!
    weight = np.array([1.0 / (m * comb(m - 1, int(s))) if s < m else 0.0 for s in size])
    chunk = max(1, max_batch // (len(codes) * b))
    values, base, output = [], [], []
    for start in range(0, n, chunk):
        Xc = X[start:start + chunk]
        nc = len(Xc)
        Z = np.where(masks[None, :, None, :], Xc[:, None, None, :], B[None, None, :, :])   # (nc, 2^m, b, m)
        v = f(Z.reshape(-1, m))
        v = v.reshape((nc, len(codes), b) + v.shape[1:]).mean(axis=2)                    # (nc, 2^m[, k])
        phi = np.zeros((nc, m) + v.shape[2:])
        for j in range(m):
            without = codes[~masks[:, j]]
            w = weight[without].reshape((1, -1) + (1,) * (v.ndim - 2))
            phi[:, j] = (w * (v[:, without | (1 << j)] - v[:, without])).sum(axis=1)
        values.append(phi)
        base.append(v[:, 0])
        output.append(v[:, -1])
    return np.concatenate(values), np.concatenate(base), np.concatenate(output)


class _Codec:
    """Encode a frame of mixed columns as floats (categories as codes) and back, for SHAP maskers."""

    def __init__(self, X: pd.DataFrame, features: list[str]):
        self.features = list(features)
        self.templates = {c: X[c] for c in self.features}
        self.categories: dict[str, list] = {}
        for c in self.features:
            if not _is_numeric(X[c]):
                self.categories[c] = list(pd.unique(X[c].dropna()))

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), len(self.features)))
        for j, c in enumerate(self.features):
            s = X[c]
            if c in self.categories:
                lookup = {v: i for i, v in enumerate(self.categories[c])}
                out[:, j] = [lookup.get(v, -1) if not _missing(v) else -1 for v in s]
            else:
                out[:, j] = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
        return out

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        cols = {}
        for j, c in enumerate(self.features):
            col = codes[:, j]
            if c in self.categories:
                cats = np.asarray(self.categories[c] + [None], dtype=object)
                idx = np.where(col < 0, len(cats) - 1, col.astype(int))
                cols[c] = pd.Series(cats[idx], dtype=object)
            else:
                cols[c] = pd.Series(col)
            cols[c] = _cast_like(cols[c], self.templates[c])
        return pd.DataFrame(cols)


# --------------------------------------------------------------------------- feature mapping
def feature_sources(pre, columns: list[str], n_out: int, X: pd.DataFrame | None = None) -> list[str]:
    """For each column the preprocessing ``pre`` outputs, the original column it derives from.

    Handles a :class:`~sklearn.compose.ColumnTransformer` (directly or as a
    step of a pipeline), steps that keep the number of columns, and steps
    whose ``get_feature_names_out`` names start with their source column
    (one-hot encoders). Raises ``_Unsupported`` when the mapping is unclear.
    """
    from sklearn.pipeline import Pipeline

    columns = list(columns)
    if pre is None:
        if n_out != len(columns):
            raise _Unsupported("the model sees other columns than the case's features")
        return columns
    steps = [s for _, s in pre.steps] if isinstance(pre, Pipeline) else [pre]
    current = columns
    frame = X
    for step in steps:
        if step is None or step == "passthrough":
            continue
        current = _step_sources(step, current, frame)
        if frame is not None:
            frame = None  # only the first step sees the original frame
    if len(current) != n_out:
        raise _Unsupported(f"mapped {len(current)} columns but the model sees {n_out}")
    return current


def _step_sources(step, current: list[str], X: pd.DataFrame | None) -> list[str]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(step, ColumnTransformer):
        names_in = list(getattr(step, "feature_names_in_", current))
        src_of = dict(zip(names_in, current, strict=True)) if len(names_in) == len(current) else {c: c for c in names_in}
        n_total = max((s.stop for s in step.output_indices_.values()), default=0)
        out: list[str | None] = [None] * n_total
        for name, trans, cols in step.transformers_:
            sl = step.output_indices_.get(name, slice(0, 0))
            width = sl.stop - sl.start
            if width == 0 or trans == "drop":
                continue
            in_cols = _resolve_columns(cols, names_in, X)
            mapped = _transformer_sources(trans, in_cols, width)
            for i, c in enumerate(mapped):
                out[sl.start + i] = src_of.get(c, c)
        if any(o is None for o in out):
            raise _Unsupported("the column transformer leaves outputs unaccounted for")
        return [str(o) for o in out]
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            if inner is not None and inner != "passthrough":
                current = _step_sources(inner, current, None)
        return current
    structural = _structural_sources(step, current)
    if structural is not None:
        return structural
    n_in = len(current)
    try:
        n_out = len(step.get_feature_names_out(_names_in(step)))
    except (AttributeError, ValueError, TypeError):
        n_out = None
    if n_out is None or n_out == n_in:
        return list(current)
    return _transformer_sources(step, current, n_out)


def _structural_sources(step, current: list[str]) -> list[str] | None:
    """The source of each output of the steps whose output layout is known, without reading names.

    Output names cannot always tell their source: robustbase::ambientNOxCH's ``missingindicator_zg``
    contains the column ``si`` (in "missing"), so zg's missing indicator was folded into si. A median imputer appends one indicator
    per column it saw missing (``indicator_.features_``); a spline basis is one block of columns per input;
    a one-hot encoder without input names is named from placeholders that no category can spell.
    """
    name = type(step).__name__
    if name == "SimpleImputer":
        kept = list(current)
        stats = getattr(step, "statistics_", None)
        if not getattr(step, "keep_empty_features", False) and stats is not None:
            kept = [c for c, v in zip(current, stats, strict=True) if not _missing(v)]
        indicator = getattr(step, "indicator_", None)
        extra = [current[int(i)] for i in indicator.features_] if indicator is not None else []
        return kept + extra
    if name == "SplineTransformer":
        n_out = int(getattr(step, "n_features_out_", 0))
        if not current or n_out % len(current):
            return None
        per = n_out // len(current)
        return [c for c in current for _ in range(per)]
    if name == "OneHotEncoder" and _names_in(step) is None:
        tokens = [f"\x1f{i}\x1f" for i in range(len(current))]
        try:
            names = [str(n) for n in step.get_feature_names_out(tokens)]
        except (AttributeError, ValueError, TypeError):
            return None
        out = []
        for n in names:
            hit = next((i for i, t in enumerate(tokens) if n.startswith(t)), None)
            if hit is None:
                return None
            out.append(current[hit])
        return out
    return None


def _names_in(step):
    names_in = getattr(step, "feature_names_in_", None)
    return list(names_in) if names_in is not None else None


def _resolve_columns(cols, names_in: list[str], X: pd.DataFrame | None) -> list[str]:
    if callable(cols):
        if X is None:
            raise _Unsupported("a column selector needs the original frame")
        cols = cols(X)
    if isinstance(cols, str):
        return [cols]
    if isinstance(cols, slice):
        return list(np.asarray(names_in)[cols])
    cols = list(cols)
    if cols and isinstance(cols[0], (bool, np.bool_)):
        return [n for n, keep in zip(names_in, cols, strict=True) if keep]
    if cols and isinstance(cols[0], (int, np.integer)):
        return [names_in[i] for i in cols]
    return [str(c) for c in cols]


def _transformer_sources(trans, in_cols: list[str], width: int) -> list[str]:
    if trans == "passthrough" or width == len(in_cols):
        if width != len(in_cols):
            raise _Unsupported("a passthrough block changed its width")
        return list(in_cols)
    if len(in_cols) == 1:
        return in_cols * width
    from sklearn.pipeline import Pipeline

    if isinstance(trans, Pipeline) or _structural_sources(trans, in_cols) is not None:
        mapped = _step_sources(trans, list(in_cols), None)
        if len(mapped) != width:
            raise _Unsupported(f"{type(trans).__name__} maps {len(mapped)} outputs for {width} columns")
        return mapped
    try:
        names = list(trans.get_feature_names_out(in_cols))
    except (AttributeError, ValueError, TypeError) as exc:
        raise _Unsupported(f"cannot name the outputs of {type(trans).__name__}") from exc
    if len(names) != width:
        raise _Unsupported(f"{type(trans).__name__} names {len(names)} outputs for {width} columns")
    by_length = sorted(in_cols, key=len, reverse=True)
    out = []
    for name in names:
        name = str(name).split("__", 1)[-1] if "__" in str(name) else str(name)
        hit = next((c for c in by_length if name == c or name.startswith(c + "_") or name.startswith(c)), None)
        if hit is None:
            hit = next((c for c in by_length if c in name), None)
        if hit is None:
            raise _Unsupported(f"cannot tell which column {name!r} comes from")
        out.append(hit)
    return out


# --------------------------------------------------------------------------- helpers
def _checked(bundle, X: pd.DataFrame) -> pd.DataFrame:
    """The rows typed by the model's record rules (as the server reads a request); a value they refuse (text in
    a numeric column) is a :class:`ModelError` naming the row and the column, not the imputer's error."""
    if not bundle.schema:
        return X
    from .serve.schema import RecordSpec

    clean, issues, _ok = RecordSpec(bundle.schema, bundle.features).validate_frame(X)
    bad = [i for i in issues if "required" not in i.message]   # a missing value is the model's to impute
    if bad:
        raise ModelError(f"explain: row {bad[0].record}, column '{bad[0].field}' {bad[0].message}",
                         "pass the values as the model's training data wrote them")
    typed = X.copy()
    for c in bundle.features:
        if pd.api.types.is_numeric_dtype(clean[c]) and not pd.api.types.is_numeric_dtype(X[c]):
            typed[c] = clean[c].reindex(X.index)
    return typed


def _features(bundle, X) -> pd.DataFrame:
    if isinstance(X, dict):   # one record, as /explain takes it
        X = pd.DataFrame([X])
    elif not isinstance(X, pd.DataFrame):
        try:
            X = pd.DataFrame(X)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"explain: the rows are not a table ({type(X).__name__}: {str(exc)[:80]})",
                             "pass a DataFrame, a list of records or one record as a dict") from None
    missing = [f for f in bundle.features if f not in X.columns]
    if missing:
        raise ModelError(f"explain: the rows lack the model's feature columns {', '.join(missing[:5])}",
                         "pass rows with every column the model was trained on")
    return X[bundle.features].reset_index(drop=True)


def _dense(Z) -> np.ndarray:
    if hasattr(Z, "toarray"):
        Z = Z.toarray()
    if isinstance(Z, pd.DataFrame):
        Z = Z.to_numpy()
    Z = np.asarray(Z)
    if Z.dtype == object:
        try:
            Z = Z.astype("float64")
        except (TypeError, ValueError):
            return Z
    return Z


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _cast_like(s: pd.Series, template: pd.Series) -> pd.Series:
    """``s`` in the dtype of ``template`` where that keeps the values (ints stay ints, bools bools)."""
    if pd.api.types.is_bool_dtype(template):
        return s.astype(bool) if not s.isna().any() else s.astype(object)
    if pd.api.types.is_numeric_dtype(template):
        num = pd.to_numeric(s, errors="coerce")
        if pd.api.types.is_integer_dtype(template) and not num.isna().any():
            return num.round().astype(template.dtype)
        return num.astype("float64")
    if pd.api.types.is_string_dtype(template) and not pd.api.types.is_object_dtype(template):
        return s.astype(template.dtype)
    return s.astype(object)


def _json_value(v):
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    return v
