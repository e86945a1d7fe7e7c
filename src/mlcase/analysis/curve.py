"""Learning curve: would more labels pay?

The candidate's configuration is cross-validated on 25/50/75/100% of each fold's fit rows
(``analysis.fractions``; the bake-off's folds, early stopping and scorer, see
:mod:`.refits`); every point scores the same out-of-fold rows, so the points pair row by
row. The money per decision ``m(n)`` at ``n`` fit rows is fitted with an inverse power law

    m(n) = a + b * n ** (-c),   b >= 0, 0.05 <= c <= 2

(``scipy.optimize.curve_fit``), and extrapolated to the rows the served model is refitted on
now (1x) and to 2x and 4x the labels. Its uncertainty is a bootstrap over the rows: the same
resampled rows at every point, the law refitted each time (under a group split whole groups are resampled, at
the expanded level of :func:`mlcase.evaluate.lift.expanded_level`: rows of one entity are not independent); the band is the 2.5-97.5%
percentile of the extrapolations. The band covers the noise of the points, not a wrong
functional form; ``tests/test_analysis_curve.py`` checks it against fits on more rows of a
real table.

:func:`settle` turns the curve into "how many more labelled rows would likely settle" an
``INCONCLUSIVE`` decision: the lift grows by what the curve expects from more rows while its
CI narrows with the larger test part. It promises a count only where the low end of the
bootstrap band of that gain settles the lift too; otherwise it says the band is too wide.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..evaluate.lift import LEVEL, bootstrap_means, expanded_level, group_codes
from .slices import BASELINE, FLOOR

N_BOOT = 200
MULTIPLES = (1.0, 2.0, 4.0)
GRID = (1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
Z_ALPHA, Z_POWER = 1.959963984540054, 0.8416212335729143   # 95% two-sided, 80% power


def power_law(n, a, b, c):
    """``a + b * n ** -c``: the money (or loss) per decision at ``n`` fit rows."""
    return a + b * np.power(np.asarray(n, dtype=float), -c)


def _jac(n, a, b, c):
    t = np.power(np.asarray(n, dtype=float), -c)
    return np.column_stack([np.ones_like(t), t, -b * t * np.log(n)])


def fit_power_law(n, m, p0=None, sigma=None, floor: float = -np.inf) -> tuple[np.ndarray, bool]:
    """Least-squares fit of :func:`power_law` to the points; ``(params, ok)`` (flat at the mean when it fails).

    ``scipy.optimize.curve_fit`` (trust region, bounds ``a >= floor``, ``b >= 0`` and ``0.05 <= c <= 2``,
    the analytic Jacobian), each point weighted by its standard error ``sigma`` when given; ``p0``
    starts it (the bootstrap starts from the fit on all rows). ``floor`` is the least the money per
    decision can be (every row decided right, :func:`least_cost`): with ``b >= 0`` the law never goes
    below its asymptote ``a``.
    """
    from scipy.optimize import curve_fit

    n, m = np.asarray(n, dtype=float), np.asarray(m, dtype=float)
    if p0 is None:
        span = float(m[0] - m[-1])
        p0 = (float(m[-1]) - max(span, 0) * 0.5, max(span, 1e-9) * n[0] ** 0.5, 0.5)
    floor = float(floor) if floor is not None and np.isfinite(floor) else -np.inf
    lo, hi = np.array([floor, 0.0, 0.05]), np.array([np.inf, np.inf, 2.0])
    inside = 1e-9 * max(1.0, abs(floor)) if np.isfinite(floor) else 0.0
    p0 = np.clip(np.asarray(p0, dtype=float), lo + [inside, 1e-12, 1e-9], hi - [0, 0, 1e-9])
    # a law that flattens slowly (its exponent near the 0.05 bound, a and b trading off) can take the trust region
    # more than 200 evaluations: MASS::Boston's curve, four points falling from $5.14 to $3.42, stopped there on 3
    # of 200 resamples, which then counted as "flat at the mean" (no learning at all) and set the top of the band at
    # 1x, 2x and 4x the labels to one value ($4.07); 2,000 evaluations fit it ($3.18, $2.39, $1.63)
    for maxfev in (200, 2000):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = curve_fit(power_law, n, m, p0=p0, sigma=sigma, bounds=(lo, hi), jac=_jac, maxfev=maxfev)
            return p, True
        except (RuntimeError, ValueError):
            continue
    return np.array([float(np.mean(m)), 0.0, 0.5]), False


def _points(refits, fractions, full: dict | None) -> tuple[list[dict], list[float]]:
    """The curve's points: ``refits``' recipe cross-validated on each fraction (``full``: its stored scores at
    100%), and the fractions skipped for time."""
    points, skipped = [], []
    for f in sorted(set(float(x) for x in fractions)):
        got = full if (f >= 1.0 and full is not None) else refits.oof(fraction=f)
        if got is None or got.get("truncated"):
            skipped.append(f)
            continue
        costs = refits.row_costs(got["scores"])
        loss = refits.row_loss(got["scores"])
        points.append({"fraction": f, "fit_rows": float(got["fit_rows"]), "costs": costs,
                       "cost_per_decision": float(costs.mean()), "loss": float(np.mean(loss))})
    return points, skipped


def learning_curve(refits, fractions, base_oof: dict | None, references: dict[str, np.ndarray], seed: int,
                   time_note: str, baseline: tuple | None = None) -> dict:
    """The curve's points, the fitted law, and the money at 1x/2x/4x the labels with its bootstrap band.

    Parameters
    ----------
    refits : Refits
    fractions : list of float
    base_oof : dict, optional
        The candidate's own out-of-fold scores (``{"scores", "fit_rows"}``), used for 100%.
    references : dict of str to ndarray
        Per-row costs (of the scored rows) of what the saving is measured against (the best
        baseline, the best model-free policy).
    baseline : (Refits, dict or None, str), optional
        The best baseline's own refits, its stored out-of-fold scores and its name, where it is a learned model:
        its curve is fitted too, on the same rows and resamples, and the saving over it at 2x and 4x the labels
        (and :func:`settle`'s gain) is against what it would cost with those labels too, not against what it
        costs now. A linear baseline learns from more rows as well (Stat2Data::Kids198: a ridge-led ensemble was
        to gain $0.14 a decision on the linear baseline with 1.25x the labels, the very gain the linear baseline
        would make too).
    """
    points, skipped = _points(refits, fractions, base_oof)
    out = {"fractions": [float(x) for x in fractions], "points": [{k: v for k, v in p.items() if k != "costs"}
                                                                 for p in points],
           "skipped_fractions": skipped, "time": time_note, "n_rows": int(len(refits.scored)),
           "labels_now": int(len(refits.plan.pool)), "fitted": False}
    if len(points) < 3:
        out["note"] = (f"only {len(points)} point(s) fitted within the time share "
                       f"({', '.join(f'{100 * f:.0f}%' for f in skipped)} skipped); a curve needs 3")
        return out
    n = np.array([p["fit_rows"] for p in points])
    C = np.column_stack([p["costs"] for p in points])
    sigma = C.std(axis=0, ddof=1) / np.sqrt(len(C))
    # the least the money per decision can be, every row decided right: the law's asymptote cannot go below it
    # (modeldata::hpc_data, 433 labelled jobs, a cost matrix of costs 0 to 10: the law's asymptote was -4.17 and the
    # band at 4x the labels ran from -$0.046 per decision, below the $0 of a perfect queue, to $0.192, missing the
    # $0.234 that 1,732 labels gave)
    least = least_cost(refits)
    out["least_cost_per_decision"] = float(least.mean())
    params, ok = fit_power_law(n, C.mean(axis=0), sigma=sigma, floor=least.mean())
    targets = np.array(MULTIPLES) * out["labels_now"]
    B = None
    if baseline is not None:
        b_refits, b_full, b_name = baseline
        b_points, b_skipped = _points(b_refits, fractions, b_full)
        out["baseline_curve"] = {"model": b_name, "fitted": False, "skipped_fractions": b_skipped,
                                 "points": [{k: v for k, v in p.items() if k != "costs"} for p in b_points]}
        if len(b_points) >= 3:
            b_n = np.array([p["fit_rows"] for p in b_points])
            B = np.column_stack([p["costs"] for p in b_points])
            b_sigma = B.std(axis=0, ddof=1) / np.sqrt(len(B))
            b_params, b_ok = fit_power_law(b_n, B.mean(axis=0), sigma=b_sigma, floor=least.mean())
            out["baseline_curve"].update(fitted=b_ok, params={"a": float(b_params[0]), "b": float(b_params[1]),
                                                              "c": float(b_params[2])})
        else:
            out["baseline_curve"]["note"] = f"only {len(b_points)} point(s) fitted within the time share"
    # one bootstrap for both curves: the same resampled rows, so the saving over the baseline is paired
    # (each resample's own least cost last)
    cols = ([C[:, j] for j in range(C.shape[1])] + ([] if B is None else [B[:, j] for j in range(B.shape[1])])
            + [least])
    # under a group split the scored rows' groups are resampled whole (the folds hold each group out whole)
    groups = getattr(refits, "groups", None)
    means = bootstrap_means(cols, N_BOOT, seed, groups)
    q = (1 - LEVEL) / 2
    if groups is not None:
        n_groups = int(group_codes(groups)[1])
        q = (1 - expanded_level(LEVEL, n_groups)) / 2
        out["resampled"] = {"unit": "group", "column": refits.case.spec.data.group, "n_groups": n_groups}
    floors = means[:, -1]
    boot, boot_params = _bootstrap(n, means[:, :C.shape[1]], targets, params, sigma, floors)
    b_boot = None
    if B is not None:
        b_boot, b_boot_params = _bootstrap(b_n, means[:, C.shape[1]:-1], targets, b_params, b_sigma, floors)
        out["_boot_params_baseline"] = b_boot_params
    out.update(fitted=ok, params={"a": float(params[0]), "b": float(params[1]), "c": float(params[2])},
               extrapolation=[_at(k, t, params, boot[:, i], references, C, q) for i, (k, t) in
                              enumerate(zip(MULTIPLES, targets, strict=True))])
    if b_boot is not None and out["baseline_curve"]["fitted"]:
        bp = out["baseline_curve"]["params"]
        for i, entry in enumerate(out["extrapolation"]):
            est = float(power_law(targets[i], bp["a"], bp["b"], bp["c"])) - entry["cost_per_decision"]
            lo, hi = (float(v) for v in np.nanquantile(b_boot[:, i] - boot[:, i], [q, 1 - q]))
            entry["saving_over"][BASELINE] = {"estimate": est, "band": [lo, hi], "baseline_learns": True}
    out["gain_2x"] = _gain(out["extrapolation"], 2.0)
    out["gain_4x"] = _gain(out["extrapolation"], 4.0)
    out["_boot_params"] = boot_params  # each resample's law, for settle(); dropped before saving
    out["_band_q"] = q
    return out


def _bootstrap(n: np.ndarray, means: np.ndarray, targets: np.ndarray, start,
               sigma, floors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Extrapolations at ``targets`` of the law refitted on each resample's means (the same rows at every point),
    and the refitted ``(a, b, c)`` of each resample (its asymptote at least ``floors[b]``, the resample's least
    cost)."""
    out = np.full((len(means), len(targets)), np.nan)
    params = np.full((len(means), 3), np.nan)
    for b in range(len(means)):
        p, ok = fit_power_law(n, means[b], p0=start, sigma=sigma,
                              floor=-np.inf if floors is None else floors[b])
        if not ok:   # no law found: left out of the band (NaN), not read as the flat law fit_power_law falls back to
            continue
        out[b] = power_law(targets, *p)
        params[b] = p
    return out, params


def least_cost(refits) -> np.ndarray:
    """Each scored row's cost had it been decided right (the cheapest decision given its label): flagged or not
    (binary), each class (multiclass), its own value (regression)."""
    y = refits.y_labels[refits.scored]
    costs = refits.costs
    if refits.task == "binary":
        return np.minimum(costs.of(y, np.ones(len(y), dtype=int)), costs.of(y, np.zeros(len(y), dtype=int)))
    if refits.task == "multiclass":
        return np.min(np.column_stack([np.asarray(costs.of(y, np.full(len(y), c, dtype=object)), dtype=float)
                                       for c in refits.dataset.classes]), axis=1).astype(float)
    return np.asarray(costs.of(y, np.asarray(y, dtype=float)), dtype=float)


def _at(k: float, target: float, params, samples: np.ndarray, references: dict, C: np.ndarray,
        q: float = 0.025) -> dict:
    est = float(power_law(target, *params))
    lo, hi = (float(v) for v in np.nanquantile(samples, [q, 1 - q]))
    entry = {"multiple": k, "labels": int(round(target)), "cost_per_decision": est, "band": [lo, hi],
             "saving_over": {}}
    for name, ref in references.items():
        r = float(np.mean(ref))
        entry["saving_over"][name] = {"estimate": r - est, "band": [r - hi, r - lo]}
    return entry


def _gain(extrapolation: list[dict], k: float) -> dict | None:
    now = next((e for e in extrapolation if e["multiple"] == 1.0), None)
    later = next((e for e in extrapolation if e["multiple"] == k), None)
    if now is None or later is None:
        return None
    return {"estimate": now["cost_per_decision"] - later["cost_per_decision"]}


def settle(curve: dict, evaluation: dict, required: float) -> dict | None:
    """How many more labelled rows would likely settle an undecided lift (see the module).

    With ``k`` times today's labels the lift is expected to grow by ``m(N) - m(kN)`` (the
    curve) and its test part to hold ``k`` times the rows; the lift is settled when it clears
    ``required`` and is ``(z_0.975 + z_0.8)`` standard errors above zero (95% CI, 80% power).
    Returns None without a fitted curve or an undecided lift.
    """
    if not curve.get("fitted"):
        return None
    lift = _binding_lift(evaluation)
    if lift is None:
        return None
    L, sd, versus, kind = lift
    n_test = int(evaluation.get("n_test") or 0)
    n_labelled = int(evaluation.get("n_labelled") or 0)
    if n_test <= 0 or sd <= 0:
        return None
    p = curve["params"]
    now = curve["labels_now"]
    base = power_law(now, p["a"], p["b"], p["c"])
    boot = curve.get("_boot_params")
    # over a learned baseline, the gain is what the candidate gains beyond what the baseline gains with the rows
    against = (curve.get("baseline_curve") or {}) if kind == BASELINE else {}
    bp = against.get("params") if against.get("fitted") else None
    b_boot = curve.get("_boot_params_baseline") if bp else None
    fixed = {"baseline_assumed_fixed": True} if against and bp is None else {}   # its own curve did not fit

    def baseline_gain(k: float, q=None):
        if bp is None:
            return 0.0
        a, b, c = (bp["a"], bp["b"], bp["c"]) if q is None else (q[:, 0], q[:, 1], q[:, 2])
        return power_law(now, a, b, c) - power_law(k * now, a, b, c)

    for k in GRID:
        gain = float(base - power_law(k * now, p["a"], p["b"], p["c"]) - baseline_gain(k))
        L_k = L + gain
        se = sd / np.sqrt(k * n_test)
        if L_k >= required and L_k >= (Z_ALPHA + Z_POWER) * se:
            out = {"multiple": k, "more_labelled_rows": int(round((k - 1) * n_labelled)),
                   "labelled_rows": int(round(k * n_labelled)), "expected_lift": L_k, "gain_from_curve": gain,
                   "lift_now": L, "versus": versus, "sd_diff_per_decision": sd,
                   **({"baseline_gain": float(baseline_gain(k))} if bp else {}), **fixed}
            if boot is None:
                return out
            # the gain is the curve's guess: promise it only where the low end of its 95% band settles too
            # (MASS::Insurance, 43 labels: a $0.052 lift was to grow 21-fold with 2x the labels, on a law whose
            # exponent sat at its bound and whose band at 2x overlapped the band at 1x almost whole)
            b0 = power_law(now, boot[:, 0], boot[:, 1], boot[:, 2])
            gains = b0 - power_law(k * now, boot[:, 0], boot[:, 1], boot[:, 2])
            if b_boot is not None:
                gains = gains - baseline_gain(k, b_boot)
            q = curve.get("_band_q", 0.025)
            lo, hi = (float(v) for v in np.nanquantile(gains, [q, 1 - q]))
            out["gain_band"] = [lo, hi]
            worst = L + lo
            needed = max(required, (Z_ALPHA + Z_POWER) * se)
            if worst >= needed:
                return out
            # the reasons name the shortfall: at the band's low end the lift reaches `worst_lift`, short of `needed`
            # (a band above zero can still fall short: Ecdat::LaborSupply read "too wide" beside a positive band)
            return {**out, "multiple": None, "uncertain": True, "multiple_at_estimate": k,
                    "more_labelled_rows": None, "labelled_rows": None, "worst_lift": worst, "needed_lift": needed}
    return {"multiple": None, "lift_now": L, "versus": versus, "sd_diff_per_decision": sd,
            "more_labelled_rows": None, "max_multiple_tried": GRID[-1], **fixed}


def _sd(lift: dict) -> float:
    """The per-decision sd of a lift's paired difference, times the square root of its design effect under a group
    split (at least 1, as the evaluation's CIs are never narrower than the rows'): the rows a larger test part
    needs are counted as the groups move, not as independent rows."""
    sd = float(lift.get("diff_sd_per_decision") or 0.0)
    return sd * float(np.sqrt(max(1.0, float(lift.get("design_effect") or 1.0))))


def _binding_lift(ev: dict) -> tuple[float, float, str, str] | None:
    """The smaller of the candidate's lifts over the best baseline and over the floor (the one that binds):
    ``(lift, sd of the paired difference, how the reasons name it, BASELINE or FLOOR)``."""
    lift = (ev.get("lift") or {}).get("money_per_decision")
    if not lift:
        return None
    cand = ev.get("champion_candidate")
    over_floor = (ev.get("lift_over_model_free") or {}).get(cand)
    options = [(lift["estimate"], _sd(ev["lift"]), f"the best baseline ({ev.get('best_baseline')})", BASELINE)]
    if over_floor:
        options.append((over_floor["estimate"], _sd(over_floor), "the best model-free policy", FLOOR))
    return min(options, key=lambda t: t[0])
