"""Slices and fairness: a model's metrics and money per group of each slice and sensitive column
(fairlearn's MetricFrame), with CIs (Wilson's for a rate, the bootstrap for costs and errors), gaps
between groups (Newcombe's interval for two rates) and fairlearn's parity differences, and groups
or rates too small to judge marked as such. The evaluation slices the candidate and the best
baseline, each by its own decisions (:func:`slices_of` finds a model's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..case import Case
from ..formats import number
from .lift import bootstrap_means

SLICE_BOOTSTRAP = 200


def _slice_values(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and s.nunique() > 10:
        codes, edges = pd.qcut(s, 4, labels=False, retbins=True, duplicates="drop")
        labels = [f"{_edge(edges[i])} to {_edge(edges[i + 1])}" for i in range(len(edges) - 1)]
        named = pd.Series([labels[int(c)] if c == c else "(missing)" for c in codes], index=s.index)
        return named.astype(str)
    return s.astype(str).where(s.notna(), "(missing)")


def _one_per_row(s: pd.Series) -> str | None:
    """Why a text column cannot be judged by group (about one value per row, like an identifier), or None.

    Stat2Data::Titanic with a ticket number under ``sensitive`` ran as a fairness audit of 263 groups of one test row
    each, and the decision listed five of them as "fewer than 30 test rows". A column of personal data (an e-mail)
    may be listed under ``sensitive`` to keep it out of the features (``checks.personal``), so this is said in the
    results rather than refused. Numbers are cut into quartiles, so any numeric column groups.
    """
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return None
    filled, distinct = int(s.notna().sum()), int(s.nunique(dropna=True))
    if distinct > MAX_ID_LIKE_GROUPS and distinct > ID_LIKE_SHARE * filled:
        return (f"'{s.name}' has {distinct:,} different values in {filled:,} test rows, about one per row like an "
                "identifier: no group of it can be judged; to audit by it, map it to a few groups in data.source")
    return None


#: a text column under sensitive/slices with more values than this, and more than this share of its rows, is not grouped
MAX_ID_LIKE_GROUPS = 50
ID_LIKE_SHARE = 0.9


def _edge(v: float) -> str:
    return number(v, 4)


def _seed(seed: int, metric: int, group: int) -> int:
    """An independent seed per (metric, group) of one evaluation seed."""
    return int(np.random.SeedSequence([abs(int(seed)), metric, group]).generate_state(1)[0])


def _group_boot(num: np.ndarray, den: np.ndarray | None, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap samples of sum(num)/sum(den) (or mean(num)) resampling the group's rows (NaN: empty denominator)."""
    if den is None:
        return bootstrap_means([num], n_boot, seed)[:, 0]
    m = bootstrap_means([num, den], n_boot, seed)  # same resampled rows: a ratio of means is a ratio of sums
    return np.where(m[:, 1] > 0, m[:, 0] / np.where(m[:, 1] > 0, m[:, 1], 1), np.nan)


def _quantiles(samples: np.ndarray) -> list[float]:
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return [float("nan"), float("nan")]
    return [float(v) for v in np.quantile(samples, [0.025, 0.975])]


def _slice_metric_defs(task: str):
    """name -> (numerator(y, pred, cost), denominator or None, fairlearn-style point function)."""
    if task == "binary":
        return {
            "selection_rate": (lambda y, f, c: f, None),
            "accuracy": (lambda y, f, c: (f == y).astype(float), None),
            "recall": (lambda y, f, c: (f * y).astype(float), lambda y, f, c: y.astype(float)),
            "false_positive_rate": (lambda y, f, c: (f * (1 - y)).astype(float), lambda y, f, c: (1 - y).astype(float)),
            "precision": (lambda y, f, c: (f * y).astype(float), lambda y, f, c: f.astype(float)),
            "cost_per_decision": (lambda y, f, c: c, None),
        }
    if task == "multiclass":
        return {"accuracy": (lambda y, f, c: (f == y).astype(float), None),
                "cost_per_decision": (lambda y, f, c: c, None)}
    return {"mae": (lambda y, f, c: np.abs(f - y), None),
            "mean_error": (lambda y, f, c: f - y, None),
            "cost_per_decision": (lambda y, f, c: c, None)}


GAP_METRICS = {"binary": ("accuracy", "recall", "false_positive_rate", "selection_rate"),
               "multiclass": ("accuracy",), "regression": ("mae",)}
#: metrics that are a share of rows (a count of 0/1 outcomes over a count): their CIs are score intervals, not the
#: bootstrap's percentiles, which collapse to a point at 0 or 1 (carData::TitanicSurvival: all 62 first-class test
#: passengers flagged, "95% CI 1.000 to 1.000") and cover 78% at 30 rows and a rate of 0.95
PROPORTIONS = {"binary": ("selection_rate", "accuracy", "recall", "false_positive_rate", "precision"),
               "multiclass": ("accuracy",), "regression": ()}


def slices_of(ev: dict, model: str | None) -> dict:
    """The slices of ``model`` in an evaluation's results: the candidate's, or the best baseline's where it is that
    (a USE_BASELINE champion); ``{}`` for another model."""
    for key in ("slices", "slices_baseline"):
        sl = ev.get(key) or {}
        # results stored before slices named their model are the candidate's
        if sl and (sl.get("model") or (ev.get("champion_candidate") if key == "slices" else None)) == model:
            return sl
    return {}


def slices(case: Case, task: str, rows: pd.DataFrame, y, pred, cost_cand, cost_base, seed: int) -> dict:
    """The model whose decisions are ``pred`` per group of every ``slices`` and ``sensitive`` column of the spec (see
    the module); ``cost_base`` (per-row costs of the best baseline, or None) gives each group's lift over it."""
    spec = case.spec
    ctx = {"task": task, "alert": spec.evaluation.slice_gap_alert, "min_n": spec.evaluation.min_slice_size,
           "n_boot": min(spec.evaluation.bootstrap, SLICE_BOOTSTRAP), "seed": seed,
           "defs": _slice_metric_defs(task), "cost_cand": np.asarray(cost_cand, dtype=float),
           "cost_base": None if cost_base is None else np.asarray(cost_base, dtype=float)}
    if task == "multiclass":
        ctx["y"], ctx["pred"] = np.asarray(y).astype(str), np.asarray(pred).astype(str)
    else:
        ctx["y"], ctx["pred"] = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    out: dict[str, Any] = {"columns": {}, "min_slice_size": ctx["min_n"], "gap_alert": ctx["alert"], "flags": []}
    for col in dict.fromkeys([*spec.slices, *spec.sensitive]):
        if col not in rows.columns:
            out["columns"][col] = {"error": f"column '{col}' is not in the data"}
            continue
        why = _one_per_row(rows[col].rename(col))
        if why:
            out["columns"][col] = {"error": why, "sensitive": col in spec.sensitive}
            continue
        info, flags = _column(ctx, col, _slice_values(rows[col]).to_numpy(), col in spec.sensitive)
        out["columns"][col] = info
        out["flags"].extend(flags)
    return out


def _point(name, num, den):
    def fn(y_true, y_pred, cost):
        yt, yp, cc = np.asarray(y_true), np.asarray(y_pred), np.asarray(cost, dtype=float)
        a = num(yt, yp, cc)
        if den is None:
            return float(np.mean(a)) if len(a) else float("nan")
        d = den(yt, yp, cc).sum()
        return float(a.sum() / d) if d > 0 else float("nan")
    fn.__name__ = name
    return fn


def _groups_table(ctx: dict, col: str, groups: np.ndarray) -> tuple[list[dict], dict]:
    """One entry per group (metrics from fairlearn's MetricFrame, bootstrap CIs) and the bootstrap samples."""
    from fairlearn.metrics import MetricFrame

    task, defs, min_n, yv, fv, cc_all = (ctx["task"], ctx["defs"], ctx["min_n"], ctx["y"], ctx["pred"],
                                         ctx["cost_cand"])
    metrics = {name: _point(name, num, den) for name, (num, den) in defs.items()}
    mf = MetricFrame(metrics=metrics, y_true=yv, y_pred=fv, sensitive_features=pd.Series(groups, name=col),
                     sample_params={name: {"cost": cc_all} for name in metrics})
    by_group = mf.by_group
    table, boot = [], {}
    for i, g in enumerate(by_group.index):
        m = groups == g
        n_g = int(m.sum())
        entry: dict[str, Any] = {"group": str(g), "n": n_g, "insufficient_evidence": n_g < min_n}
        if task == "binary":
            entry["positives"] = int(yv[m].sum())
        cc = cc_all[m]
        for j, (name, (num, den)) in enumerate(defs.items()):
            entry[name] = _clean(by_group.loc[g, name])
            d = None if den is None else np.asarray(den(yv[m], fv[m], cc), dtype=float)
            if d is not None:
                entry[f"{name}_n"] = int(d.sum())  # rows the rate is taken over (positives for recall)
            if n_g >= min_n:
                a = np.asarray(num(yv[m], fv[m], cc), dtype=float)
                if name in PROPORTIONS[task]:
                    from ..abtest.stats import wilson

                    k, of = float(a.sum()), float(n_g if d is None else d.sum())
                    boot[(str(g), name, "count")] = (k, of)
                    entry[f"{name}_ci"] = [float(v) for v in wilson(k, of)] if of > 0 else [float("nan")] * 2
                    continue
                # each group its own random stream: with one seed for all, groups of equal size drew the same row
                # positions, and on rows in file order (sorted by outcome or date) their resamples moved together
                # and a gap's CI came out far too narrow
                boot[(str(g), name)] = _group_boot(a, d, ctx["n_boot"], _seed(ctx["seed"], j, i))
                entry[f"{name}_ci"] = _quantiles(boot[(str(g), name)])
        if ctx["cost_base"] is not None:
            entry["baseline_cost_per_decision"] = float(np.mean(ctx["cost_base"][m]))
            entry["lift_per_decision"] = entry["baseline_cost_per_decision"] - float(np.mean(cc))
        table.append(entry)
    return table, boot


def _column(ctx: dict, col: str, groups: np.ndarray, sensitive: bool) -> tuple[dict, list[str]]:
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    task, min_n, alert, yv, fv = ctx["task"], ctx["min_n"], ctx["alert"], ctx["y"], ctx["pred"]
    table, boot = _groups_table(ctx, col, groups)
    ok = [e for e in table if not e["insufficient_evidence"]]
    overall_mae = float(np.mean(np.abs(fv - yv))) if task == "regression" else None
    gaps = _gaps(task, table, boot, GAP_METRICS[task], min_n, overall_mae)
    largest = max(gaps.items(), key=lambda kv: kv[1]["gap"]) if gaps else None
    info: dict[str, Any] = {"sensitive": sensitive, "groups": table, "gaps": gaps,
                            "insufficient": [e["group"] for e in table if e["insufficient_evidence"]]}
    flags = []
    if largest:
        info["largest_gap"] = {"metric": largest[0], **largest[1], "flagged": bool(largest[1]["gap"] > alert)}
        if largest[1]["gap"] > alert:
            lo_ci, hi_ci = largest[1]["ci"]
            # a regression gap is a share of the overall MAE: say so, or 0.232 reads as dollars (AER::CPSSW8)
            unit = f" times the overall MAE ({overall_mae:.4g})" if task == "regression" else ""
            # the alert is on the point estimate (as fairlearn's thresholds are); a CI down to zero or below says
            # the gap may be chance (openintro::evals by rank: 0.166, 95% CI -0.266 to 0.565)
            chance = ", which includes zero: the gap may be chance" if lo_ci <= 0 else ""
            flags.append(f"{col}: {largest[0]} differs by {largest[1]['gap']:.3f}{unit} between "
                         f"'{largest[1]['low_group']}' and '{largest[1]['high_group']}' "
                         f"(95% CI {lo_ci:.3f} to {hi_ci:.3f}{chance}; alert above {alert})")
    if sensitive and task == "binary":
        keep = np.isin(groups, [e["group"] for e in ok])
        if keep.any() and len(ok) >= 2:
            dp = float(demographic_parity_difference(yv[keep], fv[keep], sensitive_features=groups[keep]))
            eo = float(equalized_odds_difference(yv[keep], fv[keep], sensitive_features=groups[keep]))
            info["demographic_parity_difference"] = dp
            info["equalized_odds_difference"] = eo
            info.update(_parity_evidence(gaps, ok, min_n))
            flags += _parity_flags(col, info, alert, min_n)
    if sensitive and task == "multiclass" and len(ok) >= 2:
        info["per_class"], class_flags, notes = _per_class(ctx, col, groups, [e["group"] for e in ok])
        flags += class_flags
        if notes:
            info.setdefault("notes", []).extend(notes)
    return info, flags


def _gaps(task: str, table: list[dict], boot: dict, names, min_n: int, overall_mae: float | None) -> dict:
    """The gap of each metric in ``names`` between its lowest and highest group, with its CI."""
    gaps = {}
    for name in names:
        # a rate counts only where it rests on min_slice_size rows (recall: positives)
        vals = [(e[name], e["group"]) for e in table if not e["insufficient_evidence"]
                and e.get(name) is not None and e.get(f"{name}_n", e["n"]) >= min_n]
        if len(vals) >= 2:
            (lo_v, lo_g), (hi_v, hi_g) = min(vals), max(vals)
            scale = (1 / overall_mae if overall_mae else 0.0) if task == "regression" else 1.0
            if name in PROPORTIONS[task]:
                # two shares: Newcombe's hybrid score interval, which keeps its coverage near 0 and 1
                from ..abtest.stats import proportion_test

                (kh, nh), (kl, nl) = boot[(hi_g, name, "count")], boot[(lo_g, name, "count")]
                t = proportion_test(kl, nl, kh, nh, ci="newcombe")
                gap_ci = [float(t["ci_low"]), float(t["ci_high"])]
            else:
                # groups are resampled independently, so the gap's samples are differences of theirs
                gap_ci = _quantiles((boot[(hi_g, name)] - boot[(lo_g, name)]) * scale)
            gaps[name] = {"gap": float((hi_v - lo_v) * scale), "ci": gap_ci, "low_group": lo_g,
                          "high_group": hi_g, "relative_to_overall": task == "regression"}
    return gaps


#: the one-vs-rest rates of each class of a multiclass model, per group of a sensitive column
CLASS_METRICS = ("selection_rate", "recall", "false_positive_rate")


def _per_class(ctx: dict, col: str, groups: np.ndarray, ok: list[str]) -> tuple[dict, list[str], list[str]]:
    """Demographic parity and equalized odds per class of a multiclass model, one class against the rest.

    carData::WVS by country had accuracy and cost per group and nothing on who is predicted which class. For each
    class ``c`` the model's decisions are read as the binary "predicted c" against the truth "is c", and judged as a
    binary model's are (:func:`_column`): each group's share predicted ``c`` (fairlearn's ``selection_rate``), true
    and false positive rates, Wilson's interval per group and Newcombe's per gap; fairlearn's demographic parity and
    equalized odds differences over the groups of ``min_slice_size`` rows, and the equalized odds judged on the rates
    that rest on ``min_slice_size`` rows (a true positive rate on the class's own rows in the group).
    """
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    yv, fv, min_n, alert = ctx["y"], ctx["pred"], ctx["min_n"], ctx["alert"]
    binary = {"selection_rate": (lambda y, f, c: f, None),
              "recall": (lambda y, f, c: (f * y).astype(float), lambda y, f, c: y.astype(float)),
              "false_positive_rate": (lambda y, f, c: (f * (1 - y)).astype(float),
                                      lambda y, f, c: (1 - y).astype(float))}
    keep = np.isin(groups, ok)
    out, flags, notes = {}, [], []
    for c in sorted(set(yv) | set(fv)):
        yc, fc = (yv == c).astype(float), (fv == c).astype(float)
        sub = {**ctx, "task": "binary", "defs": binary, "y": yc, "pred": fc, "cost_base": None}
        table, boot = _groups_table(sub, col, groups)   # same groups and sizes, so the same ones are judged
        for e in table:
            e["class_rows"] = e.pop("positives")    # the group's test rows of class c (a true positive rate's)
        gaps = _gaps("binary", table, boot, CLASS_METRICS, min_n, None)
        info: dict[str, Any] = {"groups": table, "gaps": gaps}
        info["demographic_parity_difference"] = float(demographic_parity_difference(
            yc[keep], fc[keep], sensitive_features=groups[keep]))
        info["equalized_odds_difference"] = float(equalized_odds_difference(
            yc[keep], fc[keep], sensitive_features=groups[keep]))
        info.update(_parity_evidence(gaps, [e for e in table if e["group"] in ok], min_n))
        flags += _parity_flags(f"{col}, class '{c}'", info, alert, min_n, str(c))
        info["equalized_odds_difference"] = _clean(info["equalized_odds_difference"])
        notes += [f"class '{c}': {n}" for n in info.pop("notes", [])]
        out[str(c)] = info
    return out, flags, notes


def _parity_evidence(gaps: dict, ok: list[dict], min_n: int) -> dict:
    """The parity differences as judged: each on the rates that rest on ``min_n`` rows, with its CI.

    fairlearn's equalized odds difference is the larger of the spreads of the true and false positive rates over
    the groups of ``min_n`` rows, however few positives (or negatives) a rate is taken over: on carData::Arrests
    by sex it is 0.278, the recall of 7 women against 171 men, and it was raised as an alert with no interval.
    The judged value takes each rate only where it rests on ``min_n`` rows, as the gaps do, and its CI is that
    gap's; the rates left out are named.
    """
    out: dict[str, Any] = {}
    if "selection_rate" in gaps:
        out["demographic_parity_ci"] = gaps["selection_rate"]["ci"]
    parts = {m: gaps[m] for m in ("recall", "false_positive_rate") if m in gaps}
    if parts:
        metric, g = max(parts.items(), key=lambda kv: kv[1]["gap"])
        out["equalized_odds_judged"] = {"value": g["gap"], "ci": g["ci"], "metric": metric,
                                        "low_group": g["low_group"], "high_group": g["high_group"]}
    else:
        out["equalized_odds_judged"] = None
    out["equalized_odds_thin"] = [{"group": e["group"], "metric": m, "n": e[f"{m}_n"]}
                                  for e in ok for m in ("recall", "false_positive_rate")
                                  if e.get(f"{m}_n") is not None and e[f"{m}_n"] < min_n]
    return out


def _over(n: int, metric: str, of_class: str | None = None) -> str:
    if of_class is not None:   # one class against the rest: "16 positives" of class 'employed' were its own rows
        return (f"{n} row{'' if n == 1 else 's'} of class '{of_class}'" if metric == "recall"
                else f"{n} row{'' if n == 1 else 's'} of other classes")
    return f"{n} {('positive' if metric == 'recall' else 'negative')}{'' if n == 1 else 's'}"


def _parity_flags(col: str, info: dict, alert: float, min_n: int, of_class: str | None = None) -> list[str]:
    """Alerts on the parity differences as judged (see :func:`_parity_evidence`), with their CIs; a difference
    that is above the alert level only through a rate of too few rows is said as such, with no alert."""
    flags = []

    def ci_text(ci):
        chance = ", which includes zero: the gap may be chance" if ci[0] <= 0 else ""
        return f"95% CI {ci[0]:.3f} to {ci[1]:.3f}{chance}"

    dp, dp_ci = info["demographic_parity_difference"], info.get("demographic_parity_ci")
    if dp > alert:
        flags.append(f"{col}: demographic parity difference {dp:.3f} ("
                     + (f"{ci_text(dp_ci)}; " if dp_ci else "") + f"alert above {alert})")
    judged, thin = info.get("equalized_odds_judged"), info.get("equalized_odds_thin") or []
    # the thinnest three (Stat2Data::Titanic by age quartile listed eight)
    shown = sorted(thin, key=lambda t: t["n"])[:3]
    left_out = "; ".join(f"the {'recall' if t['metric'] == 'recall' else 'false positive rate'} of '{t['group']}' "
                         f"rests on {_over(t['n'], t['metric'], of_class)}" for t in shown)
    if len(thin) > len(shown):
        left_out += f"; {len(thin) - len(shown)} more under {min_n} rows"
    if judged and judged["value"] > alert:
        name = "true positive rates" if judged["metric"] == "recall" else "false positive rates"
        flags.append(f"{col}: equalized odds difference {judged['value']:.3f} on the {name} of "
                     f"'{judged['low_group']}' and '{judged['high_group']}' ({ci_text(judged['ci'])}; alert above "
                     f"{alert})" + (f"; fairlearn's {info['equalized_odds_difference']:.3f} also counts rates of too "
                                    f"few rows ({left_out})" if thin and info["equalized_odds_difference"] > judged["value"] + 1e-12 else ""))
    elif info["equalized_odds_difference"] > alert and thin:
        info.setdefault("notes", []).append(
            f"equalized odds difference {info['equalized_odds_difference']:.3f} (fairlearn) comes from rates of too "
            f"few rows ({left_out}): insufficient evidence, no verdict on it")
    return flags


def _clean(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return None if f != f else f


def per_class_rows(info: dict) -> list[dict]:
    """The card's and the report's table of a multiclass sensitive column's classes (see :func:`_per_class`): per
    class, each judged group's share predicted it, the demographic parity difference and the true positive rate gap,
    each with its 95% CI, and fairlearn's equalized odds difference (one class against the rest)."""

    def gap_text(g: dict | None, between: bool) -> str:
        if not g:
            return "too few rows of the class"
        lo, hi = g["ci"]
        return (f"{number(g['gap'], 4)}" + (f" (low {g['low_group']}, high {g['high_group']})" if between and g['gap'] > 0 else "")
                + f", 95% CI {number(lo, 4)} to {number(hi, 4)}")

    rows = []
    for c, k in (info.get("per_class") or {}).items():
        row: dict[str, Any] = {"class": c}
        for g in k.get("groups") or []:
            if not g.get("insufficient_evidence"):
                row[f"share predicted it: {g['group']}"] = number(g["selection_rate"], 4)
        row["demographic parity difference"] = gap_text(k["gaps"].get("selection_rate"), False)
        row["true positive rate gap"] = gap_text(k["gaps"].get("recall"), True)
        eo = k.get("equalized_odds_difference")
        row["equalized odds difference (fairlearn)"] = "–" if eo is None else number(eo, 4)
        rows.append(row)
    return rows
