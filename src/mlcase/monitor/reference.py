"""The training reference monitoring compares the served data with (stored in ``bundle.reference``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .estimate import cbpe

REFERENCE_VERSION = 1
N_BINS = 10            # quantile bins per numeric feature (PSI, JS)
N_GRID = 101           # quantile points per numeric feature (KS)
MAX_CATEGORIES = 200   # categories kept per categorical feature; the rest pool into "other"


def build_reference(dataset, bundle) -> dict:
    """The training reference monitoring compares the served data with (JSON-able).

    Parameters
    ----------
    dataset : mlcase.data.Dataset
        The prepared data; features are summarised on the training part, the
        model's scores and decisions on the validation part.
    bundle : mlcase.bundle.ModelBundle
        The fitted model (``scores``, ``decide``, ``threshold``, ``task``, ``classes``).

    Returns
    -------
    dict
        ``features`` (per feature: ``kind``; numeric: quantile bin ``edges``, bin
        ``shares``, a quantile ``grid`` and its ``cdf`` for KS; categorical:
        category ``shares`` and ``other_share``; both: ``missing_rate`` and the
        count ``n``), ``score`` (the served model's scores on rows it never
        saw, summarised like a numeric feature: the validation rows, or the
        test rows when it was refitted on the validation rows; ``score_rows``
        says which), ``decisions`` and ``predictions`` (shares on those rows),
        ``calibration`` (binary: how far the probabilities are from the
        outcomes of the same rows, which bounds how far the estimated
        performance can be trusted), ``n`` and ``n_valid``.
    """
    features = list(bundle.features or dataset.features)
    schema = bundle.schema or dataset.schema.to_dict()
    train = dataset.frame.iloc[dataset.split.train]
    kinds = feature_kinds(schema, features, train)
    feats = {}
    # a ranking's list key (ALS reads it): each list has its own, and new lists bring new ones by design
    # (Ecdat::incidents.byCountryYr, countries ranked by year: PSI 7.9 on 'iyear' was the only alert)
    list_key = (bundle.ranking or {}).get("group") if bundle.task == "ranking" else None
    for f in features:
        kind = kinds[f]
        if f == list_key:
            feats[f] = {"kind": "skipped", "reason": "the list key (data.group): new lists bring new values; not compared"}
        elif kind == "numeric":
            feats[f] = _numeric_reference(pd.to_numeric(train[f], errors="coerce").to_numpy("float64"))
        elif kind in ("categorical", "boolean"):
            feats[f] = _categorical_reference(_canon(train[f], kind == "boolean"), kind)
        else:
            feats[f] = {"kind": "skipped", "reason": f"{kind} column: not compared"}
        if list_key and list_key in train and feats[f]["kind"] != "skipped":
            # a column the same on every item of a list (the user's or the query's: AER::TravelMode's traveller
            # income) is one draw per list; tested over items, the 70 unchanged held-out travellers counted 280
            # draws and 'income' drifted (PSI 0.256, KS p 0.001). Its one-value-per-list reference is kept beside
            # the item one; the monitor uses it where the window's lists are constant in the column too
            per_list = _per_list_reference(train, list_key, f, kind)
            if per_list is not None:
                feats[f]["per_list"] = per_list
    ref: dict[str, Any] = {"version": REFERENCE_VERSION, "task": bundle.task, "n": int(len(train)),
                           "features": feats, "threshold": bundle.threshold,
                           "classes": [str(c) for c in bundle.classes] if bundle.classes is not None else None,
                           "positive": None if bundle.positive is None else str(bundle.positive),
                           "score": None, "decisions": {}, "predictions": {}, "calibration": None,
                           "n_valid": int(len(dataset.split.valid))}
    if bundle.task in ("binary", "multiclass") and bundle.classes is not None and len(dataset.split.train):
        # the training classes' shares: the constant fallback answers the most common (a numeric target's mean
        # told it for 0/1 only: AER::EquationCitations' volumes 52 to 265 were answered 1, no class at all)
        y = np.asarray(dataset.y_train)
        names = (np.where(y.astype(int) == 1, str(bundle.classes[1]), str(bundle.classes[0]))
                 if bundle.task == "binary" else y.astype(str))
        ref["label_shares"] = _shares(names)
    if len(dataset.split.valid) == 0:
        return ref
    from ..evaluate import valid_scores

    scores = valid_scores(bundle, dataset)  # out-of-fold when the model was refitted on these rows
    decided = bundle.decide(scores)
    # what the served model answers on rows it never saw: the score distribution the log is compared with.
    # A model refitted on train+valid scores its validation rows only through the out-of-fold models, which saw
    # fewer rows and were less sure: AER::CreditCard's lightgbm gave 0.0007 to 0.01 out of fold where the served
    # model gives 0.0003 to 0.0009, so every window of unchanged rows alarmed on score drift (PSI 3.0, KS p 1e-30).
    # Its test rows are unseen by it: the calibration the estimate before labels is judged by is read there too.
    served, served_decided = scores, decided
    ref["score_rows"] = "valid"
    if getattr(bundle, "oof_valid", None) is not None and len(dataset.split.test):
        from ..evaluate.common import features_of

        served = np.asarray(bundle.scores(features_of(dataset.rows("test"), bundle, dataset)))
        served_decided = bundle.decide(served)
        ref["score_rows"] = "test"
    if bundle.task == "binary":
        ref["score"] = _numeric_reference(served)
        served_flags = np.asarray(served_decided).astype(int)
        ref["decisions"] = _shares(np.where(served_flags == 1, "flag", "auto"))
        if bundle.classes is not None:
            ref["predictions"] = _shares(np.where(served_flags == 1, str(bundle.classes[1]), str(bundle.classes[0])))
        if ref["score_rows"] == "test":  # the served model's own probabilities against outcomes it never saw
            ref["calibration"] = _calibration(np.asarray(dataset.y_test, dtype=float), served, served_flags)
        else:
            flags = np.asarray(decided).astype(int)
            ref["calibration"] = _calibration(np.asarray(dataset.y_valid, dtype=float), scores, flags)
    elif bundle.task == "ranking":  # /rank logs 'shown' (in a list's top k) or 'below_k' per item
        # the served ranker's own scores: a LambdaRank model's scale is its own, and the out-of-fold models' scores
        # (AER::TravelMode's held-out travellers: median -0.47 out of fold, -1.23 served) raised a score-drift
        # alert on every window of unchanged lists (PSI 3.9, KS p 3e-13)
        ref["score"] = _numeric_reference(np.asarray(served, dtype=float))
        info = bundle.ranking or {}
        sizes = dataset.rows("valid").groupby(info.get("group") or dataset.frame.columns[0]).size().to_numpy()
        shown = float(np.minimum(sizes, int(info.get("k") or 10)).sum() / max(sizes.sum(), 1))
        ref["decisions"] = {"shown": shown, "below_k": 1.0 - shown} if shown < 1 else {"shown": 1.0}
    elif bundle.task == "multiclass":
        ref["score"] = _numeric_reference(np.max(served, axis=1))
        ref["decisions"] = {"auto": 1.0}
        ref["predictions"] = _shares(np.asarray(served_decided).astype(str))
    else:
        ref["score"] = _numeric_reference(np.asarray(served, dtype=float))
        ref["decisions"] = {"auto": 1.0}
    return ref


def feature_kinds(schema: dict | None, features: list[str], frame: pd.DataFrame | None = None) -> dict[str, str]:
    """``numeric``, ``categorical``, ``boolean`` or the schema kind of a column not compared (id, text, datetime)."""
    cols = {c["name"]: c for c in (schema or {}).get("columns", [])}
    out = {}
    for f in features:
        kind = cols.get(f, {}).get("kind")
        if kind is None and frame is not None and f in frame:
            s = frame[f]
            kind = "boolean" if pd.api.types.is_bool_dtype(s) else (
                "numeric" if pd.api.types.is_numeric_dtype(s) else "categorical")
        out[f] = kind or "categorical"
    return out


def _canon(s: pd.Series, boolean: bool) -> pd.Series:
    """Category values as the strings the log compares (booleans lower-case: JSON writes ``true``)."""
    out = s.astype("str").where(s.notna(), None)
    return out.str.lower() if boolean else out


def _per_list_reference(train: pd.DataFrame, key: str, f: str, kind: str) -> dict | None:
    """``f``'s reference on one value per list where ``f`` is constant (missing counted as a value) within every
    list of the training rows with at least two items; None otherwise."""
    keys = train[key]
    if keys.isna().any() or len(train) == 0:
        return None
    if kind == "numeric":
        values = pd.Series(pd.to_numeric(train[f], errors="coerce").to_numpy("float64"), index=train.index)
    else:
        values = _canon(train[f], kind == "boolean")
    sizes = keys.groupby(keys, sort=False).size()
    if (sizes < 2).all():
        return None
    grouped = values.groupby(keys, sort=False)
    if (grouped.nunique(dropna=False) > 1).any():
        return None
    first = values.loc[~keys.duplicated()]
    if kind == "numeric":
        return _numeric_reference(first.to_numpy("float64"))
    return _categorical_reference(first.reset_index(drop=True), kind)


def _numeric_reference(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype="float64")
    miss = np.isnan(values)
    v = np.sort(values[~miss])
    ref = {"kind": "numeric", "n": int(len(v)), "missing_rate": float(miss.mean()) if len(values) else 0.0}
    if len(v) == 0:
        return {**ref, "edges": [], "shares": [1.0], "grid": [], "cdf": []}
    edges = np.unique(np.quantile(v, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
    grid = np.unique(np.quantile(v, np.linspace(0, 1, N_GRID)))
    cdf = np.searchsorted(v, grid, side="right") / len(v)
    return {**ref, "edges": edges.tolist(), "shares": (counts / len(v)).tolist(), "grid": grid.tolist(),
            "cdf": cdf.tolist(), "mean": float(v.mean()), "std": float(v.std())}


def _categorical_reference(values: pd.Series, kind: str) -> dict:
    nonnull = values.dropna()
    counts = nonnull.value_counts()
    n = int(len(nonnull))
    kept = counts.iloc[:MAX_CATEGORIES]
    return {"kind": kind, "n": n, "missing_rate": float(values.isna().mean()) if len(values) else 0.0,
            "shares": {str(k): float(c / n) for k, c in kept.items()} if n else {},
            "other_share": float(counts.iloc[MAX_CATEGORIES:].sum() / n) if n else 0.0}


def _shares(values: np.ndarray) -> dict[str, float]:
    s = pd.Series(values).value_counts(normalize=True)
    return {str(k): float(v) for k, v in s.items()}


def _calibration(y: np.ndarray, p: np.ndarray, flags: np.ndarray) -> dict:
    """Expected calibration error and the estimated vs realized accuracy on the validation part."""
    from ..evaluate import expected_calibration_error

    ece = expected_calibration_error(y, p)  # the ECE evaluation reports (10 quantile bins)
    est = cbpe(p, flags)
    realized_acc = float(np.mean(flags == y))
    return {"n": int(len(p)), "mean_score": float(p.mean()), "positive_rate": float(y.mean()), "ece": float(ece),
            "estimated_accuracy": est["accuracy"]["value"], "realized_accuracy": realized_acc}
