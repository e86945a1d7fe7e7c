"""Analysing an A/B test: trust checks first, then effects with honest intervals.

Order of work, as in *Trustworthy Online Controlled Experiments*:

1. assignment health: rows with a missing or default arm, units seen in two arms,
   duplicated units; bad input stops with an error naming the rows;
2. sample ratio mismatch (chi-square against the planned split; p < 0.001 marks
   the whole result untrustworthy);
3. per metric and treatment arm: means, absolute and relative difference with a
   95% CI and p-value. Proportions use the pooled z-test with Newcombe's
   interval; means use Welch's t unless a distribution check (skewness against
   the 355·g² rule) calls for a bootstrap CI, Mann-Whitney or a winsorized mean;
   CUPED adjusts with a pre-experiment covariate; Holm corrects for several arms;
4. guardrails (non-inferiority against a margin), segments (Benjamini-Hochberg,
   minimum size), peeking (before the planned end);
5. a verdict and a conclusion in plain words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..arguments import whole_number
from ..errors import DataError, MlcaseError
from ..formats import number, p_value, signed
from . import stats as st
from .frames import _MAX_LISTED, _Rows, numeric_metric, read_frame

SRM_THRESHOLD = 0.001
DEFAULT_VALUES = ("", "none", "null", "nan", "na", "n/a", "default", "unassigned", "-")
CONTROL_NAMES = ("control", "ctrl", "baseline", "a", "c", "0", "off", "old")
METHODS = ("auto", "welch", "bootstrap", "mann-whitney", "winsorized")


# --------------------------------------------------------------------------- result
@dataclass
class Analysis:
    """The analysis of one experiment; ``to_dict()`` is the ``--json`` output."""

    verdict: str                 # SHIP | DONT_SHIP | INCONCLUSIVE | UNTRUSTWORTHY
    trustworthy: bool
    conclusion: str
    control: str
    arms: list[str]
    planned_split: dict[str, float]
    srm: dict
    health: dict
    metrics: list[dict]          # one entry per metric and treatment arm
    guardrails: list[dict] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    preliminary: bool = False
    winner: str | None = None
    settings: dict = field(default_factory=dict)

    def comparison(self, metric: str, arm: str | None = None) -> dict:
        """The result row of ``metric`` (for ``arm``, default the first treatment)."""
        for row in self.metrics:
            if row["metric"] == metric and (arm is None or row["arm"] == arm):
                return row
        raise KeyError(f"no comparison for metric {metric!r} arm {arm!r}")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "verdict", "trustworthy", "preliminary", "winner", "conclusion", "warnings", "control", "arms",
            "planned_split", "srm", "health", "metrics", "guardrails", "segments", "settings")}


# --------------------------------------------------------------------------- input helpers
def _parse_split(split) -> tuple[list[str] | None, list[float] | None]:
    """Planned arm names (if the split names them) and shares."""
    if split is None:
        return None, None
    if isinstance(split, dict):
        names = [str(k) for k in split]
        from .assign import parse_split

        return names, parse_split([float(v) for v in split.values()])
    if isinstance(split, str) and "=" in split:
        pairs = [p.split("=", 1) for p in split.split(",") if p.strip()]
        try:
            d = {k.strip(): float(v.strip().rstrip("%")) for k, v in pairs}
        except ValueError:
            raise MlcaseError(f"--split {split!r}: expected name=share pairs like control=50,treatment=50",
                              "or pass plain shares in arm order, control first: 50/50") from None
        return _parse_split(d)
    from .assign import parse_split

    return None, parse_split(split)


def _guess_control(arms: list[str]) -> tuple[str, str | None]:
    lowered = {a.strip().lower(): a for a in arms}
    for name in CONTROL_NAMES:
        if name in lowered:
            return lowered[name], None
    first = sorted(arms)[0]
    return first, f"control taken as {first!r} (first in sorted order); pass --control to choose"


def parse_guardrail(spec: str, default_margin: str | float = "1%") -> dict:
    """``'latency<=+5%'``, ``'revenue>=-2%'``, ``'errors<=0.01'`` or a bare column (must not drop by the default margin).

    Returns ``metric``, ``bad`` ("decrease"|"increase"), ``margin`` (>= 0) and ``relative``.
    """
    m = re.match(r"^\s*(.+?)\s*(<=|>=)\s*([+-]?\d*\.?\d+(?:e[+-]?\d+)?)\s*(%?)\s*$", str(spec), re.I)
    if m:
        col, op, num, pct = m.groups()
        margin, relative = abs(float(num)) / (100 if pct else 1), bool(pct)
        bad = "increase" if op == "<=" else "decrease"
    else:
        if any(ch in str(spec) for ch in "<>="):
            raise MlcaseError(f"--guardrail {spec!r}: expected COL, 'COL>=-2%' (must not drop more than 2%) or "
                              "'COL<=+5%' (must not rise more than 5%)", "fix the guardrail expression")
        col, bad = str(spec).strip(), "decrease"
        if isinstance(default_margin, str):
            text = default_margin.strip()
            relative = text.endswith("%")
            try:
                margin = abs(float(text.rstrip("%"))) / (100 if relative else 1)
            except ValueError:
                raise MlcaseError(f"--guardrail-margin {default_margin!r}: expected a number or a percentage",
                                  "pass e.g. --guardrail-margin 1%") from None
        else:
            margin, relative = abs(float(default_margin)), False
    return {"metric": col, "bad": bad, "margin": margin, "relative": relative}


# --------------------------------------------------------------------------- one comparison
AGGREGATES = ("sum", "mean", "max", "first")
PROPORTION_CIS = ("newcombe", "wald")


def check_options(aggregate: str | None = None, proportion_ci: str = "newcombe") -> None:
    """Reject an unknown ``--aggregate`` or ``--proportion-ci`` before any work (even when it would go unused)."""
    if aggregate is not None and aggregate not in AGGREGATES:
        raise MlcaseError(f"--aggregate {aggregate!r} is not known", f"use one of {', '.join(AGGREGATES)}")
    if proportion_ci not in PROPORTION_CIS:
        raise MlcaseError(f"--proportion-ci {proportion_ci!r} is not known", f"use one of {', '.join(PROPORTION_CIS)}")


def choose_method(yc: np.ndarray, yt: np.ndarray, method: str = "auto", winsorize: float | None = None) -> tuple[str, str, dict]:
    """Pick the test for a mean metric and say why.

    ``auto``: a winsorized mean when ``winsorize`` is set; Welch's t when each
    arm has more than 355·g² units (g = the larger arm skewness); otherwise a
    bootstrap CI of the difference when each arm has at least 100 units, else
    Mann-Whitney.
    """
    g = max(abs(st.skewness(yc)), abs(st.skewness(yt)))
    n_min = int(min(len(yc), len(yt)))
    need = st.SKEW_RULE * g**2
    info = {"skewness": g, "n_min": n_min, "n_needed_for_t": need}
    if method not in METHODS:
        raise MlcaseError(f"--method {method!r} is not known", f"use one of {', '.join(METHODS)}")
    if method != "auto":
        return method, f"{method} as requested (skewness {g:.2f}, {n_min} units in the smallest arm)", info
    if winsorize is not None:
        return "winsorized", (f"--winsorize {winsorize:g} asked for a capped mean (skewness {g:.2f}); "
                              "the effect is on the winsorized metric"), info
    if n_min > need:
        return "welch", (f"skewness {g:.2f}: Welch's t holds with more than 355·g² = {need:,.0f} units per arm, "
                         f"and the smallest arm has {n_min:,}"), info
    if n_min >= st.BOOTSTRAP_MIN_N:
        return "bootstrap", (f"heavy tail: skewness {g:.2f} needs more than {need:,.0f} units per arm for Welch's t "
                             f"but the smallest arm has {n_min:,}; a studentised bootstrap CI of the difference in means is used "
                             "(or pass --winsorize 0.99 to cap outliers)"), info
    return "mann-whitney", (f"heavy tail and few units: skewness {g:.2f} needs more than {need:,.0f} units per arm "
                            f"and the smallest arm has {n_min:,} (under {st.BOOTSTRAP_MIN_N} for a bootstrap); "
                            "Mann-Whitney tests a shift of the distribution (Hodges-Lehmann estimate), not the mean"), info


def compare(yc: np.ndarray, yt: np.ndarray, kind: str, method: str, alpha: float = 0.05,
            winsorize: float | None = None, caps: tuple | None = None, proportion_ci: str = "newcombe",
            n_boot: int = 2000, seed: int = 0) -> dict:
    """One treatment-vs-control comparison of a metric with a chosen method (see :func:`choose_method`)."""
    yc, yt = np.asarray(yc, float), np.asarray(yt, float)
    nc, nt = len(yc), len(yt)
    out: dict = {"n_control": nc, "n_treatment": nt, "mean_control": float(yc.mean()), "mean_treatment": float(yt.mean())}
    if kind == "proportion":
        r = st.proportion_test(yc.sum(), nc, yt.sum(), nt, alpha, proportion_ci)
        out.update(method=f"z-test ({proportion_ci} CI)", diff=r["diff"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                   p_value=r["p_value"], se=r["se"])
        se_c = math.sqrt(out["mean_control"] * (1 - out["mean_control"]) / nc)
        se_t = math.sqrt(out["mean_treatment"] * (1 - out["mean_treatment"]) / nt)
        out["rel_diff"], out["rel_ci_low"], out["rel_ci_high"] = st.relative_ci(out["mean_control"], se_c,
                                                                                out["mean_treatment"], se_t, alpha)
        return out
    if method == "winsorized":
        lower, upper = caps if caps is not None else st.winsor_caps(np.concatenate([yc, yt]), winsorize or 0.99)
        yc, yt = np.clip(yc, lower, upper), np.clip(yt, lower, upper)
        out.update(winsor_lower=lower, winsor_upper=upper, mean_control_winsorized=float(yc.mean()),
                   mean_treatment_winsorized=float(yt.mean()))
    if method in ("welch", "winsorized"):
        r = st.welch(yc, yt, alpha)
        out.update(method="Welch t" + (" on winsorized values" if method == "winsorized" else ""), diff=r["diff"],
                   ci_low=r["ci_low"], ci_high=r["ci_high"], p_value=r["p_value"], se=r["se"], df=r["df"])
        se_c, se_t = yc.std(ddof=1) / math.sqrt(nc), yt.std(ddof=1) / math.sqrt(nt)
        out["rel_diff"], out["rel_ci_low"], out["rel_ci_high"] = st.relative_ci(float(yc.mean()), se_c,
                                                                                float(yt.mean()), se_t, alpha)
    elif method == "bootstrap":
        r = st.bootstrap_diff(yc, yt, alpha, n_boot=n_boot, seed=seed)
        out.update(method=f"bootstrap-t ({n_boot} resamples, symmetric CI)", diff=r["diff"], ci_low=r["ci_low"],
                   ci_high=r["ci_high"], p_value=r["p_value"], se=r["se"])
        mc = float(yc.mean())
        out["rel_diff"] = float(yt.mean() / mc - 1) if mc else math.nan
        out["rel_ci_low"], out["rel_ci_high"] = r["rel_ci_low"], r["rel_ci_high"]
    elif method == "mann-whitney":
        r = st.mann_whitney(yc, yt, alpha, seed=seed)
        out.update(method="Mann-Whitney U (Hodges-Lehmann shift)", diff=r["shift"], ci_low=r["ci_low"],
                   ci_high=r["ci_high"], p_value=r["p_value"], auc=r["auc"],
                   mean_diff=float(yt.mean() - yc.mean()), se=math.nan)
        out["rel_diff"] = out["rel_ci_low"] = out["rel_ci_high"] = math.nan
    else:
        raise MlcaseError(f"--method {method!r} is not known", f"use one of {', '.join(METHODS)}")
    return out


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """CUPED: ``y - theta * (x - mean(x))`` with ``theta = cov(y, x) / var(x)`` over all units."""
    vx = float(np.var(x, ddof=1))
    theta = float(np.cov(y, x, ddof=1)[0, 1] / vx) if vx > 0 else 0.0
    return y - theta * (x - x.mean()), theta


# --------------------------------------------------------------------------- analysis
def analyze(data: pd.DataFrame | str | Path, unit: str, variant: str, metrics: Sequence[str] | str, *,
            control: str | None = None, split=None, covariate: str | dict | None = None,
            guardrails: Sequence[str] = (), guardrail_margin: str | float = "1%", segment: str | None = None,
            min_segment_size: int = 200, planned_end: str | date | None = None, as_of: str | date | None = None,
            winsorize: float | None = None, method: str = "auto", alpha: float = 0.05,
            lower_is_better: Sequence[str] = (), proportion_ci: str = "newcombe", drop_mixed: bool = False,
            aggregate: str | None = None, n_boot: int = 2000, seed: int = 0) -> Analysis:
    """Analyse an experiment: one row per unit with its arm and metric values.

    Parameters
    ----------
    data : DataFrame or path
        CSV/Parquet path or a DataFrame.
    unit, variant : str
        Columns of the unit id and of its arm.
    metrics : str or list of str
        Metric columns; the first is the primary metric the verdict rests on.
        0/1 columns are proportions, others means.
    control : str, optional
        The control arm (default: an arm named control/baseline/A..., else the first).
    split : str or dict, optional
        The planned split: ``"50/50"`` (control first, then the other arms sorted)
        or ``"control=50,treatment=50"``; default equal shares.
    covariate : str or dict, optional
        A pre-experiment column for CUPED, for every metric or ``{metric: column}``.
    guardrails : list of str
        ``COL`` (must not drop by ``guardrail_margin``), ``"COL>=-2%"`` or ``"COL<=+5%"``.
    segment : str, optional
        Effects per value of this column, BH-adjusted, for segments with at least
        ``min_segment_size`` units in each arm compared.
    planned_end, as_of : date or ISO string, optional
        Warn about peeking when ``as_of`` (default today, UTC) is before ``planned_end``.
    winsorize : float, optional
        Cap mean metrics at this pooled quantile (e.g. 0.99).
    method : {"auto", "welch", "bootstrap", "mann-whitney", "winsorized"}
        Test for mean metrics; ``auto`` decides from the distribution and says why.
    lower_is_better : list of str
        Metrics where a decrease is an improvement (cost, latency).
    drop_mixed : bool
        Exclude units seen in two arms (counted in ``health``) instead of stopping.
    aggregate : {"sum", "mean", "max", "first"}, optional
        Combine several rows of one unit in one arm (default: such rows are an error).

    Returns
    -------
    Analysis

    Raises
    ------
    DataError
        Missing columns, one arm, more arms than planned, non-numeric metric values,
        units in two arms (unless ``drop_mixed``), duplicated units (unless ``aggregate``).
    """

    from_file = not isinstance(data, pd.DataFrame)
    df = read_frame(data) if from_file else data.copy()
    df = df.reset_index(drop=True)
    rows = _Rows(from_file)
    # a metric named twice was analysed and reported twice (two rows, two sentences in the conclusion)
    metrics = [metrics] if isinstance(metrics, str) else list(dict.fromkeys(metrics))
    if not metrics:
        raise MlcaseError("analyze: no metric given", "pass --metric COL (repeat for more metrics)")
    if not 0 < alpha < 1:
        raise MlcaseError(f"--alpha must be between 0 and 1, got {alpha}", "pass e.g. --alpha 0.05")
    # --min-segment-size -5 (or 0) tested every segment, down to an arm of one unit
    min_segment_size = whole_number(min_segment_size, "--min-segment-size", "a number of units per arm",
                                    "pass at least 2, e.g. --min-segment-size 200", minimum=2)
    if winsorize is not None and not 0.5 < winsorize < 1:
        raise MlcaseError(f"--winsorize must be a quantile between 0.5 and 1, got {winsorize}", "pass e.g. --winsorize 0.99")
    if method not in METHODS:
        raise MlcaseError(f"--method {method!r} is not known", f"use one of {', '.join(METHODS)}")
    check_options(aggregate=aggregate, proportion_ci=proportion_ci)
    guards = [parse_guardrail(g, guardrail_margin) for g in guardrails]
    unknown = [m for m in lower_is_better if m not in metrics]
    if unknown:
        raise MlcaseError(f"--lower-is-better {', '.join(map(repr, unknown))} is not a --metric",
                          "name metrics given with --metric (guardrails take their direction from 'COL<=+5%')")
    cov_map = ({m: covariate for m in metrics} if isinstance(covariate, str) else dict(covariate or {}))
    needed = {"--unit": [unit], "--variant": [variant], "--metric": metrics, "--covariate": list(cov_map.values()),
              "--guardrail": [g["metric"] for g in guards], "--segment": [segment] if segment else []}
    for opt, cols in needed.items():
        for col in cols:
            if col not in df.columns:
                raise DataError(f"{opt} {col!r}: no such column; the columns are {', '.join(map(str, df.columns[:20]))}",
                                f"pass {opt} with one of the data's columns", column=col)
    warnings: list[str] = []

    # ---- assignment health ------------------------------------------------------------
    var = df[variant].astype("string").str.strip()
    if control is not None:
        control = str(control)
    lowered = var.str.lower().fillna("")
    defaults = [v for v in DEFAULT_VALUES if control is None or v != control.lower()]
    default_mask = (var.isna() | lowered.isin(defaults)).to_numpy(dtype=bool)
    unit_ids = df[unit].astype("string")
    if unit_ids.isna().any():
        pos = np.flatnonzero(unit_ids.isna().to_numpy())
        raise DataError(f"--unit {unit!r} is empty on {rows.name(pos)}", "give every row its unit id",
                        column=unit, rows=rows.numbers(pos))
    health: dict = {"rows": int(len(df)), "missing_or_default_assignment": {
        "rows": int(default_mask.sum()), "units": int(unit_ids[default_mask].nunique()),
        "values": sorted({str(v) for v in df.loc[default_mask, variant].tolist()})[:_MAX_LISTED]}}
    if default_mask.mean() > 0.01:
        warnings.append(f"{default_mask.sum():,} rows ({default_mask.mean():.1%}) have a missing or default arm; "
                        "they are left out, check the assignment pipeline")
    keep = ~default_mask
    df, var, unit_ids = df[keep], var[keep].astype(str), unit_ids[keep].astype(str)
    positions = np.flatnonzero(keep)  # row positions in the input
    observed = sorted(var.unique().tolist())

    planned_names, shares = _parse_split(split)
    if len(observed) < 2:
        only = observed[0] if observed else "(none)"
        raise DataError(f"--variant {variant!r} has only one arm ({only!r}) after {health['missing_or_default_assignment']['rows']} "
                        "rows with a missing or default arm were left out",
                        "check the variant column and the assignment log: an experiment needs control and treatment",
                        column=variant)
    if planned_names is not None:
        extra = [a for a in observed if a not in planned_names]
        if extra:
            pos = positions[np.flatnonzero(var.isin(extra).to_numpy())]
            raise DataError(f"--variant {variant!r} has arms not in the planned split: {', '.join(map(repr, extra))} "
                            f"on {rows.name(pos)}", f"the plan has {', '.join(planned_names)}; fix the data or --split",
                            column=variant, rows=rows.numbers(pos), values=extra)
        if control is None:
            guess, _ = _guess_control(planned_names)
            control = guess if guess.strip().lower() in CONTROL_NAMES else planned_names[0]
        if control not in planned_names:
            raise MlcaseError(f"--control {control!r} is not an arm of the split ({', '.join(planned_names)})",
                              "pass one of the planned arm names")
        order = [control] + [a for a in planned_names if a != control]
        shares = [shares[planned_names.index(a)] for a in order]
        arms = order
    else:
        if control is None:
            control, note = _guess_control(observed)
            if note:
                warnings.append(note)
        elif control not in observed:
            raise DataError(f"--control {control!r} is not a value of {variant!r} (arms: {', '.join(observed)})",
                            "pass one of the arms as --control", column=variant)
        arms = [control] + [a for a in observed if a != control]
        if shares is not None and len(shares) != len(arms):
            if len(arms) > len(shares):
                counts = var.value_counts()
                extra = sorted(arms[len(shares):], key=lambda a: counts[a])[: len(arms) - len(shares)]
                pos = positions[np.flatnonzero(var.isin(extra).to_numpy())]
                raise DataError(f"--variant {variant!r} has {len(arms)} arms ({', '.join(arms)}) but the split plans "
                                f"{len(shares)}; e.g. {', '.join(map(repr, extra))} on {rows.name(pos)}",
                                "fix the variant column, or pass a split with one share per arm "
                                "(control=50,treatment=50 names them)", column=variant, rows=rows.numbers(pos))
            raise DataError(f"--variant {variant!r} has {len(arms)} arms ({', '.join(arms)}) but the split plans "
                            f"{len(shares)}", "name the arms in the split (control=50,treatment=50) so a missing arm is seen")
    assumed_equal = shares is None  # no --split: the check is against an equal split, and says so
    if assumed_equal:
        shares = [1.0 / len(arms)] * len(arms)
    planned = dict(zip(arms, shares, strict=True))

    # units in two arms
    n_arms_per_unit = pd.Series(var.to_numpy(), index=unit_ids.to_numpy()).groupby(level=0).nunique()
    mixed = n_arms_per_unit[n_arms_per_unit > 1].index
    mixed_mask = unit_ids.isin(mixed).to_numpy()
    health["units_in_several_arms"] = {a: int(unit_ids[(var == a).to_numpy() & mixed_mask].nunique()) for a in arms}
    health["units_in_several_arms_total"] = int(len(mixed))
    if len(mixed):
        if not drop_mixed:
            pos = positions[mixed_mask]
            ids = ", ".join(map(repr, list(mixed[:_MAX_LISTED])))
            raise DataError(f"{len(mixed)} unit(s) appear in more than one arm ({ids}) on {rows.name(pos)}",
                            "fix the assignment (one arm per unit), or pass --drop-mixed to leave them out "
                            "(they are counted in the health report)", column=unit, rows=rows.numbers(pos))
        warnings.append(f"{len(mixed)} units appeared in several arms and were left out")
        df, var, unit_ids = df[~mixed_mask], var[~mixed_mask], unit_ids[~mixed_mask]
        positions = positions[~mixed_mask]

    # duplicated units within an arm
    dup_mask = unit_ids.duplicated(keep=False).to_numpy()
    if dup_mask.any():
        if aggregate is None:
            pos = positions[dup_mask]
            ids = ", ".join(map(repr, pd.unique(unit_ids[dup_mask])[:_MAX_LISTED]))
            raise DataError(f"{int(unit_ids[dup_mask].nunique())} unit(s) have several rows ({ids}) on {rows.name(pos)}",
                            "the analysis takes one row per unit: aggregate first, or pass --aggregate sum|mean|max",
                            column=unit, rows=rows.numbers(pos))
        if aggregate not in ("sum", "mean", "max", "first"):
            raise MlcaseError(f"--aggregate {aggregate!r} is not known", "use sum, mean, max or first")
    # numeric metrics, guardrails and covariates (errors name the input rows)
    value_cols = list(dict.fromkeys(metrics + [g["metric"] for g in guards] + list(cov_map.values())))
    frame = pd.DataFrame({"unit": unit_ids.to_numpy(), "arm": var.to_numpy()})
    sub_rows = _SubRows(rows, positions)
    for col in value_cols:
        frame[col] = numeric_metric(df[col].reset_index(drop=True), col, sub_rows).to_numpy()
    if segment:
        frame["__segment"] = df[segment].astype("string").fillna("(missing)").to_numpy()
    if dup_mask.any():
        agg = {c: aggregate for c in value_cols}
        if segment:
            agg["__segment"] = "first"
        frame = frame.groupby(["unit", "arm"], as_index=False, sort=False).agg(agg)
        warnings.append(f"{int(dup_mask.sum())} rows of units with several rows were combined by {aggregate}")

    arm_units = frame["arm"].value_counts()
    counts = [int(arm_units.get(a, 0)) for a in arms]
    health["units"] = dict(zip(arms, counts, strict=True))
    health["missing_metric_values"] = {col: {a: int(frame.loc[frame["arm"] == a, col].isna().sum()) for a in arms}
                                       for col in value_cols}
    for col, per_arm in health["missing_metric_values"].items():
        total = sum(per_arm.values())
        if total:
            warnings.append(f"{col}: {total} units have no value ({', '.join(f'{a} {n}' for a, n in per_arm.items())}); "
                            "they are left out of that metric")
    for a, n in zip(arms, counts, strict=True):
        if n == 0:
            warnings.append(f"the planned arm {a!r} has no units")

    # ---- sample ratio mismatch ---------------------------------------------------------
    srm = st.srm(counts, shares)
    srm.update(observed=dict(zip(arms, counts, strict=True)), flagged=srm["p_value"] < SRM_THRESHOLD, threshold=SRM_THRESHOLD,
               assumed_equal_split=assumed_equal)
    trustworthy = not srm["flagged"]
    if srm["flagged"]:
        against = (f"an equal split ({'/'.join(f'{s * 100:.3g}' for s in shares)}, assumed: no --split was given)"
                   if assumed_equal else f"a planned {'/'.join(f'{s * 100:.3g}' for s in shares)} split")
        cause = ("if the arms were planned unequal, pass their shares as --split" if assumed_equal
                 else "the assignment or logging is broken, do not trust the effects")
        warnings.insert(0, f"sample ratio mismatch: {', '.join(f'{a} {n:,}' for a, n in zip(arms, counts, strict=True))} "
                           f"against {against} (chi-square p {p_value(srm['p_value'], eq=True)} < {SRM_THRESHOLD}); {cause}")
    if counts[0] == 0:
        raise DataError(f"the control arm {control!r} has no units", "check --control and the variant column")
    treatments = [a for a, n in zip(arms, counts, strict=True) if a != control and n > 0]

    # ---- metrics -------------------------------------------------------------------------
    lower = set(lower_is_better)
    settings = {"unit": unit, "variant": variant, "metrics": metrics, "alpha": alpha, "method": method,
                "winsorize": winsorize, "covariate": cov_map or None, "segment": segment,
                "min_segment_size": min_segment_size, "proportion_ci": proportion_ci,
                "lower_is_better": sorted(lower), "planned_end": str(planned_end) if planned_end else None,
                "correction": "holm" if len(treatments) > 1 else None}
    metric_cols = list(dict.fromkeys(metrics + [g["metric"] for g in guards]))
    results: dict[str, list[dict]] = {}
    chosen: dict[str, tuple[str, str]] = {}
    for col in metric_cols:
        results[col], chosen[col] = _analyse_metric(frame, col, control, treatments, alpha=alpha, method=method,
                                                    winsorize=winsorize, covariate=cov_map.get(col),
                                                    proportion_ci=proportion_ci, n_boot=n_boot, seed=seed)
        for r in results[col]:
            r["role"] = "primary" if col == metrics[0] else ("metric" if col in metrics else "guardrail")
            r["lower_is_better"] = col in lower
            r["better"] = (r["estimate"] < 0) if col in lower else (r["estimate"] > 0)
    metric_rows = [r for col in metrics for r in results[col]]

    # ---- guardrails ------------------------------------------------------------------------
    guard_rows = []
    for g in guards:
        for r in results[g["metric"]]:
            guard_rows.append(_guardrail(g, r, alpha))

    # ---- segments ---------------------------------------------------------------------------
    segment_rows = []
    if segment:
        segment_rows = _segments(frame, metrics, control, treatments, chosen, alpha=alpha, min_size=min_segment_size,
                                 winsorize=winsorize, proportion_ci=proportion_ci, seed=seed)

    # ---- peeking ----------------------------------------------------------------------------
    preliminary = False
    if planned_end is not None:
        end = _as_date(planned_end, "--planned-end")
        today = _as_date(as_of, "--as-of") if as_of is not None else datetime.now(UTC).date()
        if today < end:
            preliminary = True
            warnings.append(f"peeking: analysed on {today} before the planned end {end} ({(end - today).days} days early); "
                            "p-values and CIs assume one look at the end, so do not stop or ship on this result")

    verdict, winner = _verdict(trustworthy, metric_rows, guard_rows, metrics[0])
    result = Analysis(verdict=verdict, trustworthy=trustworthy, conclusion="", control=control, arms=arms,
                      planned_split=planned, srm=srm, health=health, metrics=metric_rows, guardrails=guard_rows,
                      segments=segment_rows, warnings=warnings, preliminary=preliminary, winner=winner,
                      settings=settings)
    result.conclusion = _conclude(result)
    return result


class _SubRows(_Rows):
    """Row names for a filtered frame: maps its positions back to the input's."""

    def __init__(self, base: _Rows, positions: np.ndarray):
        super().__init__(base.from_file)
        self.positions = positions

    def name(self, positions) -> str:
        return super().name(self.positions[np.asarray(positions, dtype=int)])

    def numbers(self, positions) -> list[int]:
        return super().numbers(self.positions[np.asarray(positions, dtype=int)])


def _as_date(value, opt: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise MlcaseError(f"{opt} {value!r}: expected a date like 2026-06-30", f"pass {opt} YYYY-MM-DD") from None


def _analyse_metric(frame: pd.DataFrame, col: str, control: str, treatments: list[str], *, alpha, method, winsorize,
                    covariate, proportion_ci, n_boot, seed) -> tuple[list[dict], tuple[str, str]]:
    sub = frame[frame[col].notna()]
    y_all = sub[col].to_numpy(float)
    kind = "proportion" if np.isin(y_all, (0.0, 1.0)).all() else "mean"
    yc = sub.loc[sub["arm"] == control, col].to_numpy(float)
    caps = st.winsor_caps(y_all, winsorize) if (winsorize is not None and kind == "mean") else None
    rows = []
    chosen_method, reason = ("z-test", "0/1 values: a proportion, compared with the pooled two-proportion z-test")
    for arm in treatments:
        yt = sub.loc[sub["arm"] == arm, col].to_numpy(float)
        if len(yc) < 2 or len(yt) < 2:
            raise DataError(f"metric {col!r}: fewer than 2 units with a value in {control!r} or {arm!r}",
                            "collect more data before analysing", column=col)
        check = {}
        if kind == "mean":
            chosen_method, reason, check = choose_method(yc, yt, method, winsorize)
        r = compare(yc, yt, kind, chosen_method, alpha, winsorize, caps, proportion_ci, n_boot, seed)
        r.update(metric=col, arm=arm, control=control, kind=kind, method_key=chosen_method, method_reason=reason,
                 distribution=check, cuped=None)
        r["estimate"], r["estimate_ci"] = r["diff"], [r["ci_low"], r["ci_high"]]
        r["p_estimate"] = r["p_value"]
        if covariate is not None:
            r["cuped"] = _cuped(sub, col, covariate, control, arm, chosen_method, alpha, caps, n_boot, seed)
            if r["cuped"] is not None:
                r["estimate"] = r["cuped"]["diff"]
                r["estimate_ci"] = [r["cuped"]["ci_low"], r["cuped"]["ci_high"]]
                r["p_estimate"] = r["cuped"]["p_value"]
        rows.append(r)
    adj = st.holm([r["p_estimate"] for r in rows]) if len(rows) > 1 else [rows[0]["p_estimate"]]
    for r, p in zip(rows, adj, strict=True):
        r["p_adjusted"] = float(p)
        r["significant"] = bool(p < alpha)
        r["correction"] = "holm" if len(rows) > 1 else None
    return rows, (chosen_method, reason)


def _cuped(sub: pd.DataFrame, col: str, covariate: str, control: str, arm: str, method: str, alpha: float,
           caps, n_boot: int, seed: int) -> dict:
    """CUPED estimate of one comparison; theta is fitted on the pooled units of all arms."""
    x_all = sub[covariate].to_numpy(float)
    n_missing = int(np.isnan(x_all).sum())
    if n_missing == len(x_all):
        raise DataError(f"--covariate {covariate!r} has no values", "pass a pre-experiment column with values",
                        column=covariate)
    x_all = np.where(np.isnan(x_all), np.nanmean(x_all), x_all)  # missing covariate: the mean (no adjustment)
    y_all = sub[col].to_numpy(float)
    if method == "winsorized" and caps is not None:
        y_all = np.clip(y_all, caps[0], caps[1])
    adj, theta = cuped_adjust(y_all, x_all)
    arm_of = sub["arm"].to_numpy()
    yc, yt = adj[arm_of == control], adj[arm_of == arm]
    r = compare(yc, yt, "mean", "bootstrap" if method == "bootstrap" else "welch", alpha, n_boot=n_boot, seed=seed)
    rc, rt = y_all[arm_of == control], y_all[arm_of == arm]
    se_raw = math.sqrt(rc.var(ddof=1) / len(rc) + rt.var(ddof=1) / len(rt))
    se_adj = math.sqrt(yc.var(ddof=1) / len(yc) + yt.var(ddof=1) / len(yt))
    rho = float(np.corrcoef(y_all, x_all)[0, 1]) if np.std(x_all) > 0 and np.std(y_all) > 0 else 0.0
    return {"covariate": covariate, "theta": theta, "correlation": rho, "covariate_missing": n_missing,
            "method": "CUPED + " + r["method"], "diff": r["diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "p_value": r["p_value"], "rel_diff": r["rel_diff"], "rel_ci_low": r["rel_ci_low"],
            "rel_ci_high": r["rel_ci_high"], "mean_control": r["mean_control"], "mean_treatment": r["mean_treatment"],
            "se": se_adj, "se_unadjusted": se_raw,
            "variance_reduction": float(1 - se_adj**2 / se_raw**2) if se_raw > 0 else 0.0}


def _guardrail(g: dict, r: dict, alpha: float) -> dict:
    """Non-inferiority of one guardrail comparison against its margin.

    ``pass``: the CI's bad-side bound is within the margin (a worse change is ruled
    out); ``fail``: a significant change in the bad direction whose estimate is
    beyond the margin; ``inconclusive``: neither.
    """
    if g["relative"]:
        est, lo, hi, scale = r["rel_diff"], r["rel_ci_low"], r["rel_ci_high"], "relative"
        if r.get("cuped"):
            est, lo, hi = r["cuped"]["rel_diff"], r["cuped"]["rel_ci_low"], r["cuped"]["rel_ci_high"]
    else:
        est, (lo, hi), scale = r["estimate"], r["estimate_ci"], "absolute"
    if est is None or not np.isfinite(est):
        status = "inconclusive"
        worst = math.nan
    elif g["bad"] == "decrease":
        worst = lo
        status = "fail" if (est < -g["margin"] and hi < 0) else ("pass" if lo >= -g["margin"] else "inconclusive")
    else:
        worst = hi
        status = "fail" if (est > g["margin"] and lo > 0) else ("pass" if hi <= g["margin"] else "inconclusive")
    return {"metric": g["metric"], "arm": r["arm"], "bad": g["bad"], "margin": g["margin"], "scale": scale,
            "estimate": est, "ci_low": lo, "ci_high": hi, "worst_case": worst, "status": status,
            "p_value": r["p_estimate"], "significant_change": bool(r["p_estimate"] < alpha)}


def _segments(frame: pd.DataFrame, metrics: list[str], control: str, treatments: list[str], chosen: dict, *, alpha,
              min_size, winsorize, proportion_ci, seed) -> list[dict]:
    out = []
    for col in metrics:
        sub = frame[frame[col].notna()]
        y_all = sub[col].to_numpy(float)
        kind = "proportion" if np.isin(y_all, (0.0, 1.0)).all() else "mean"
        caps = st.winsor_caps(y_all, winsorize) if (winsorize is not None and kind == "mean") else None
        method = chosen[col][0] if kind == "mean" else "z-test"
        tested = []
        for seg, part in sub.groupby("__segment", sort=True):
            yc = part.loc[part["arm"] == control, col].to_numpy(float)
            for arm in treatments:
                yt = part.loc[part["arm"] == arm, col].to_numpy(float)
                row = {"metric": col, "segment": str(seg), "arm": arm, "n_control": len(yc), "n_treatment": len(yt)}
                if min(len(yc), len(yt)) < max(min_size, 2):
                    row.update(tested=False, note=f"fewer than {min_size} units in an arm: not tested")
                    out.append(row)
                    continue
                r = compare(yc, yt, kind, method, alpha, winsorize, caps, proportion_ci, n_boot=1000, seed=seed)
                row.update(tested=True, method=r["method"], mean_control=r["mean_control"],
                           mean_treatment=r["mean_treatment"], diff=r["diff"], ci_low=r["ci_low"],
                           ci_high=r["ci_high"], rel_diff=r["rel_diff"], p_value=r["p_value"])
                tested.append(row)
                out.append(row)
        adj = st.benjamini_hochberg([r["p_value"] for r in tested])
        for r, p in zip(tested, adj, strict=True):
            r["p_adjusted"] = float(p)
            r["significant"] = bool(p < alpha)
    return out


def _verdict(trustworthy: bool, rows: list[dict], guards: list[dict], primary: str) -> tuple[str, str | None]:
    if not trustworthy:
        return "UNTRUSTWORTHY", None
    failed = {g["arm"] for g in guards if g["status"] == "fail"}
    prim = [r for r in rows if r["metric"] == primary]
    winners = [r for r in prim if r["significant"] and r["better"] and r["arm"] not in failed]
    if winners:
        best = max(winners, key=lambda r: abs(r["estimate"]))
        return "SHIP", best["arm"]
    if failed or any(r["significant"] and not r["better"] for r in prim):
        return "DONT_SHIP", None
    return "INCONCLUSIVE", None


# --------------------------------------------------------------------------- words
def _num(v: float, kind: str) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.2%}" if kind == "proportion" else number(v, 4)


def _delta(v: float, kind: str) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v * 100:+.2f} points" if kind == "proportion" else signed(v)


def _pct(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.1%}"


def describe(r: dict) -> str:
    """One comparison in words."""
    kind = r["kind"]
    est = r["estimate"]
    lo, hi = r["estimate_ci"]
    verb = "raised" if est > 0 else ("lowered" if est < 0 else "did not change")
    if r["method_key"] == "mann-whitney" and not r.get("cuped"):
        body = (f"{r['arm']} shifted {r['metric']} by {_delta(est, kind)} (Hodges-Lehmann, 95% CI "
                f"{_delta(lo, kind)} to {_delta(hi, kind)}; means {_num(r['mean_control'], kind)} vs "
                f"{_num(r['mean_treatment'], kind)})")
    elif r.get("cuped"):
        c = r["cuped"]
        body = (f"{r['arm']} {verb} {r['metric']} by {_delta(est, kind)} ({_pct(c['rel_diff'])}; 95% CI "
                f"{_delta(lo, kind)} to {_delta(hi, kind)}), CUPED-adjusted for {c['covariate']} ({c['method']}), "
                f"which cut the variance by {c['variance_reduction']:.0%} (raw means {_num(r['mean_control'], kind)} "
                f"vs {_num(r['mean_treatment'], kind)})")
        if r["method_key"] == "mann-whitney":  # the estimate is the adjusted mean difference, not the HL shift
            # (datasets::ToothGrowth, CUPED on dose: "shifted len by +3.7 (Hodges-Lehmann, 95% CI +1.529 to +5.871)"
            # where the Hodges-Lehmann shift is +4 with 95% CI -0.1 to +8.5, p 0.064)
            body += (f"; unadjusted, the Hodges-Lehmann shift is {_delta(r['diff'], kind)} (95% CI "
                     f"{_delta(r['ci_low'], kind)} to {_delta(r['ci_high'], kind)}, Mann-Whitney p "
                     f"{p_value(r['p_value'])})")
    else:
        body = (f"{r['arm']} {verb} {r['metric']} from {_num(r['mean_control'], kind)} to "
                f"{_num(r['mean_treatment'], kind)} ({_delta(est, kind)}, {_pct(r['rel_diff'])}; 95% CI "
                f"{_delta(lo, kind)} to {_delta(hi, kind)})")
    p = r["p_adjusted"]
    padj = " Holm-adjusted" if r.get("correction") == "holm" else ""
    if r["significant"]:
        judge = "better" if r["better"] else "worse"
        return f"{body}, p {p_value(p, eq=True)}{padj}: significant, {judge} for {r['metric']}."
    return f"{body}, p {p_value(p, eq=True)}{padj}: not significant; the data are consistent with no effect."


def _conclude(a: Analysis) -> str:
    parts = []
    if a.preliminary:
        parts.append("PRELIMINARY: the experiment has not reached its planned end.")
    assumed = a.srm.get("assumed_equal_split")
    if not a.trustworthy and assumed:
        parts.append(f"UNTRUSTWORTHY: sample ratio mismatch (chi-square p {p_value(a.srm['p_value'], eq=True)}): the arms are not "
                     "equal in size, and no --split says they were planned unequal. If they were, pass the planned "
                     "shares as --split; if not, the effects below may be biased: find the cause (assignment, "
                     "redirects, logging, bot filtering) before reading them.")
    elif not a.trustworthy:
        parts.append(f"UNTRUSTWORTHY: sample ratio mismatch (chi-square p {p_value(a.srm['p_value'], eq=True)}): the arms do not "
                     "have the planned sizes, so the effects below may be biased. Find the cause (assignment, "
                     "redirects, logging, bot filtering) before reading them.")
    else:
        parts.append(f"The split matches {'an equal split (assumed: no --split was given)' if assumed else 'the plan'} "
                     f"(sample ratio p {p_value(a.srm['p_value'], eq=True)}).")
    primary = a.settings["metrics"][0]
    for r in a.metrics:
        if r["metric"] == primary:
            parts.append(describe(r))
    others = [r for r in a.metrics if r["metric"] != primary]
    if others:
        sig = [f"{r['metric']} ({r['arm']}, {'better' if r['better'] else 'worse'})" for r in others if r["significant"]]
        parts.append("Secondary metrics: " + (("significant changes in " + ", ".join(sig)) if sig else "no significant change")
                     + ".")
    for g in a.guardrails:
        margin = f"{g['margin']:.1%}" if g["scale"] == "relative" else f"{g['margin']:g}"
        move = "drop" if g["bad"] == "decrease" else "rise"
        est = _pct(g["estimate"]) if g["scale"] == "relative" else signed(g["estimate"])
        if g["status"] == "pass":
            parts.append(f"Guardrail {g['metric']} ({g['arm']}) held: change {est}, a {move} beyond {margin} is ruled out.")
        elif g["status"] == "fail":
            parts.append(f"Guardrail {g['metric']} ({g['arm']}) FAILED: change {est}, a {move} beyond the {margin} margin.")
        else:
            parts.append(f"Guardrail {g['metric']} ({g['arm']}) is inconclusive: change {est}, but a {move} beyond "
                         f"{margin} cannot be ruled out yet.")
    if a.segments:
        tested = [s for s in a.segments if s.get("tested")]
        sig = [s for s in tested if s.get("significant")]
        skipped = len(a.segments) - len(tested)
        if sig:
            parts.append("Segments with an effect after Benjamini-Hochberg adjustment: "
                         + ", ".join(f"{s['segment']} ({s['metric']}, {s['arm']}, {_pct(s['rel_diff'])})" for s in sig) + ".")
        else:
            parts.append(f"No segment effect survives Benjamini-Hochberg adjustment ({len(tested)} tested, "
                         f"{skipped} too small); do not tell a segment story.")
    words = {"SHIP": f"Verdict: SHIP {a.winner}: it improves {primary} significantly and no guardrail failed.",
             "DONT_SHIP": "Verdict: DO NOT SHIP: a treatment makes the primary metric significantly worse or fails a guardrail.",
             "INCONCLUSIVE": f"Verdict: INCONCLUSIVE: no significant effect on {primary}; effects outside the CI are "
                             "unlikely, effects inside it cannot be told from zero.",
             "UNTRUSTWORTHY": "Verdict: UNTRUSTWORTHY: " + ("pass the planned --split, or fix the sample ratio mismatch "
                                                           "and rerun the experiment." if assumed else
                                                           "fix the sample ratio mismatch and rerun the experiment.")}
    parts.append(words[a.verdict])
    if a.preliminary and a.verdict != "UNTRUSTWORTHY":
        parts.append("Keep it running until the planned end before acting on this.")
    return " ".join(parts)
