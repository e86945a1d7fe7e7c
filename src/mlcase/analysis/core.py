"""The analysis stage: weak slices, learning curve, feature-group value and label audit, in one result.

:func:`analyze` runs after the evaluation (the pipeline calls it with what is in memory);
:func:`analyze_case` runs it later from what the run stored (``mlcase analyze``): the
bake-off's out-of-fold scores (``.mlcase/oof.parquet``), the validation scores the
evaluation used (``.mlcase/valid_scores.parquet``), the evaluation and bake-off results and
the registered candidate and baseline. Neither re-runs the bake-off; only the learning curve
and the feature groups refit the candidate's configuration, within
``analysis.time_share`` of the run's budget.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from .. import tasks as T
from ..bakeoff.core import OOF_FILE  # the bake-off writes it
from ..case import Case, as_case
from ..errors import NotFoundError, SpecError
from ..formats import p_value
from . import curve as curve_mod
from .groups import group_value, groups_of
from .labels import AUDIT_FILE, audit, export_audit
from .refits import Refits, recipe_of
from .slices import BASELINE, CANDIDATE, FLOOR, Part, find_weak_slices

VALID_FILE = "valid_scores.parquet"
#: the baseline's own gain from more labels is named where it is at least this share of the lift
NET_MATERIAL = 0.01


#: why a case of a task the row-level analysis does not cover has none (its losses are per list or per series)
NOT_APPLICABLE = {
    "ranking": "the analysis (weak slices, learning curve, feature-group value, label audit) works on rows, and a "
               "ranking case is judged by lists; it is not available for ranking cases yet",
    "forecast": "the analysis (weak slices, learning curve, feature-group value, label audit) works on rows, and a "
                "forecast case is judged by series and cut-offs; it is not available for forecast cases yet",
}


def not_applicable(case: Case) -> str | None:
    """Why the analysis does not apply to ``case`` (its task), or ``None`` when it does."""
    return NOT_APPLICABLE.get(case.spec.task)


def check_spec(case: Case, dataset) -> None:
    """``feature_groups`` names only feature columns, and ``costs.matrix`` only the target's classes (checked
    before any stage writes: a class the target lacks stopped the run at the bake-off, after the last run's
    results were cleared)."""
    if case.spec.task == "multiclass" and dataset.classes is not None:
        from ..tasks.multiclass import check_matrix

        check_matrix(case.spec.costs.matrix, dataset.classes)
    if case.spec.task != "forecast" and len(dataset.features):
        from ..candidates import column_groups

        groups = column_groups(dataset.frame[list(dataset.features)], dataset.schema.to_dict())
        if not (groups.numeric or groups.categorical or groups.datetime):
            # every feature left is an identifier or empty, which the models drop: nycflights13::planes ranked by
            # `tailnum` alone (one plane per value) stopped the bake-off with Ridge's "0 feature(s)", an internal
            # error, after the last run's results were cleared
            shown = ", ".join(f"'{c}' ({'empty' if dataset.frame[c].isna().all() else 'an identifier'})"
                              for c in groups.dropped[:5])
            raise SpecError(f"data.features: no feature a model can learn from; the models drop {shown}",
                            "include a column that describes the cases (not a key), or fewer data.features.exclude")
    for name, cols in (case.spec.feature_groups or {}).items():
        missing = [c for c in cols if c not in dataset.features]
        if missing:
            raise SpecError(f"feature_groups.{name}: '{missing[0]}' is not a feature column of the data",
                            f"use feature columns only ({', '.join(list(dataset.features)[:8])}...)")


# --------------------------------------------------------------------------- stored scores
def load_oof(case: Case) -> pd.DataFrame | None:
    path = case.work_dir / OOF_FILE
    return pd.read_parquet(path) if path.exists() else None


def oof_scores(table: pd.DataFrame | None, name: str, dataset, pool: np.ndarray) -> np.ndarray | None:
    """An entry's stored out-of-fold scores in pool order (NaN where unscored), or None."""
    if table is None:
        return None
    cols = [c for c in table.columns if c == name or c.startswith(f"{name}::")]
    if not cols:
        return None
    where = pd.Series(np.arange(len(pool)), index=pool)
    pos = where.reindex(table["row"].to_numpy()).to_numpy()
    ok = ~np.isnan(pos)
    width = len(cols) if cols[0] != name else 0
    out = np.full((len(pool), width) if width else len(pool), np.nan)
    vals = table[cols].to_numpy(dtype=float)
    out[pos[ok].astype(int)] = vals[ok] if width else vals[ok, 0]
    return out


def save_valid_scores(case: Case, dataset, bundles: dict[str, Any]) -> None:
    """The validation scores the evaluation used (out of fold, calibrated as evaluated), for ``mlcase analyze``."""
    from ..evaluate import valid_scores

    cols: dict[str, Any] = {"row": np.asarray(dataset.split.valid, dtype="int64")}
    for role, b in bundles.items():
        s = np.asarray(valid_scores(b, dataset), dtype=float)
        if s.ndim == 1:
            cols[role] = s
        else:
            for k in range(s.shape[1]):
                cols[f"{role}::{k}"] = s[:, k]
    path = case.work_dir / VALID_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(cols).to_parquet(path, index=False)


# --------------------------------------------------------------------------- per-row pieces
class _Rows:
    """Per-row costs and losses of the candidate, the best baseline and the floor on one part of the rows."""

    def __init__(self, case: Case, dataset, floor, idx: np.ndarray, scores: dict[str, np.ndarray],
                 rules: dict, const_scores):
        task_name = case.spec.task
        task = T.get_task(task_name)
        rows = dataset.frame.iloc[idx]
        y = dataset.y[idx]
        costs_obj = task.costs(case, rows, dataset.classes)
        self.costs, self.idx = {}, idx
        # binary: each role's flags (the floor's expected share per row), so a hybrid's flag rate can be held
        # against the review capacity
        self.flags: dict[str, np.ndarray] | None = {} if task_name == "binary" else None
        for role, s in scores.items():
            decided = _decide(task_name, s, rules.get(role), dataset, y, costs_obj, case)
            self.costs[role] = np.asarray(costs_obj.of(y, decided), dtype=float)
            if self.flags is not None:
                self.flags[role] = np.asarray(decided, dtype=float)
        self.costs[FLOOR] = floor.test_costs(costs_obj, y)[floor.best]
        if self.flags is not None:
            self.flags[FLOOR] = np.full(len(idx), float(floor.by_name(floor.best).params["rate"]))
        self.capacity = T.capacity_share(case) if task_name == "binary" else None
        self.loss = task.row_losses(y, scores[CANDIDATE], dataset.classes)[0]
        self.ref_loss = task.row_losses(y, const_scores(len(idx)), dataset.classes)[0]
        self.frame = rows
        self.groups = row_groups(case, rows)

    def part(self, columns: list[str]) -> Part:
        return Part(self.frame[columns], self.costs, self.loss, self.ref_loss, self.flags, self.capacity, self.groups)


def row_groups(case: Case, rows: pd.DataFrame) -> np.ndarray | None:
    """Each row's entity under a group split (``data.group``), which every interval of the analysis resamples whole,
    as the evaluation's do (:func:`mlcase.evaluate.core.test_groups`); None otherwise."""
    from ..evaluate.core import test_groups

    return test_groups(case, rows)


def _decide(task: str, s: np.ndarray, rule, dataset, y, costs_obj, case: Case):
    """The decisions of scores ``s`` under ``rule``: a threshold (binary) or a point map (regression);
    None on out-of-fold discovery rows, where the model's own rule is chosen on these rows."""
    if task == "binary":
        t, share = T.choose_cut(y, s, costs_obj, T.capacity_share(case))[:2] if rule is None else rule
        return T.binary_flags(s, t, share)
    if task == "multiclass":
        return T.decide_classes(s, dataset.classes, T.cost_matrix(case, dataset.classes))
    if rule is None:   # out-of-fold rows: the map is fitted here, at the floor the served models keep
        floor = T.target_floor(dataset.y_train, dataset.y_valid)
        return T.decide_point(s, None if floor is None else {"floor": floor}, y, costs_obj)
    # the model's own map (as evaluated and served), never one fitted on these rows' labels: a point without a slope
    # (the score itself was the cheapest prediction, or only a floor) had decide_point fit a map on the test labels,
    # so modeldata::Sacramento's candidate cost $46,542 a decision in the slices and hybrids against the $57,386 the
    # evaluation measured on the same test rows
    return T.decide_point(s, rule)


def _constant_scores(case: Case, dataset):
    """A model-free prediction (the training prior or mean) for the relative loss of the error criterion."""
    y = dataset.y_train
    if case.spec.task == "binary":
        p = float(np.mean(np.asarray(y, dtype=float)))
        return lambda n: np.full(n, p)
    if case.spec.task == "multiclass":
        shares = np.array([np.mean(np.asarray(y).astype(str) == str(c)) for c in dataset.classes])
        return lambda n: np.tile(shares, (n, 1))
    m = float(np.mean(np.asarray(y, dtype=float)))
    return lambda n: np.full(n, m)


def slice_columns(case: Case, dataset) -> list[str]:
    """The columns slices are cut on: the features and the spec's ``slices`` and ``sensitive`` columns."""
    cols = list(dict.fromkeys([*dataset.features, *case.spec.slices, *case.spec.sensitive]))
    frame = dataset.frame
    return [c for c in cols if c in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[c])
            and c != case.spec.data.id]


# --------------------------------------------------------------------------- the stage
def analyze(case: Case, dataset, bundles: dict, evaluation: dict, bakeoff: dict, *, explain: dict | None = None,
            budget_s: float | None = None, oof: pd.DataFrame | None = None) -> dict:
    """Weak slices, learning curve, feature-group value and label audit of the evaluated candidate.

    Parameters
    ----------
    case, dataset
    bundles : dict of str to ModelBundle
        At least the candidate and the best baseline of ``evaluation``, as evaluated
        (thresholds set; ``oof_valid`` where the bake-off refitted them).
    evaluation : dict
        :func:`mlcase.evaluate.evaluate` ``.to_dict()``.
    bakeoff : dict
        :class:`~mlcase.bakeoff.BakeoffResult` ``.to_dict()`` (its ``recipes``).
    explain : dict, optional
        The SHAP summary; orders the columns whose value is measured first.
    budget_s : float, optional
        The run's budget (default the spec's); the refits get ``analysis.time_share`` of it.
    oof : DataFrame, optional
        The bake-off's out-of-fold scores (default ``.mlcase/oof.parquet``).

    Returns
    -------
    dict
        ``slices``, ``learning_curve``, ``settle``, ``feature_groups``, ``labels``, ``reasons``
        (decision reasons by verdict, ``"any"`` for every verdict), ``seconds``.
    """
    from ..bakeoff.scoring import make_plan
    from ..evaluate.policies import model_free_policies

    t0 = time.monotonic()
    cfg = case.spec.analysis
    budget = float(budget_s if budget_s is not None else case.overrides.get("budget") or case.spec.budget)
    share_s = cfg.time_share * budget
    plan = make_plan(case, dataset)
    oof = load_oof(case) if oof is None else oof
    cand, base = evaluation["champion_candidate"], evaluation["best_baseline"]
    floor = model_free_policies(case, dataset)
    describe = {BASELINE: f"the best baseline ({base})", FLOOR: floor.by_name(floor.best).description}
    out: dict[str, Any] = {"candidate": cand, "baseline": base, "floor": floor.best, "describe": describe,
                           "time_share": cfg.time_share, "budget_s": budget, "refit_seconds_allowed": share_s}
    out["slices"] = weak_slices(case, dataset, plan, bundles, cand, base, floor, oof, describe)
    out.update(_refit_part(case, dataset, plan, evaluation, bakeoff, oof, floor, explain,
                           time.monotonic() + share_s, share_s, budget))
    out["labels"] = label_audit(case, dataset, plan, oof, cand)
    out["reasons"] = reasons(out, evaluation, case)
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def weak_slices(case: Case, dataset, plan, bundles: dict, cand: str, base: str, floor, oof, describe) -> dict:
    """The slice search: discovery on the train part's out-of-fold rows, hybrids on validation, verdicts on test."""
    from ..evaluate.common import features_of, valid_scores

    spec = case.spec
    const = _constant_scores(case, dataset)
    pool = plan.pool
    s_c, s_b = oof_scores(oof, cand, dataset, pool), oof_scores(oof, base, dataset, pool)
    n_train = len(dataset.split.train)
    note = None
    disc_idx = np.array([], dtype=int)
    if s_c is not None and s_b is not None:
        finite = np.isfinite(s_c.reshape(len(pool), -1)).all(axis=1) & np.isfinite(s_b.reshape(len(pool), -1)).all(axis=1)
        in_train = np.isin(pool, dataset.split.train)
        keep = np.flatnonzero(finite & in_train)
        disc_idx = keep
    roles = {CANDIDATE: bundles[cand], BASELINE: bundles[base]}
    v_idx, t_idx = np.asarray(dataset.split.valid), np.asarray(dataset.split.test)
    v_scores = {r: valid_scores(b, dataset) for r, b in roles.items()}
    t_scores = {r: b.scores(features_of(dataset.rows("test"), b, dataset)) for r, b in roles.items()}
    # the decision rule of each role: its threshold (binary), its point map (regression)
    regression = spec.task == "regression"
    # a model without a point map predicts its score (``{}``): ``None`` is the discovery rows' "fit the map here",
    # and a linear baseline without one (mlmRev::Exam by school) had its map fitted on the test labels, so it cost
    # $0.594 a decision in the slice 'intake = bottom 25%' against the $0.639 it costs there as served
    rules = {r: (b.point or {}) if regression else (b.threshold, b.tie_share) for r, b in roles.items()}
    valid = _Rows(case, dataset, floor, v_idx, v_scores,
                  {r: (b.point or {}) if regression else (b.valid_threshold, b.valid_tie_share) for r, b in roles.items()},
                  const)
    test = _Rows(case, dataset, floor, t_idx, t_scores, rules, const)
    if len(disc_idx) >= max(50, 2 * spec.evaluation.min_slice_size):
        disc = _Rows(case, dataset, floor, pool[disc_idx], {CANDIDATE: s_c[disc_idx], BASELINE: s_b[disc_idx]},
                     {}, const)
        where = f"the train part's {len(disc_idx):,} out-of-fold rows"
    else:
        disc = valid
        where = f"the {len(v_idx):,} validation rows"
        note = ("no out-of-fold scores of the train part were kept, so slices are found on the validation rows; "
                "their hybrids' validation numbers are then not independent of that choice")
    cols = slice_columns(case, dataset)
    found = find_weak_slices(disc.part(cols), valid.part(cols), test.part(cols), [BASELINE, FLOOR],
                             min_size=spec.evaluation.min_slice_size, bins=spec.analysis.bins,
                             max_slices=spec.analysis.max_slices, error_ratio=spec.analysis.error_ratio,
                             n_boot=min(spec.evaluation.bootstrap, 1000), seed=spec.split.seed, describe=describe)
    found.update(discovery=where, columns=cols, note=note, n_train=n_train)
    if found.get("resampled"):
        found["resampled"]["column"] = spec.data.group
    return found


def _baseline_refits(case: Case, dataset, plan, bakeoff: dict, name: str | None, b_oof, refits: Refits,
                     deadline: float) -> tuple | None:
    """The best baseline's own refits where it is a learned model (the linear baseline; not a constant or a
    rule), with its stored out-of-fold scores as its 100% point: ``(Refits, full, name)``, else None."""
    entry = next((e for e in bakeoff.get("leaderboard") or [] if e.get("name") == name
                  and e.get("kind") == "baseline"), None)
    if entry is None or entry.get("family") in (None, "constant", "rule") or entry.get("params") is None:
        return None
    rows = max(int(entry.get("rows_seen") or 0), 1)
    recipe = {"family": entry["family"], "params": dict(entry["params"]),
              "fit_s_per_row": float(entry.get("fit_cpu_s") or 0.0) / rows}
    b_refits = Refits(case, dataset, plan, recipe, deadline)
    full = None
    if b_oof is not None and np.isfinite(b_oof[refits.scored].reshape(len(refits.scored), -1)).all():
        full = {"scores": b_oof, "fit_rows": float(np.mean([len(f) for f, _ in plan.folds])), "truncated": False}
    return b_refits, full, name


def _refit_part(case: Case, dataset, plan, evaluation: dict, bakeoff: dict, oof, floor, explain, deadline: float,
                share_s: float, budget: float) -> dict:
    """Learning curve, what more labels would settle, and feature-group value (the parts that refit)."""
    cfg = case.spec.analysis
    name, recipe, rnote = recipe_of(bakeoff, evaluation["champion_candidate"])
    if recipe is None:
        why = (f"the candidate ({evaluation['champion_candidate']}) has no stored configuration to refit "
               "(a rule, or a bake-off from before mlcase stored them)")
        return {"learning_curve": {"skipped": why}, "feature_groups": {"skipped": why}, "settle": None}
    refits = Refits(case, dataset, plan, recipe, deadline)
    stored = oof_scores(oof, name, dataset, plan.pool)
    base_oof = None
    if stored is not None and np.isfinite(stored[refits.scored].reshape(len(refits.scored), -1)).all():
        base_oof = {"scores": stored, "fit_rows": float(np.mean([len(f) for f, _ in plan.folds])), "truncated": False}
    else:
        base_oof = refits.oof()
    y_scored = dataset.y[plan.pool][refits.scored]
    refs = {FLOOR: floor.test_costs(refits.costs, y_scored)[floor.best]}
    b_oof = oof_scores(oof, evaluation["best_baseline"], dataset, plan.pool)
    if b_oof is not None and np.isfinite(b_oof[refits.scored].reshape(len(refits.scored), -1)).all():
        refs[BASELINE] = refits.row_costs(b_oof)
    seed = case.spec.split.seed

    def time_note() -> str:
        b_refits = baseline[0] if baseline else None
        fits, seconds = refits.fits + (b_refits.fits if b_refits else 0), refits.seconds + (
            b_refits.seconds if b_refits else 0.0)
        return (f"refits get analysis.time_share {cfg.time_share:g} of the run's budget ({budget:g} s): "
                f"{share_s:.1f} s; they used {seconds:.1f} s in {fits} fold fits"
                + (f" ({b_refits.fits} of the best baseline's, for its own curve)" if b_refits and b_refits.fits
                   else "") + " (each fit is "
                "estimated from the bake-off's timed folds before it starts, and one that would not finish in "
                "time is skipped, never cut short)")

    baseline = _baseline_refits(case, dataset, plan, bakeoff, evaluation["best_baseline"], b_oof,
                                refits, deadline)
    curve = curve_mod.learning_curve(refits, cfg.fractions, base_oof, refs, seed, "", baseline=baseline)
    op = float((evaluation.get("operating_cost") or {}).get("per_decision") or 0.0)
    settle = curve_mod.settle(curve, evaluation, op + float(case.spec.constraints.min_lift))
    curve.pop("_boot_params", None)
    curve.pop("_band_q", None)
    curve["model"] = name
    if rnote:
        curve["note_model"] = rnote
    groups_info: dict[str, Any]
    if base_oof is None:
        groups_info = {"skipped": "the candidate's full refit did not fit in the time share"}
    else:
        order = [r["feature"] for r in (explain or {}).get("importance") or []]
        groups, named = groups_of(case, list(dataset.features), order)
        groups_info = group_value(refits, groups, refits.row_costs(base_oof["scores"]),
                                  refits.row_loss(base_oof["scores"]), min(case.spec.evaluation.bootstrap, 1000),
                                  seed, named)
    curve["time"] = time_note()
    groups_info["time"] = curve["time"]
    return {"learning_curve": curve, "settle": settle, "feature_groups": groups_info}


def label_audit(case: Case, dataset, plan, oof, cand: str) -> dict:
    """cleanlab on the candidate's out-of-fold scores; the rows to review go to ``<case>/label_audit.csv``."""
    cfg = case.spec.analysis
    scores = oof_scores(oof, cand, dataset, plan.pool)
    if scores is None:
        return {"skipped": "no out-of-fold scores of the candidate were kept by the bake-off"}
    ok = np.isfinite(scores.reshape(len(plan.pool), -1)).all(axis=1)
    rows = plan.pool[ok]
    s = scores[ok]
    task = case.spec.task
    y = dataset.y[rows]
    if task == "multiclass":
        codes = np.searchsorted(np.asarray(dataset.classes, dtype=object).astype(str), np.asarray(y).astype(str))
    else:
        codes = np.asarray(y, dtype=float if task == "regression" else int)
    if task != "regression" and len(np.unique(codes)) < 2:
        # mosaicData::Weather's `year` under a time split: the rows the time-ordered folds score out of fold are
        # all from 2017, and cleanlab raised "Labels must contain at least 2 classes" (an internal error)
        return {"skipped": f"the {len(rows):,} rows scored out of fold hold one class only (the folds' later rows "
                           "under a time split, or a rare class); a label audit needs two"}
    id_col = case.spec.data.id
    frame = dataset.frame
    keyed = bool(id_col and frame[id_col].is_unique)
    source = None if keyed else source_positions(case, dataset)
    ids = (frame[id_col].to_numpy()[rows] if keyed else rows if source is None else source[rows])
    ids = np.asarray([v.item() if isinstance(v, np.generic) else v for v in ids], dtype=object)
    sub = frame.iloc[rows].reset_index(drop=True)
    summary, table = audit(task, sub, list(dataset.features), y, codes, s, dataset.classes, ids,
                           cfg.label_audit_top, case.spec.split.seed)
    path = export_audit(table, sub, ids, list(dataset.features), case.root / AUDIT_FILE)
    summary.update(file=str(path), rows_in_file=int(len(table)), row_key=id_col if keyed else (
        "position in the data (0-based)" if source is not None else "position among the labelled rows (0-based)"))
    return summary


def source_positions(case: Case, dataset) -> np.ndarray | None:
    """Each labelled row's position in the data as read (0-based, what ``label_audit.csv``'s ``row`` names without
    ``data.id``); None where it cannot be told.

    The rows without a target are left out before any stage (:func:`mlcase.data.prepare`), so a labelled row's
    position there is not its place in the file: modeldata::credit_data with its first 20 targets empty listed, as
    "position in the data", rows whose inputs matched the file's row of that number for 8% of them.
    """
    n_missing = int((dataset.excluded or {}).get("missing_target") or 0)
    if not n_missing:
        return np.arange(len(dataset.frame))
    from ..data import load_frame

    target = case.spec.data.target
    try:
        labelled = load_frame(case)[target].notna().to_numpy()
    except (KeyError, ValueError):
        return None
    where = np.flatnonzero(labelled)
    return where if len(where) == len(dataset.frame) else None


# --------------------------------------------------------------------------- decision reasons
def reasons(result: dict, evaluation: dict, case: Case) -> dict[str, list[str]]:
    """Reasons the decision adds: a losing slice and its hybrid (any verdict); what more labels would settle."""
    from ..evaluate.common import money

    cur = case.spec.costs.currency

    def m(v) -> str:
        return money(v, cur, 3)

    out: dict[str, list[str]] = {"any": [], "INCONCLUSIVE": []}
    sl = result.get("slices") or {}
    describe = result.get("describe") or {}
    for e in sl.get("money") or []:
        if not e.get("loses_money"):
            continue
        ref = describe.get(e["reference"], e["reference"])
        t, hv, ht = e["test"], e["hybrid_valid"], e["hybrid_test"]
        # every row alike (wooldridge::k401ksubs: no candidate flag among 35 eligible participants) gives a CI of
        # one value and a p of 0, which read as "95% CI $0.400 to $0.400; Holm-adjusted p 0"
        same = t["ci_low"] == t["ci_high"]
        evidence = (f"the same on each of its {e['n_test']:,} test rows: no CI; one of {e['tried']} slices tried"
                    if same else f"95% CI {m(t['ci_low'])} to {m(t['ci_high'])}; Holm-adjusted p {p_value(e['p_holm'])} "
                    f"over {e['tried']} slices tried")
        groups = (f" of {e['n_test_groups']} {(sl.get('resampled') or {}).get('column') or 'group'} values"
                  if e.get("n_test_groups") is not None else "")
        line = (f"in the slice '{e['label']}' ({e['n_test']:,} test rows{groups}, {100 * e['share_of_test']:.3g}% of "
                f"decisions) the candidate loses {m(t['estimate'])} per decision against {ref} ({evidence})")
        if e.get("hybrid_over_capacity"):
            cap = (evaluation or {}).get("capacity") or T.capacity_share(case)
            rates = {"validation": e.get("hybrid_flag_rate_valid"), "test": e.get("hybrid_flag_rate")}
            on = e.get("hybrid_over_capacity_on") or ["test"]   # (an analysis from before the parts were kept)
            flags = " and ".join(f"{100 * (rates[p] or 0):.3g}% of the {p} rows" for p in on)
            out["any"].append(line + f"; the hybrid '{ref} in this slice, the candidate elsewhere' would flag "
                              f"{flags}, over the review capacity of {100 * cap:.3g}%, so it is no option: the "
                              "slice's cases compete for the same reviews")
            continue
        if hv.get("estimate") is not None and hv["estimate"] <= 0:
            # the slice was found on the test rows; the validation rows are the hybrid's independent check, and
            # there it lost (modeldata::credit_data at a capacity of 5%: -$3.527 a decision, CI -$9.390 to $0.491,
            # and still "consider the hybrid")
            out["any"].append(
                line + f"; the hybrid '{ref} in this slice, the candidate elsewhere' would not have saved on the "
                f"validation rows ({m(hv['estimate'])} per decision over the candidate alone, 95% CI "
                f"{m(hv['ci_low'])} to {m(hv['ci_high'])}), so the slice's loss may be the test rows' own: watch "
                "the slice after launch rather than change the policy")
            continue
        line += f": consider the hybrid '{ref} in this slice, the candidate elsewhere'"
        if hv.get("estimate") is not None:
            line += (f", which saves {m(hv['estimate'])} per decision over the candidate alone on the validation "
                     f"rows (95% CI {m(hv['ci_low'])} to {m(hv['ci_high'])})")
        if ht.get("estimate") is not None:
            line += f" and {m(ht['estimate'])} on the test rows (95% CI {m(ht['ci_low'])} to {m(ht['ci_high'])})"
        out["any"].append(line)
    st = result.get("settle")
    if st:
        # over a learned baseline the gain is net of the baseline's own, stated where it is material: MASS::biopsy's
        # read "from $0.086 to about $0.086 per decision, net of the $0.00000000000810 the baseline's own curve
        # gains with them", a difference of two fitted curves at the rounding of floats
        bg = st.get("baseline_gain") or 0.0
        scale = max(abs(st.get("lift_now") or 0.0), abs(st.get("expected_lift") or 0.0))
        net = (f", net of the {m(bg)} the baseline's own curve gains with them"
               if abs(bg) >= NET_MATERIAL * scale and m(bg) != m(0.0) else "")
        # a gain too small to show in money (survival::colon: "$0.057 to about $0.057") is said as no growth
        now, later = m(st["lift_now"]), m(st.get("expected_lift", st["lift_now"]))
        grow = (f"from {now} to about {later} per decision{net}" if later != now else
                f"it stays about {now} per decision{net}; only the test part grows")
        fixed = (" (assuming the best baseline gains nothing from more rows: its own curve did not fit)"
                 if st.get("baseline_assumed_fixed") else "")
        if st.get("uncertain"):
            lo, hi = st["gain_band"]
            short = (f": at its low end the lift would be {m(st['worst_lift'])}, short of the {m(st['needed_lift'])} "
                     "that would settle it" if st.get("worst_lift") is not None else "")
            out["INCONCLUSIVE"].append(
                f"the learning curve's best guess is that {st['multiple_at_estimate']:g}x today's labels would settle "
                f"the lift over {st['versus']} ({grow}), but its 95% band for that gain runs from {m(lo)} to "
                f"{m(hi)}{short}; too uncertain to promise a count{fixed}: add labels in steps and rerun "
                "`mlcase analyze`")
        elif st.get("multiple"):
            # no growth: then the larger test part alone settles the lift
            k = f"{st['multiple']:g}x today's labels"
            expect = (f"to grow from {now} to about {later} per decision with {k}{net}" if later != now else
                      f"to stay about {now} per decision{net}, so only a larger test part would settle it: {k}")
            out["INCONCLUSIVE"].append(
                f"the learning curve expects the lift over {st['versus']} {expect}: about "
                f"{st['more_labelled_rows']:,} more labelled rows "
                f"({st['labelled_rows']:,} in all) would likely settle it (95% CI above zero with 80% power on the "
                f"larger test part){fixed}")
        else:
            out["INCONCLUSIVE"].append(
                f"the learning curve does not expect even {st['max_multiple_tried']:g}x today's labels to settle the "
                f"lift over {st['versus']} ({m(st['lift_now'])} per decision now{net}): more labels are unlikely to "
                f"pay{fixed}")
    return out


# --------------------------------------------------------------------------- from a finished run
def analyze_case(case: Case, budget: float | str | None = None) -> dict:
    """Run the analysis of a case that has run, from what the run stored (see the module); saves and returns it."""
    from .. import results, tracking
    from ..bakeoff import parse_budget
    from ..data import prepare

    case = as_case(case)  # a case.yaml path too, as mlcase.run takes it
    why = not_applicable(case)
    if why:
        raise SpecError(f"mlcase analyze: {why}", f"read the report's {case.spec.task} sections instead")
    res = results.load_all(case)
    evaluation, bakeoff, registry = res.get("evaluation"), res.get("bakeoff"), res.get("registry") or {}
    if not evaluation or not bakeoff:
        raise NotFoundError(f"no evaluated run of case '{case.name}' in {case.work_dir}",
                            f"run `mlcase run {case.root}` first")
    if not (case.work_dir / OOF_FILE).exists() or not (case.work_dir / VALID_FILE).exists():
        raise NotFoundError(f"the run of case '{case.name}' kept no out-of-fold scores ({OOF_FILE}, {VALID_FILE})",
                            f"run `mlcase run {case.root}` again with this version of mlcase")
    dataset = prepare(case)
    if dataset.fingerprint != bakeoff.get("fingerprint"):
        raise NotFoundError("the case's data changed since its last run (the data fingerprint differs)",
                            f"run `mlcase run {case.root}` again, then `mlcase analyze`")
    cand, base = evaluation["champion_candidate"], evaluation["best_baseline"]
    versions = {cand: registry.get("candidate_version"), base: registry.get("baseline_version")}
    if registry.get("baseline") not in (None, base) or None in versions.values():
        raise NotFoundError(f"the registry holds no version of the evaluated candidate '{cand}' and baseline '{base}'",
                            f"run `mlcase run {case.root}` again")
    bundles = {name: tracking.load_bundle(case, alias=None, version=int(v)) for name, v in versions.items()}
    valid = pd.read_parquet(case.work_dir / VALID_FILE)
    for role, name in ((CANDIDATE, cand), (BASELINE, base)):
        bundles[name].oof_valid = oof_scores(valid, role, dataset, np.asarray(dataset.split.valid))
    seconds = parse_budget(budget) if budget is not None else None
    out = analyze(case, dataset, bundles, evaluation, bakeoff, explain=res.get("explain"), budget_s=seconds)
    results.save(case, "analysis", out)
    return out
