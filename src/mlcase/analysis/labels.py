"""Label audit: rows whose given label looks wrong, and near-duplicates whose labels disagree.

- **Label issues** come from cleanlab (confident learning, Northcutt et al. 2021) on the
  bake-off's out-of-fold probabilities, so no row is judged by a model that saw its label:
  ``cleanlab.filter.find_label_issues`` (``prune_by_noise_rate``) says which rows, and
  ``cleanlab.rank.get_label_quality_scores`` (self-confidence) ranks them. Regression has no
  yes/no answer: ``cleanlab.regression.rank.get_label_quality_scores`` ranks the rows and the
  lowest ``analysis.label_audit_top`` are listed for review. That score grows with the square
  of the rows, so it is computed in random chunks (:data:`REGRESSION_CHUNK`).
- **What the flags say**: confident learning flags a row whose label the model finds unlikely,
  and a model that predicts the label weakly finds many labels unlikely. On carData::WVS (the
  country of 4,305 respondents from their answers) cleanlab flagged 39% of the rows, on
  fpp2::prisonLF 67%, and the report said that many "look mislabelled". The same count is now
  taken on labels drawn from the model's own out-of-fold probabilities (:data:`NULL_DRAWS`
  draws): labels right by construction, as uncertain as the model says. WVS: 1,668 flagged,
  about 1,582 on the draws. Only flags beyond that are worth a reviewer's suspicion, and even
  they may be the model's overconfidence rather than wrong labels: labels flipped at random are,
  to a model fitted on them, just more uncertainty (modeldata::credit_data with 0, 5 and 10% of
  its labels flipped, isotonic-calibrated gradient boosting: 598, 721 and 845 flagged against
  600, 746 and 877 on the draws), so no count of wrong labels is claimed
  (:func:`flagged_said`). On a known truth with the true probabilities (50,000 rows, 8 classes)
  the draws match: weak probabilities, 46.5% flagged and 46.5% on the draws; strong ones with
  10% of the labels flipped, 21.5% against 11.8%.
- **Near-duplicates with conflicting labels**: rows whose features are (nearly) the same but
  whose labels differ. The rule is cleanlab's (Datalab's ``near_duplicate`` check): two rows
  are near-duplicates when their distance is below 0.13 times the median distance of a row
  to its nearest neighbour, on standardised numeric and one-hot categorical features
  (scikit-learn's ``NearestNeighbors``). Datalab itself needs the ``cleanlab[datalab]``
  extra, which pulls in Hugging Face ``datasets`` and ``huggingface_hub`` (26 wheels here)
  for this one check, so the same rule is applied directly. Each such row is listed once, with
  its nearest conflicting near-duplicate (:func:`conflicting_partners`).

:func:`export_audit` writes the rows for a reviewer, in the style of ``mlcase review
export``: what the row is and why it is listed, the given and the suggested label, the
row's inputs as ``input.<column>``, and empty ``outcome``, ``reviewer``, ``reviewed_at``,
``note`` columns to fill in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

NEAR_DUPLICATE = 0.13      # cleanlab's NearDuplicateIssueManager default threshold
MAX_NEIGHBOUR_ROWS = 50_000
#: distinct feature vectors searched for a near (not equal) duplicate of each; within 0.13 of the
#: median nearest-neighbour distance there are seldom more than one or two
NEAR_NEIGHBOURS = 10
#: cleanlab's regression score (OUTRE) compares each row with its k = n/2 nearest rows, so its
#: time and memory grow with n^2: 10,000 rows took 11.4 s and 964 MB here, and the 43,152
#: out-of-fold rows of ggplot2::diamonds ran for minutes at 15 GB before they were stopped.
#: Rows are therefore scored in random chunks of this size (linear in n). On 6,000 diamonds
#: with 60 swapped prices, chunks of 2,000 ranked the rows as the whole did (Spearman 0.998,
#: 98 of the 100 lowest the same, the same 25 planted rows among them) in 1.3 s against 4.6 s.
REGRESSION_CHUNK = 2_000
AUDIT_FILE = "label_audit.csv"
NULL_DRAWS = 5             # label sets drawn from the model's own probabilities, to count what cleanlab flags anyway
NULL_MAX_ROWS = 200_000    # ... on at most this many rows


def label_issues(task: str, y_codes: np.ndarray, scores: np.ndarray, classes: list | None, top: int) -> dict:
    """cleanlab on out-of-fold scores: which rows look mislabelled, ranked (see the module).

    Parameters
    ----------
    y_codes : ndarray
        Binary: 0/1; multiclass: class codes into ``classes``; regression: the target.
    scores : ndarray
        Binary: P(positive); multiclass: probability columns; regression: predictions.
    """
    if task == "regression":
        from cleanlab.regression.rank import get_label_quality_scores

        y = np.asarray(y_codes, dtype=float)
        pred = np.asarray(scores, dtype=float)
        n = len(y)
        rng = np.random.default_rng(0)
        scored = rng.permutation(n)[:MAX_NEIGHBOUR_ROWS]  # past the cap, a random sample is ranked
        quality = np.full(n, np.nan)
        for idx in np.array_split(scored, max(1, int(np.ceil(len(scored) / REGRESSION_CHUNK)))):
            if len(idx) > 1:
                quality[idx] = get_label_quality_scores(y[idx], pred[idx])
        ok = np.flatnonzero(np.isfinite(quality))
        order = ok[np.argsort(quality[ok], kind="stable")][:top]
        method = "cleanlab.regression.rank.get_label_quality_scores"
        if n > REGRESSION_CHUNK:
            method += (f" (in random chunks of {REGRESSION_CHUNK:,} rows"
                       + (f"; {len(scored):,} of {n:,} rows sampled)" if len(scored) < n else ")"))
        return {"method": method, "flagged": None, "quality": quality, "ranked": order, "suggested": pred}
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = np.column_stack([1 - scores, scores]) if task == "binary" else np.asarray(scores, dtype=float)
    probs = np.clip(probs, 1e-9, None)
    probs = probs / probs.sum(axis=1, keepdims=True)
    labels = np.asarray(y_codes, dtype=int)
    # n_jobs=1: cleanlab's default starts a process pool per call (six calls per audit), and on one process the
    # flags are the same and come sooner at every size the audit reads (2 cores: 0.004 s against 0.21 s at 1,000
    # binary rows, 0.14 s against 0.36 s at 50,000, 0.74 s against 1.04 s at its 200,000-row cap; 7 classes on
    # 20,000 rows 0.12 s against 0.33 s)
    flagged = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    ranked = np.flatnonzero(flagged)
    ranked = ranked[np.argsort(quality[ranked], kind="stable")]
    # labels drawn from the model's own probabilities are right by construction: what cleanlab flags among them
    # is what the model's uncertainty alone makes it flag
    # (past NULL_MAX_ROWS rows, on a random sample of them, the counts scaled up: a draw of 1,000,000 binary
    # labels took cleanlab 1.1 s here)
    rng = np.random.default_rng(0)
    sample = probs if len(probs) <= NULL_MAX_ROWS else probs[rng.choice(len(probs), NULL_MAX_ROWS, replace=False)]
    cum = np.cumsum(sample, axis=1)
    null = []
    for _ in range(NULL_DRAWS):
        drawn = np.minimum((cum < rng.random(len(sample))[:, None]).sum(axis=1), probs.shape[1] - 1)   # rows sum to 1
        if len(np.unique(drawn)) == probs.shape[1]:   # a draw that misses a class is no labelling of this data
            null.append(np.sum(find_label_issues(drawn, sample, filter_by="prune_by_noise_rate", n_jobs=1)) * len(probs)
                        / len(sample))
    return {"method": "cleanlab.filter.find_label_issues (prune_by_noise_rate)", "flagged": flagged,
            "quality": quality, "ranked": ranked, "suggested": np.argmax(probs, axis=1),
            "flagged_if_right": float(np.mean(null)) if null else None,
            "flagged_if_right_sd": float(np.std(null, ddof=1)) if len(null) > 1 else 0.0}


def near_duplicates(X: pd.DataFrame, y: np.ndarray, task: str, seed: int = 0) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j`` (positions in ``X``), of each row and its nearest conflicting near-duplicate.

    See :func:`conflicting_partners`; a pair is listed once even when both rows point at each other.
    """
    return _pairs(conflicting_partners(X, y, task, seed))


def _pairs(partner: dict[int, int]) -> list[tuple[int, int]]:
    return sorted({(min(i, j), max(i, j)) for i, j in partner.items()})


def conflicting_partners(X: pd.DataFrame, y: np.ndarray, task: str, seed: int = 0) -> dict[int, int]:
    """Each row that has a near-duplicate with a conflicting label, and its nearest such row.

    Classification: the labels differ. Regression: they differ by more than the target's
    interquartile range (values that close are a matter of noise, not of a wrong label).

    One partner per row, as cleanlab's Datalab reports near-duplicates per row: listing every
    conflicting pair is quadratic where rows repeat. openintro::military (1.4 million rows of
    six coded columns) has a median nearest-neighbour distance of 0, and its 50,000 sampled
    rows gave 5,695,896 pairs, an 11.4-million-row, 1.1 GB ``label_audit.csv`` and 238 s.
    Exact duplicates are therefore grouped first (a row's conflicting twin is at distance 0, so
    it is the nearest); only the distinct feature vectors are searched for near ones, through
    their :data:`NEAR_NEIGHBOURS` nearest neighbours.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(X)
    if n < 3:
        return {}
    keep = np.arange(n)
    if n > MAX_NEIGHBOUR_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(n, MAX_NEIGHBOUR_ROWS, replace=False))
    Z = _encode(X.iloc[keep])
    if Z.shape[1] == 0:
        return {}
    yk = np.asarray(y)[keep]
    if task == "regression":
        yk = yk.astype(float)
        q1, q3 = np.quantile(yk, [0.25, 0.75])
        spread = max(float(q3 - q1), 1e-12)
    dist, _ = NearestNeighbors(n_neighbors=2).fit(Z).kneighbors(Z)
    radius = NEAR_DUPLICATE * float(np.median(dist[:, 1]))
    # distinct feature vectors by a hash of each row (np.unique(axis=0) sorts a copy of the whole matrix)
    inv, first = _row_codes(Z)
    U = Z[first]
    members = pd.Series(np.arange(len(keep))).groupby(inv).agg(list).to_dict()  # distinct vector -> its rows

    def conflict(i: int, rows: list[int]) -> int | None:
        """The first of ``rows`` whose label conflicts with row i's, if any."""
        for j in rows:
            if j != i and ((abs(yk[i] - yk[j]) > spread) if task == "regression" else yk[i] != yk[j]):
                return j
        return None

    partner: dict[int, int] = {}
    for rows in members.values():  # exact duplicates: any conflicting twin is at distance 0
        if len(rows) < 2:
            continue
        if task == "regression":
            lo, hi = min(rows, key=lambda r: yk[r]), max(rows, key=lambda r: yk[r])
            if yk[hi] - yk[lo] <= spread:
                continue
            for i in rows:
                j = hi if yk[hi] - yk[i] >= yk[i] - yk[lo] else lo
                if abs(yk[i] - yk[j]) > spread:
                    partner[i] = j
        else:
            first_of = {}
            for r in rows:
                first_of.setdefault(yk[r], r)
            if len(first_of) < 2:
                continue
            for i in rows:
                partner[i] = next(r for lab, r in first_of.items() if lab != yk[i])
    if radius > 0 and len(U) > 1:  # near, not equal: the distinct vectors' nearest neighbours within the radius
        k = min(NEAR_NEIGHBOURS + 1, len(U))
        d_u, n_u = NearestNeighbors(n_neighbors=k).fit(U).kneighbors(U)
        for u in np.flatnonzero((d_u[:, 1:] <= radius).any(axis=1)):
            near = n_u[u, 1:][(d_u[u, 1:] > 0) & (d_u[u, 1:] <= radius)]
            for i in members[u]:
                if i in partner:
                    continue
                for v in near:
                    j = conflict(i, members[v])
                    if j is not None:
                        partner[i] = j
                        break
    return {int(keep[i]): int(keep[j]) for i, j in partner.items()}


def _row_codes(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(code of each row, first row of each code)``: equal rows share a code (pandas' 64-bit row hash)."""
    hashes = pd.util.hash_pandas_object(pd.DataFrame(Z), index=False).to_numpy()
    codes, distinct = pd.factorize(hashes)
    first = np.full(len(distinct), len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return codes, first


def _encode(X: pd.DataFrame) -> np.ndarray:
    """Standardised numbers (missing: the median, plus an indicator) and one-hot categories (scaled by 1/sqrt 2)."""
    parts = []
    for col in X.columns:
        s = X[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            miss = np.isnan(v)
            med = np.nanmedian(v) if (~miss).any() else 0.0
            v = np.where(miss, med, v)
            sd = v.std()
            parts.append(((v - v.mean()) / sd if sd > 0 else v * 0)[:, None])
            if miss.any():
                parts.append(miss[:, None].astype(float))
        elif pd.api.types.is_datetime64_any_dtype(s):
            v = s.astype("int64").to_numpy(dtype=float)
            sd = v.std()
            parts.append(((v - v.mean()) / sd if sd > 0 else v * 0)[:, None])
        else:
            codes = pd.Categorical(s.astype("string").fillna("(missing)"))
            if len(codes.categories) > 200:
                continue  # an identifier-like column says nothing about similarity
            parts.append(np.eye(len(codes.categories))[codes.codes] / np.sqrt(2))
    return np.hstack(parts) if parts else np.zeros((len(X), 0))


def audit(task: str, frame: pd.DataFrame, features: list[str], y_labels: np.ndarray, y_codes: np.ndarray,
          scores: np.ndarray, classes: list | None, ids: np.ndarray, top: int, seed: int) -> tuple[dict, pd.DataFrame]:
    """The label audit of the out-of-fold rows: a summary for the report and the rows for the reviewer."""
    found = label_issues(task, y_codes, scores, classes, top)
    partner = conflicting_partners(frame[features], y_labels, task, seed)
    quality = found["quality"]
    # a binary target is coded 0/1 (the positive class 1): a reviewer reads its values ('good'/'bad' in
    # modeldata::credit_data, whose audit read "given 1, suggested 0"), as a multiclass audit always did
    names = list(classes) if task == "binary" and classes is not None and len(classes) == 2 else None
    label_of = (lambda k: classes[int(k)]) if task == "multiclass" else (
        (lambda k: _plain(names[int(k)]) if names else int(k)) if task == "binary" else (lambda v: float(v)))

    def given(i: int):
        return _plain(names[int(y_codes[i])]) if names else _plain(y_labels[i])

    rows = []
    for i in found["ranked"]:
        prob_given = (scores[i] if y_codes[i] == 1 else 1 - scores[i]) if task == "binary" else (
            scores[i, int(y_codes[i])] if task == "multiclass" else None)
        rows.append({"row": ids[i], "why": "label_issue", "given_label": given(i),
                     "suggested_label": label_of(found["suggested"][i]), "label_quality": float(quality[i]),
                     "score_of_given": None if prob_given is None else float(prob_given), "duplicate_of": None})
    for a, b in sorted(partner.items()):
        rows.append({"row": ids[a], "why": "conflicting_duplicate", "given_label": given(a),
                     "suggested_label": None, "label_quality": float(quality[a]), "score_of_given": None,
                     "duplicate_of": ids[b]})
    table = pd.DataFrame(rows, columns=["row", "why", "given_label", "suggested_label", "label_quality",
                                        "score_of_given", "duplicate_of"])
    n_flagged = int(np.sum(found["flagged"])) if found["flagged"] is not None else None
    summary = {"method": found["method"], "n_rows": int(len(y_codes)), "n_flagged": n_flagged,
               "flagged_share": (n_flagged / len(y_codes)) if n_flagged is not None and len(y_codes) else None,
               **({"n_flagged_if_right": found["flagged_if_right"], "n_flagged_if_right_sd":
                   found["flagged_if_right_sd"], "null_draws": NULL_DRAWS,
                   "n_flagged_excess": flagged_excess(n_flagged, found["flagged_if_right"],
                                                      found["flagged_if_right_sd"])}
                  if n_flagged is not None and found["flagged_if_right"] is not None else {}),
               "n_conflicting_pairs": len(_pairs(partner)),
               "n_conflicting_rows": len(partner), "near_duplicate_rule": f"distance < {NEAR_DUPLICATE} x median "
               "nearest-neighbour distance (cleanlab's rule)",
               "n_listed": int(min(top, len(found["ranked"]))), "top": table.head(top).to_dict(orient="records")}
    return summary, table


def export_audit(table: pd.DataFrame, frame: pd.DataFrame, ids: np.ndarray, features: list[str], path: Path) -> Path:
    """Write the audit rows for a reviewer (CSV), with the row's inputs and empty review columns."""
    from ..review import INPUT_PREFIX, REVIEW_COLUMNS, _write

    pos = {v: k for k, v in enumerate(ids)}
    picked = frame.iloc[[pos[r] for r in table["row"]]][features].reset_index(drop=True)
    # the columns joined at once: one insert per column warned "DataFrame is highly fragmented" on the user's
    # terminal for a table of more than 100 features (medicaldata::opt, 170)
    added = {**{INPUT_PREFIX + col: picked[col].to_numpy() for col in features},
             **{col: [None] * len(table) for col in REVIEW_COLUMNS}}
    kept = table.drop(columns=[c for c in added if c in table.columns])
    out = pd.concat([kept, pd.DataFrame(added, index=table.index)], axis=1)
    _write(out, Path(path))
    return Path(path)


def flagged_excess(flagged: int, if_right: float, sd: float) -> int:
    """Rows flagged beyond what labels drawn from the model's probabilities get, where that is past their noise
    (3 sd of the draws' count, at least 3 sqrt of it), else 0."""
    excess = flagged - if_right
    return int(round(excess)) if excess > 3 * max(sd, np.sqrt(max(if_right, 1.0))) else 0


def flagged_said(summary: dict) -> str:
    """What the label audit's flags say, in words, against what the model's uncertainty alone gets flagged."""
    n, flagged = summary.get("n_rows") or 0, summary.get("n_flagged")
    if flagged is None:
        listed = summary.get("n_listed", len(summary.get("top") or []))
        return f"the {listed:,} rows of {n:,} whose label fits least are listed"
    if summary.get("n_flagged_if_right") is None:   # an audit from before the draws were counted
        return f"cleanlab flags {flagged:,} of {n:,} rows"
    if_right, excess = summary["n_flagged_if_right"], summary.get("n_flagged_excess") or 0
    drawn = (f"labels drawn from the model's own out-of-fold probabilities (about {if_right:,.0f}, right by "
             "construction)")
    if excess <= 0:
        return (f"cleanlab flags {flagged:,} of {n:,} rows, no more than it flags on {drawn}: the model's "
                "uncertainty explains the flags, so the list is of the rows it finds hardest, not evidence of wrong "
                "labels")
    return (f"cleanlab flags {flagged:,} of {n:,} rows, {excess:,} ({100 * excess / max(n, 1):.2g}%) more than on "
            f"{drawn}: some labels may be wrong, or the model is surer than it should be; the list starts with the "
            "labels it finds least likely")


def conflicts_said(summary: dict) -> str:
    """The audit's near-duplicates in words (an audit from before the rows were counted says pairs)."""
    rows = summary.get("n_conflicting_rows")
    if rows is None:
        return f"{summary.get('n_conflicting_pairs')} conflicting near-duplicate pairs"
    return f"{rows:,} row{'' if rows == 1 else 's'} with a near-duplicate of another label"


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
