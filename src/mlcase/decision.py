"""The go/no-go decision: GO, USE_BASELINE, NO_GO or INCONCLUSIVE, with reasons in plain words.

The floor is the best *model-free* policy (chosen on the validation rows):
never act, act at random on the review capacity's share of cases, always act
(where capacity allows), the cost-optimal constant class or the prior, the
mean, median or cost-optimal quantile. Money is per decision on the test rows;
every lift has a paired bootstrap 95% CI. Rules, in order:

1. ``NO_GO`` when the value ceiling stopped the run (no model could pay for itself).
2. ``NO_GO`` when no model or learned baseline beats the best model-free policy
   with a CI above zero. The reasons say which policy that is and, for a binary
   decision, what acting at random saves over never acting ("a process
   decision, no model needed"), or that it does not pay either. Except: where the candidate's
   threshold flagged far fewer test rows than planned (one-sided binomial p < 0.05) and its
   ranking at the planned share of the test rows saves at least the bar of rule 4 over the
   floor, ``INCONCLUSIVE``: the test rows cannot tell a threshold that did not carry from a
   model that is not needed.
3. When the candidate breaks a constraint (latency): ``USE_BASELINE`` if the best
   learned baseline beats the floor, else ``NO_GO``. A latency verdict that
   depends on the margin says so, with the numbers.
4. ``GO`` when the candidate's lift over the best learned baseline *and* over the
   floor are each at least ``operating_cost + min_lift`` with CIs above zero.
5. ``INCONCLUSIVE`` when both point estimates clear that bar but a CI includes
   zero; the reasons say how many labelled rows, or how large an A/B test,
   would decide (statsmodels power at alpha 0.05, power 0.8, from the per-row
   cost spread).
6. Otherwise ``USE_BASELINE`` (a learned baseline beats the floor and the
   candidate does not pay for itself over it), or ``NO_GO`` when the best
   baseline is trivial or itself does not beat the floor (with rule 2's exception:
   a threshold that did not carry while the ranking pays is ``INCONCLUSIVE``).

Before rule 2, a GO or USE_BASELINE needs :data:`MIN_TEST_UNITS` test units (rows; a group split's groups; a ranking's lists whose
items are not all worth the same), else ``INCONCLUSIVE``, as is a NO_GO there while a model is ahead of the
floor, and any verdict where no test list's order matters. A binary case whose test rows hold fewer than
:data:`MIN_TEST_UNITS` rows of the class its costliest outcome falls on (:func:`rare_costliest`) is
``INCONCLUSIVE`` too, whatever its CIs say: they cannot be trusted there.

:func:`apply_decision` then moves the registry alias ``champion``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .case import Case
from .errors import ModelError
from .evaluate.calibration import regressed
from .formats import listing, p_value, signed
from .formats import money as _money_text

VERDICTS = ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
ALPHA, POWER = 0.05, 0.8
#: a bootstrap over fewer test units than this (rows; lists in a ranking case) is no evidence for a GO or a
#: USE_BASELINE, nor for a NO_GO where a model is ahead of the floor:
#: wooldridge::ncaa_rpi as a ranking (4 seasons of 84 teams) held out one season, and the "95% CI" of a
#: lift on one list was one point ($0.405 to $0.405), so the case went GO
MIN_TEST_UNITS = 10


@dataclass
class Decision:
    """A verdict, the bundle the ``champion`` alias should point at, and why."""

    verdict: str
    reasons: list[str]
    champion: str | None = None
    evidence: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "champion": self.champion,
                "evidence": self.evidence}


def _as_dict(obj) -> dict | None:
    if obj is None:
        return None
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _m(v: float | None, cur: str, digits: int = 2) -> str:
    return "n/a" if v is None else _money_text(v, cur, digits)


def _ci(d: dict, cur: str) -> str:
    if d["ci_low"] == d["ci_high"]:  # one test unit (or all alike): every resample gives the same value
        return f"{_m(d['estimate'], cur, 3)} (every resample gives this value: no CI)"
    return f"{_m(d['estimate'], cur, 3)} (95% CI {_m(d['ci_low'], cur, 3)} to {_m(d['ci_high'], cur, 3)})"


def _and(names: list[str], most: int = 2) -> str:
    """``a``, ``a and b``, ``a, b and 3 more``."""
    return listing(names, most)


# --------------------------------------------------------------------------- sample sizes
def rows_to_decide(effect: float, sd_diff: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Paired test rows needed so a per-row lift of ``effect`` (per-row difference sd ``sd_diff``) is detected.

    One-sample t-test power (statsmodels ``TTestPower``) on the per-row cost
    difference; None when the effect is not positive.
    """
    import math

    from statsmodels.stats.power import TTestPower

    if effect is None or effect <= 0 or not sd_diff or sd_diff <= 0:
        return None
    n = TTestPower().solve_power(effect_size=effect / sd_diff, alpha=alpha, power=power, alternative="two-sided")
    return int(math.ceil(float(n)))


def ab_sample_size(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Decisions per arm for an A/B test to detect a mean cost difference ``effect`` (per-row cost sd ``sd``).

    Two-sample t-test power (statsmodels ``TTestIndPower``), equal arms.
    """
    import math

    from statsmodels.stats.power import TTestIndPower

    if effect is None or effect <= 0 or not sd or sd <= 0:
        return None
    n = TTestIndPower().solve_power(effect_size=effect / sd, alpha=alpha, power=power, ratio=1.0,
                                    alternative="two-sided")
    return int(math.ceil(float(n)))



#: binary cells, the class each falls on, and how the reasons name the class
_CELLS = {"true_positive": True, "false_negative": True, "false_positive": False, "true_negative": False}


def rare_costliest(ev: dict, spec) -> dict | None:
    """The costliest binary outcome and how many test rows it can fall on, or None (other tasks; costs that are SQL
    expressions; a costliest amount of 0).

    The costliest cell is the one with the largest amount (in absolute value); it can fall only on the rows of one
    class (a false negative on the positives). The count of that class on the test rows is read off the model-free
    floor's cost: never acting costs ``(fn * positives + tn * negatives) / n`` (acting on every case, with tp and fp,
    where fn equals tn). Where the test holds fewer than :data:`MIN_TEST_UNITS` such rows, most of what the money
    CIs should spread over never happened on the test, and no resampling of the test rows brings it back. Measured
    by redrawing test sets from a cross-fitted logistic model's per-row costs over the whole table (the population),
    against never acting, PairedLifts' 95% CI of the saving (at the expanded level): AER::HMDA (a missed denial 600,
    a review 50; 1,800 draws of 40 to 160 rows) covered the population's saving in 53% of the draws holding 2
    denials or fewer, 89% with 3 or 4, 90% (of 919) with fewer than 10 and 96% (of 881) with 10 or more;
    modeldata::credit_data (a missed bad loan 1,500, a review 100; 1,000 draws of 40 and 80 rows) in 58% with 5
    or 6 bad loans, 92% (of 214) with fewer than 10 and 96% (of 786) with 10 or more.
    """
    if spec.task != "binary":
        return None
    amounts = {}
    for cell in _CELLS:
        v = getattr(spec.costs, cell, None)
        if isinstance(v, str):
            return None
        amounts[cell] = float(v or 0.0)
    cell = max(_CELLS, key=lambda c: (abs(amounts[c]), c == "false_negative"))
    if amounts[cell] == 0:
        return None
    n = int(ev.get("n_test") or 0)
    free = {p.get("kind"): p for p in (ev.get("model_free") or {}).values()}
    never, always = free.get("never"), free.get("always")
    fn, tn, tp, fp = (amounts[k] for k in ("false_negative", "true_negative", "true_positive", "false_positive"))
    if never and fn != tn and never.get("cost_per_decision") is not None:
        positives = n * (float(never["cost_per_decision"]) - tn) / (fn - tn)
    elif always and tp != fp and always.get("cost_per_decision") is not None and \
            float((always.get("params") or {}).get("rate", 1.0)) == 1.0:
        positives = n * (float(always["cost_per_decision"]) - fp) / (tp - fp)
    else:
        return None
    positives = int(round(positives))
    if not 0 <= positives <= n:
        return None
    pos = _CELLS[cell]
    label = spec.data.positive
    return {"cell": cell, "amount": amounts[cell], "class": "positive" if pos else "negative",
            "label": None if label is None else str(label), "test_rows": positives if pos else n - positives,
            "n_test": n, "min_rows": MIN_TEST_UNITS}


def _rare_reasons(ev: dict, rare: dict, floor: dict, over_floor: dict, cur: str) -> list[str]:
    k, n, cls = rare["test_rows"], rare["n_test"], rare["class"]
    which = f"{cls} ({rare['label']!r})" if rare["label"] is not None and cls == "positive" else cls
    if rare["label"] is not None and cls == "negative":
        which = f"negative (not {rare['label']!r})"
    cand, best = ev["champion_candidate"], ev["best_baseline"]
    lines = [f"the costliest outcome, a {rare['cell'].replace('_', ' ')} at {_m(rare['amount'], cur, 0)}, can fall "
             f"only on the {which} test rows, and the test holds {k} of its {n:,} rows: with fewer than "
             f"{rare['min_rows']} the money CIs cannot be trusted (test sets redrawn from AER::HMDA holding fewer than "
             "10 denials covered the true saving in 90% of draws, 53% with 2 or fewer, against 96% with 10 or more)"]
    for name in dict.fromkeys([cand, best]):
        if name in over_floor:
            lines.append(f"on these rows {name} saves {_ci(over_floor[name], cur)} per decision over "
                         f"{floor['description']}")
    test_size = float(ev.get("test_size") or 0.2)
    if k > 0:
        total = int(-(-rare["min_rows"] * n // k) / test_size)
        more = max(0, total - int(ev.get("n_labelled") or 0))
        lines.append(f"hold out at least {rare['min_rows']} {cls} test rows: at their share of the test ({k / n:.1%}) "
                     f"and test_size {test_size:g}, about {total:,} labelled rows, {more:,} more than now")
    else:
        lines.append(f"hold out at least {rare['min_rows']} {cls} test rows: more labelled rows, or a larger "
                     "split.test_size")
    lines.append("the champion alias stays where it is until then")
    return lines

def design_effect_of(ev: dict, d: dict, sd_diff: float) -> float | None:
    """The design effect of one lift ``d`` (``estimate``, ``ci_low``, ``ci_high``, maybe ``design_effect``): the
    variance of the design the evaluation resampled over that of independent rows, by which the rows needed grow.

    A group split's is in the lift (cluster-robust over independent-rows variance). A time split resampled in
    runs of consecutive rows (``resampled.unit == "time block"``) has none in the JSON: it is read off the CI, the
    block bootstrap's standard error ``(ci_high - ci_low) / (2 z)`` (``z`` at the evaluation's percentile level)
    over the rows' ``sd_diff / sqrt(n_test)``. ggplot2::txhousing by year, 66 blocks of 30 months: the sample
    size counted rows as independent (design effect 1) though the blocks' CI was wider than the rows' one.
    """
    if d.get("design_effect"):
        return float(d["design_effect"])
    by = ev.get("resampled") or {}
    n = int(ev.get("n_test") or 0)
    width = float(d.get("ci_high", 0.0) or 0.0) - float(d.get("ci_low", 0.0) or 0.0)
    if by.get("unit") != "time block" or n < 2 or not sd_diff or sd_diff <= 0 or width <= 0:
        return None
    from scipy.stats import norm

    level = float((ev.get("lift") or {}).get("percentile_level") or 0.95)
    se_blocks = width / (2 * float(norm.ppf(0.5 + level / 2)))
    return float((se_blocks / (sd_diff / n ** 0.5)) ** 2)


def _what_would_decide(ev: dict, effect: float, sd_diff: float, sd_pooled: float, cur: str,
                       deff: float | None = None) -> tuple[str, dict]:
    """``deff``: the design effect of the lift (:func:`design_effect_of`: rows of one group, or of one run in time,
    move together), by which the test rows needed grow."""
    n_rows = rows_to_decide(effect, sd_diff)
    if n_rows is not None and deff and deff > 1:
        import math

        n_rows = int(math.ceil(n_rows * deff))
    n_arm = ab_sample_size(effect, sd_pooled)
    info = {"effect_per_decision": effect, "sd_diff_per_decision": sd_diff, "sd_cost_per_decision": sd_pooled,
            "alpha": ALPHA, "power": POWER, "test_rows_needed": n_rows, "ab_per_arm": n_arm,
            **({"design_effect": deff} if deff else {})}
    if n_rows is None and n_arm is None:
        return "", info
    parts = []
    if n_rows is not None:
        test_size = ev.get("test_size") or 0.2
        total = int(n_rows / test_size)
        more = max(0, total - int(ev.get("n_labelled") or 0))
        info.update(labelled_rows_needed=total, more_labelled_rows=more)
        unit = ev.get("unit", "row")  # ranking: lists
        by = ev.get("resampled") or {}
        grouped = "" if not (deff and deff > 1) else (
            f", counting runs of {by.get('block_length')} consecutive rows in '{by.get('column')}' order as the "
            f"design effect {deff:.3g} says their costs move together in time" if by.get("unit") == "time block" else
            f", counting rows of one {by.get('column')} as the design effect {deff:.3g} says they move together")
        parts.append(f"about {n_rows:,} test {unit}s (the test set has {ev['n_test']:,}{grouped}); at test_size "
                     f"{test_size:g} that is about {total:,} labelled {unit}s, {more:,} more than now")
    if n_arm is not None:
        vol = ev.get("volume")
        when = ""
        if vol and vol.get("count"):
            periods = 2 * n_arm / vol["count"]
            info["ab_periods"] = periods
            when = (f", about {periods:,.0f}" if periods >= 10 else f", about {periods:.2g}") + (
                f" {vol['period']}(s) of traffic at {vol['count']:,.0f} per {vol['period']}")
        parts.append(f"an A/B test with about {n_arm:,} decisions per arm ({2 * n_arm:,} in all{when})")
    text = (f"to detect a lift of {_m(effect, cur, 3)} per decision (alpha {ALPHA}, power {POWER}; per-row cost "
            f"sd {_m(sd_pooled, cur, 2)}, paired difference sd {_m(sd_diff, cur, 2)}) would take "
            + ", or ".join(parts))
    if n_rows is not None and n_rows > 100 * max(int(ev.get("n_test") or 1), 1):
        info["impractical"] = True
        text += ("; that is impractical: a lift this small hardly matters for the decision. Set "
                 "constraints.min_lift to the smallest lift worth having, and a lift below it becomes USE_BASELINE")
    return text, info


# --------------------------------------------------------------------------- decide
def decide(case: Case, ceiling, evaluation, analysis: dict | None = None, bakeoff: dict | None = None) -> Decision:
    """GO / USE_BASELINE / NO_GO / INCONCLUSIVE from the value ceiling and the evaluation.

    Parameters
    ----------
    case : Case
    ceiling : Ceiling or dict or None
        :func:`mlcase.evaluate.value_ceiling`; when it stopped, the verdict is
        NO_GO and ``evaluation`` may be None.
    evaluation : Evaluation or dict or None
        :func:`mlcase.evaluate.evaluate` (or its ``to_dict()``).
    analysis : dict, optional
        :func:`mlcase.analysis.analyze`: its ``reasons`` are added (a slice that loses money
        with the hybrid that would fix it, for any verdict; for ``INCONCLUSIVE``, how many more
        labelled rows the learning curve expects would settle it). They never change the verdict.
    bakeoff : dict, optional
        The bake-off's record (``BakeoffResult.to_dict()``). Where its time box ran out before some
        candidate families were tried, a USE_BASELINE or NO_GO is INCONCLUSIVE instead: the search
        that would have to find a better model never ran (the verdict on what it did try is kept
        in the reasons and the evidence).

    Returns
    -------
    Decision
        ``champion`` names the bundle the ``champion`` alias should point at
        (GO: the candidate; USE_BASELINE: the best baseline; else None).
    """
    spec = case.spec
    cur = spec.costs.currency
    ceil = _as_dict(ceiling)
    if ceil and ceil.get("stop"):
        return Decision("NO_GO", ["the value ceiling stopped the run before training", *ceil.get("reasons", [])],
                        None, {"ceiling": ceil, "stopped_at": "value ceiling"})
    ev = _as_dict(evaluation)
    if ev is None:
        raise ModelError("decide: there is no evaluation to decide on and the value ceiling did not stop the run",
                         "evaluate the candidate first (mlcase.evaluate.evaluate)")

    cand, best = ev["champion_candidate"], ev["best_baseline"]
    floor = _floor(ev)
    best_is_trivial = best not in (ev.get("nontrivial_baselines") or [])
    cost = ev["cost_per_decision"]
    sd = ev.get("cost_sd_per_decision") or {}
    over_floor = ev.get("lift_over_model_free") or ev.get("lift_over_trivial") or {}
    beats = sorted((n for n, d in over_floor.items() if d["ci_low"] > 0), key=lambda n: cost[n])
    latency = ev.get("latency") or {}
    evidence = _evidence(ev, spec, ceil, floor, over_floor, beats)
    extra = (analysis or {}).get("reasons") or {}
    if analysis:
        evidence["analysis"] = {"losing_slices": (analysis.get("slices") or {}).get("losing", []),
                                "settle": analysis.get("settle")}

    starved = _starved(bakeoff)

    def done(verdict, reasons, champion=None):
        # the slice alerts are of the model the verdict makes champion (a USE_BASELINE: the best baseline's own)
        more = [*extra.get("any", []), *extra.get(verdict, []), *_notes(ev, cur, champion)]
        if starved and verdict in ("USE_BASELINE", "NO_GO"):
            # openintro::london_boroughs: a 20 s budget went to the baselines and logistic's defaults, no boosted
            # family ran, and USE_BASELINE read as if the search had found nothing better than the baseline
            evidence.update(unsearched=starved[0], verdict_on_what_ran=verdict)
            return Decision("INCONCLUSIVE", [
                f"the search is incomplete: {starved[1]}",
                f"on what it tried the verdict would be {verdict}: {reasons[0]}",
                *(r.removesuffix("; use it") for r in reasons[1:]), *more,
                "the champion alias stays where it is until then"], None, evidence)
        if starved:
            evidence["unsearched"] = starved[0]
            more.append(f"the search is incomplete: {starved[1]}")
        return Decision(verdict, [*reasons, *more], champion, evidence)

    # a CI resampled from a handful of test units is no evidence, for a baseline as for the candidate, and for a
    # NO_GO while a model is ahead of the floor: "no model needed" would be as unearned as a GO (wooldridge::vote1
    # ranked by state, 6 test lists: NO_GO beside a saving of $0.124 per list, 95% CI $0.000 to $0.372)
    n_units, unit = int(ev.get("n_test") or 0), ev.get("unit", "row")
    if ev.get("n_test_ordered") is not None:
        # a ranking's evidence is in the lists some order is worth more than another: a list whose items are all
        # equally relevant costs every policy the same (ISLR::Auto's origin ranked by cylinders held out one list,
        # of American cars only, and read NO_GO: "the candidate costs exactly what a random order costs")
        n_units = int(ev["n_test_ordered"])
        if n_units == 0:
            n = int(ev.get("n_test") or 0)
            return done("INCONCLUSIVE", [
                f"none of the {n} test list{'s' if n != 1 else ''} can tell one order from another: every item of "
                f"{'each' if n != 1 else 'it'} is worth the same (all relevant alike, or none relevant), so every "
                "model, baseline and model-free order is worth the same on the test",
                "hold out lists whose items differ in relevance: more labelled lists, a larger split.test_size, or "
                "a ranking.relevant_from that tells the items apart",
                "the champion alias stays where it is until then"])
    resampled = ev.get("resampled") or {}
    if resampled.get("unit") == "group":
        # a group split's CIs resample whole test groups: its evidence is in how many there are, not in their rows
        # (modeldata::hpc_data split by protocol holds out 4 of 14 protocols, 1,100 rows, and read USE_BASELINE; over
        # draws of 3 protocols a row-resampled 95% CI of a fixed model's saving covered its saving on the other
        # protocols in 14% of 300)
        n_units, unit = int(resampled["n_test_groups"]), f"{resampled.get('column') or 'data.group'} value"
    ahead = beats or sorted((n for n, d in over_floor.items() if (d.get("estimate") or 0) > 0), key=lambda n: cost[n])
    if ahead and n_units < MIN_TEST_UNITS:
        held = f"{n_units} {unit}{'s' if n_units != 1 else ''}"
        if resampled.get("unit") == "group":
            held += f" ({int(ev.get('n_test') or 0):,} rows; the CIs resample whole groups)"
        elif n_units != int(ev.get("n_test") or 0):  # a ranking's lists whose items are all worth the same
            held += f" whose order matters (of {int(ev.get('n_test') or 0)})"
        few = f"the test holds {held}: a CI resampled from fewer than {MIN_TEST_UNITS} is no evidence"
        # one test list (Stat2Data::Goldenrod, 1 list): every resample is that list, and "with a CI above zero"
        # stood beside "every resample gives this value: no CI"
        spread = any(over_floor[n]["ci_low"] != over_floor[n]["ci_high"] for n in beats)
        lead = (f"{_and(beats)} beat{'s' if len(beats) == 1 else ''} the best model-free policy ({floor['description']}) "
                f"{'with a CI above zero' if spread else 'in every resample (all alike: no CI)'}, but {few}" if beats else
                f"{_and(ahead)} save{'s' if len(ahead) == 1 else ''} money over the best model-free policy "
                f"({floor['description']}) with a CI that includes zero, and {few} either way")
        return done("INCONCLUSIVE", [
            lead, *[f"{n} saves {_ci(over_floor[n], cur)} per decision over it" for n in ahead[:2]],
            f"hold out at least {MIN_TEST_UNITS} test {unit}s (more labelled {unit}s, or a larger split.test_size)"
            if resampled.get("unit") != "group" else
            f"hold out at least {MIN_TEST_UNITS} test {unit}s (rows of more {unit}s, or a larger split.test_size)",
            "the champion alias stays where it is until then"])

    # a binary test set that holds few rows of the class the costliest outcome falls on: its money CIs cannot be
    # trusted, whatever they say (see rare_costliest)
    rare = rare_costliest(ev, spec)
    if rare and rare["test_rows"] < MIN_TEST_UNITS:
        evidence["rare_costliest"] = rare
        return done("INCONCLUSIVE", _rare_reasons(ev, rare, floor, over_floor, cur))

    # 2. does anything beat the best model-free policy?
    if not beats:
        short = _short_of_plan(ev, spec, floor, cur)
        if short:
            return done("INCONCLUSIVE", short)
        reasons, info = _nothing_beats_the_floor(ev, cand, best, floor, over_floor, sd_of(sd, cand, floor), cur)
        if info:
            evidence["to_decide"] = info
        return done("NO_GO", reasons)

    # 3. constraints
    if latency.get("ok") is False:
        reasons = [_latency_line(cand, latency, broken=True)]
        if not best_is_trivial and best in beats:
            reasons.append(f"the best baseline ({best}) saves {_ci(over_floor[best], cur)} per decision over "
                           f"{floor['description']} (the best model-free policy); use it")
            return done("USE_BASELINE", reasons, best)
        reasons.append("and no learned baseline beats the best model-free policy")
        return done("NO_GO", reasons)

    # 4-6. the candidate against the best learned baseline and the floor
    verdict, reasons, champion, info = _judge(ev, spec, floor, over_floor, beats, best_is_trivial, cur)
    if info is not None:
        evidence["to_decide"] = info
    return done(verdict, reasons, champion)


def _starved(bakeoff: dict | None) -> tuple[list[str], str] | None:
    """The candidate families the bake-off never tried for lack of time, and what to say of it."""
    from .bakeoff.timebox import search_starved, unsearched

    bakeoff = bakeoff or {}
    families = bakeoff.get("families") or {}
    said = search_starved(bakeoff.get("phases") or {}, float(bakeoff.get("budget_s") or 0), families,
                          bool(bakeoff.get("interrupted")))
    return (unsearched(families), said) if said else None


def _evidence(ev: dict, spec, ceil: dict | None, floor: dict, over_floor: dict, beats: list) -> dict[str, Any]:
    """The numbers a decision rests on (stored with it and in the registry)."""
    latency = ev.get("latency") or {}
    op = float(ev["operating_cost"]["per_decision"])
    min_lift = float(spec.constraints.min_lift)
    cand = ev["champion_candidate"]
    evidence: dict[str, Any] = {
        "candidate": cand, "best_baseline": ev["best_baseline"], "trivial_baseline": floor["name"],
        "best_model_free": floor["name"], "cost_per_decision": ev["cost_per_decision"],
        "lift_money_per_decision": ev["lift"]["money_per_decision"], "lift_metric": ev["lift"]["metric"],
        "lift_over_model_free": over_floor.get(cand), "required_per_decision": op + min_lift,
        "operating_cost_per_decision": op, "min_lift": min_lift, "beats_trivial": beats, "beats_model_free": beats,
        "latency_ok": latency.get("ok"), "latency_depends_on_margin": bool(latency.get("depends_on_margin")),
        "value_per_period": ev.get("value_per_period"), "n_test": ev.get("n_test"),
    }
    if ceil:
        evidence["ceiling"] = {k: ceil.get(k) for k in ("max_saving_per_decision", "required_per_decision",
                                                       "best_current", "stop")}
    return evidence


def _judge(ev: dict, spec, floor: dict, over_floor: dict, beats: list, best_is_trivial: bool, cur: str):
    """Rules 4-6: ``(verdict, reasons, champion, to_decide)`` from the lifts over the best baseline and the floor."""
    cand, best = ev["champion_candidate"], ev["best_baseline"]
    lift, metric, cost = ev["lift"]["money_per_decision"], ev["lift"]["metric"], ev["cost_per_decision"]
    sd = ev.get("cost_sd_per_decision") or {}
    latency = ev.get("latency") or {}
    op = float(ev["operating_cost"]["per_decision"])
    min_lift = float(spec.constraints.min_lift)
    required = op + min_lift
    cand_floor = over_floor.get(cand) or {"estimate": -1.0, "ci_low": -1.0, "ci_high": -1.0}
    binding = min((lift, ev["lift"].get("diff_sd_per_decision") or 0.0, f"the best baseline ({best})"),
                  (cand_floor, cand_floor.get("diff_sd_per_decision") or 0.0,
                   f"{floor['description']} (the best model-free policy)"), key=lambda t: t[0]["estimate"])
    L, sd_diff, versus = binding[0]["estimate"], binding[1], binding[2]
    sd_pooled = float(((sd.get(cand, 0.0) ** 2 + sd.get(best, 0.0) ** 2) / 2) ** 0.5)
    role = "the best baseline" if not best_is_trivial else "the trivial baseline"
    unit = ev.get("unit", "row")  # ranking: a decision is a list
    lift_line = (f"the candidate ({cand}) costs {_m(cost[cand], cur, 3)} per decision on {ev['n_test']:,} test {unit}s "
                 f"against {_m(cost[best], cur, 3)} for {role} ({best}): a lift of {_ci(lift, cur)}")
    floor_line = (f"over {floor['description']} (the best model-free policy, {_m(floor['cost'], cur, 3)} per "
                  f"decision) the candidate saves {_ci(cand_floor, cur)}")
    # never scientific: causaldata::gapminder's population read "rmse lift +9.675e+07"
    metric_line = (f"{metric['name']} lift {signed(metric['estimate'])} (95% CI {signed(metric['ci_low'])} to "
                   f"{signed(metric['ci_high'])}; positive favours the candidate)")
    need_line = (f"the model must add {_m(required, cur, 3)} per decision (operating cost {_m(op, cur, 3)} + "
                 f"min_lift {_m(min_lift, cur, 3)})")
    both_clear = lift["ci_low"] > 0 and cand_floor["ci_low"] > 0
    if L >= required and both_clear:
        reasons = [lift_line, floor_line, f"{need_line}; the lift over {versus} clears it and both CIs exclude "
                                          "zero", metric_line]
        value = ev.get("value_per_period")
        if value:
            # whole money where the amounts are large; cents (and below a cent, three digits) where they are not
            d = 0 if max(abs(value[k] or 0) for k in ("expected", "low", "high")) >= 100 else 2
            reasons.append(f"value per {value['period']} at {value['decisions']:,.0f} decisions: "
                           f"{_m(value['expected'], cur, d)} expected (range {_m(value['low'], cur, d)} to "
                           f"{_m(value['high'], cur, d)}), {_m(value['net_expected'], cur, d)} after operating cost")
        if latency.get("ok"):
            reasons.append(_latency_line(cand, latency, broken=False))
        return "GO", reasons, cand, None
    if L >= required and L > 0:
        reasons = [lift_line, floor_line, f"{need_line}; the point estimate over {versus} clears it but a 95% CI "
                                          "includes zero, so the evidence cannot decide", metric_line]
        deff = design_effect_of(ev, {**binding[0], **({"design_effect": ev["lift"]["design_effect"]} if binding[0]
                                                      is lift and ev["lift"].get("design_effect") else {})}, sd_diff)
        text, info = _what_would_decide(ev, L, sd_diff, sd_pooled, cur, deff)
        if text:
            reasons.append(text[0].upper() + text[1:])
        reasons.append("the champion alias stays where it is until then")
        return "INCONCLUSIVE", reasons, None, info
    same = all(d[k] == 0 for d in (lift, metric) for k in ("estimate", "ci_low", "ci_high"))
    # "the same model" was said of LightGBM's LambdaRank and the linear baseline on ordinal::soup, whose lists
    # differ only by item: two models that give the same answers, not one
    why = (f"the candidate ({cand}) scores exactly as the best baseline ({best}) on every test {unit}: it answers "
           "as the baseline does, so there is nothing to gain over it" if same else
           f"the candidate does not beat {versus}" if L <= 0 else
           f"{need_line}; the lift over {versus} does not pay for operating the model")
    if best_is_trivial or best not in beats:
        served = (f"neither the candidate nor the best baseline ({best}) beats {floor['description']}"
                  if binding[0] is cand_floor else
                  f"the candidate does not beat {versus}, and the best baseline ({best}) does not beat "
                  f"{floor['description']}")
        short = _short_of_plan(ev, spec, floor, cur, as_served=served)
        if short:  # "nothing is worth deploying" is not what the test rows show either
            return "INCONCLUSIVE", [lift_line, floor_line, *short], None, None
        reasons = [lift_line, floor_line, why,
                   f"the best baseline ({best}) is trivial or does not beat the best model-free policy, so nothing "
                   "is worth deploying"]
        return "NO_GO", reasons, None, None
    reasons = [lift_line, floor_line, why, *([] if same else [metric_line]),
               f"the baseline ({best}) saves {_ci(over_floor[best], cur)} per decision over {floor['description']} "
               "(the best model-free policy); use it"]
    return "USE_BASELINE", reasons, best, None


def sd_of(sd: dict, name: str, floor: dict) -> float:
    """Pooled per-row cost sd of a bundle and the floor policy."""
    return float(((sd.get(name, 0.0) ** 2 + (floor.get("sd") or 0.0) ** 2) / 2) ** 0.5)


def _floor(ev: dict) -> dict:
    """The best model-free policy of an evaluation: name, description, test cost and sd."""
    name = ev.get("best_model_free") or ev.get("trivial_baseline")
    info = (ev.get("model_free") or {}).get(name)
    if info is None:  # an evaluation from before model-free policies: a trivial bundle
        return {"name": name, "description": f"the trivial baseline ({name})",
                "cost": (ev.get("cost_per_decision") or {}).get(name), "sd": (ev.get("cost_sd_per_decision") or
                                                                           {}).get(name), "kind": None}
    return {"name": name, "description": info["description"], "cost": info["cost_per_decision"],
            "sd": info.get("cost_sd_per_decision"), "kind": info.get("kind")}


def _short_of_plan(ev: dict, spec, floor: dict, cur: str, as_served: str | None = None) -> list[str] | None:
    """INCONCLUSIVE reasons where nothing beats the floor as served only because the candidate's threshold flagged
    far fewer test rows than planned, while its ranking at the planned rate pays; else None.

    palmerpenguins::penguins_raw (`Sex`, 58 validation rows, a time split): the threshold cut at the validation
    rows' fifth-highest score flagged 1 test row in 71 against 8.6% planned, and the case read NO_GO, "a process
    decision, no model needed", beside a logistic regression with a test AUC of 0.979. Whether the threshold
    carries is what the test rows could not tell; that the ranking pays, they did.

    ``as_served`` says what the served models did not do (default: no model beats the floor with a CI above zero).
    modeldata::two_class_dat: another candidate family beat the floor, so rule 2 passed, and rules 4-6 read NO_GO,
    "nothing is worth deploying", while the champion candidate had flagged 3.8% of the test rows against 9.4%.
    """
    cap = ev.get("capacity_check") or {}
    at = cap.get("at_planned_rate")
    if not (cap.get("test_under_plan") and at):
        return None
    d = at["over_floor"]
    required = float(ev["operating_cost"]["per_decision"]) + float(spec.constraints.min_lift)
    if not (d["estimate"] >= required and d["estimate"] > 0):
        return None
    cand = ev["champion_candidate"]
    served = (ev.get("lift_over_model_free") or {}).get(cand)
    pays = d["ci_low"] > 0
    reasons = [
        f"as served, {as_served or 'no model beats ' + floor['description'] + ' with a CI above zero'}, but the "
        f"candidate's ({cand}) "
        f"threshold did not carry to the test rows: it flagged {100 * cap['test_flag_rate']:.3g}% of them against "
        f"the {100 * cap['valid_flag_rate']:.3g}% it flagged on the validation rows (binomial p "
        f"{p_value(cap['test_under_plan_p'])}), so 'no model needed' is not what they show",
        f"flagging {100 * at['flag_rate']:.3g}% of the test rows by the candidate's score (the planned share) saves "
        f"{_ci(d, cur)} per decision over it" + (f", against {_ci(served, cur)} as served" if served else "")
        + (": its ranking pays; whether its threshold carries is what the test rows could not settle" if pays else
           ": the point estimate clears the bar, but a 95% CI includes zero")]
    if not pays:
        sd_pooled = sd_of(ev.get("cost_sd_per_decision") or {}, cand, floor)
        text, _ = _what_would_decide(ev, d["estimate"], d.get("diff_sd_per_decision") or 0.0, sd_pooled, cur,
                                     design_effect_of(ev, d, d.get("diff_sd_per_decision") or 0.0))
        if text:
            reasons.append(text[0].upper() + text[1:])
    reasons += [f"the threshold is cut among the top scores of {ev.get('n_valid'):,} validation rows: a larger "
                "validation part (split.valid_size) would cut it from more of them; after launch, watch the flag "
                "rate", "the champion alias stays where it is until then"]
    return reasons


def _nothing_beats_the_floor(ev: dict, cand: str, best: str, floor: dict, over_floor: dict, sd_pooled: float,
                             cur: str) -> tuple[list[str], dict | None]:
    """NO_GO reasons when nothing beats the best model-free policy with a CI above zero."""
    reasons = [f"no model beats {floor['description']}: no model or learned baseline saves money over it with "
               "a 95% CI above zero"]
    for role, name in (("the candidate", cand), ("the best baseline", best)):
        if name in over_floor and not (role == "the best baseline" and name == cand):
            reasons.append(_versus_floor(f"{role} ({name})", over_floor[name], floor, cur, ev.get("unit", "row")))
    fv = ev.get("floor_vs_never")
    if fv and fv["policy"] == floor["name"] and fv["estimate"] > 0:
        reasons.append(f"{fv['description']} alone saves {_ci(fv, cur)} per decision over never acting: "
                       "a process decision, no model needed")
    elif fv and floor["name"] == "do_nothing":
        cost = (f"it would cost {_m(-fv['estimate'], cur, 3)} more per decision than never acting (95% CI "
                f"{_m(-fv['ci_high'], cur, 3)} to {_m(-fv['ci_low'], cur, 3)})" if fv["estimate"] < 0 else
                "it saves nothing over never acting")
        reasons.append(f"{fv['description']} does not pay either: {cost}, so the process stays as it is and no "
                       "model is needed")
    elif floor.get("kind") is not None and floor["name"] != "do_nothing":
        reasons.append(f"{floor['description']} needs no model: keep the process model-free")
    info = None
    d = over_floor.get(cand)
    if d and d["estimate"] > 0:
        text, info = _what_would_decide(ev, d["estimate"], d.get("diff_sd_per_decision") or 0.0, sd_pooled, cur,
                                        design_effect_of(ev, d, d.get("diff_sd_per_decision") or 0.0))
        if text:
            reasons.append(f"if the candidate's small saving is real, {text}")
    return reasons, info


def _versus_floor(who: str, d: dict, floor: dict, cur: str, unit: str = "row") -> str:
    if d["estimate"] == d["ci_low"] == d["ci_high"] == 0:
        return f"{who} costs exactly what {floor['description']} costs on every test {unit}"
    return f"{who} saves {_ci(d, cur)} per decision over it"


def _latency_line(cand: str, lat: dict, broken: bool) -> str:
    gate = lat.get("gate_ms", lat.get("single_p95_ms"))
    how = (f"best of {lat['n_windows']} windows after warm-up, {lat.get('gate')}; windows "
           f"{lat['single_p95_spread_ms'][0]:.2f} to {lat['single_p95_spread_ms'][1]:.2f} ms wall clock"
           if "n_windows" in lat else "one window")
    path = lat.get("single_path")
    if path:   # what a single row was timed through: the server's compiled fast path, or the pipeline
        how = f"through the {path}{' the server answers one record with' if path != 'pipeline' else ''}; {how}"
    if broken:
        line = (f"the candidate ({cand}) breaks the latency constraint: single-row p95 {gate:.2f} ms ({how}) > "
                f"latency_p95_ms {lat['limit_p95_ms']:g} ms")
    else:
        line = f"latency holds: single-row p95 {gate:.2f} ms ({how}) <= {lat['limit_p95_ms']:g} ms"
    if lat.get("depends_on_margin") and lat.get("margin_note"):
        line += f"; {lat['margin_note']}"
    return line


# A candidate this good on this many test rows is more often a leak than an easy decision
NEAR_PERFECT = {"roc_auc": 0.995, "accuracy": 0.99, "r2": 0.995}
NEAR_PERFECT_MIN_TEST = 100
NEAR_PERFECT_MAJORITY = 0.95  # ... accuracy only where the majority class is not this share of the rows
NEAR_PERFECT_MIN_LISTS = 20   # ranking: test lists ...
NEAR_PERFECT_VALUE = 0.995    # ... worth this share of the best order of their items (ordinary rankers: 0.75 to 0.93)


def near_perfect(ev: dict) -> str | None:
    """A caveat when the candidate's test metric is near-perfect, or None.

    A leakage warning (one feature at 0.95 to 0.98) lets a run go on, and the model then reads
    the leak: on Ecdat::Fishing, ``catch`` is the catch rate of the mode the angler chose (a
    warning at 0.976), and the candidate is right on 99.6% of the test rows against 84% without
    it (``tests/realdata/test_near_perfect.py``). The reasons must say so beside the GO.
    """
    metrics = ev.get("metrics") or {}
    cand = metrics.get(ev.get("champion_candidate")) or {}
    n = int(ev.get("n_test") or 0)
    if ev.get("task") == "ranking":
        return _near_perfect_lists(cand, n)
    if n < NEAR_PERFECT_MIN_TEST:
        return None
    for name, bar in NEAR_PERFECT.items():
        v = cand.get(name)
        if v is None or not v == v or v < bar:
            continue
        if name == "accuracy" and (ev.get("task") == "binary" or (metrics.get("majority") or {}).get(
                "accuracy", 0.0) >= NEAR_PERFECT_MAJORITY):
            continue  # binary is judged on AUC; where one class is nearly every row, accuracy says nothing
        return (f"near-perfect on test ({name} {v:.4f} on {n:,} rows): real decisions are rarely this easy. Check "
                "that no feature is recorded after, or computed from, the outcome before trusting this model: the "
                "data checks' target_leakage warnings name the likeliest, and the report's SHAP importance shows "
                "which features carry the model")
    return None


def _near_perfect_lists(cand: dict, lists: int) -> str | None:
    """A ranking candidate whose test lists are worth the best order of their items: openintro::mlb_teams ranked
    by year ordered all 24 test seasons as well as their wins do (cost $0.000) and went GO without a word, where
    `losses` (games minus wins) and the division `rank` order each season by themselves. The per-column leakage
    checks look across lists, not within them."""
    value, ideal = cand.get("value_per_list"), cand.get("ideal_value_per_list")
    if lists < NEAR_PERFECT_MIN_LISTS or not value or not ideal or ideal <= 0 or value < NEAR_PERFECT_VALUE * ideal:
        return None
    return (f"near-perfect on test (the candidate's lists are worth {value / ideal:.1%} of the best order of their items, "
            f"on {lists:,} lists): real decisions are rarely this easy. Check that no feature orders each list by itself "
            "because it is recorded after, or computed from, the outcome (a rank within the list, a count the outcome "
            "adds to) before trusting this model: the report's SHAP importance shows which features carry it")


def _notes(ev: dict, cur: str, champion: str | None = None) -> list[str]:
    """Caveats that do not change the verdict: a near-perfect candidate, slice gaps (of the champion where the verdict
    sets one that is not the candidate, else of the candidate), small slices, capacity on test."""
    from .evaluate.slices import slices_of

    out = [note] if (note := near_perfect(ev)) else []
    own = slices_of(ev, champion) if champion and champion != ev.get("champion_candidate") else {}
    slices = own or ev.get("slices") or {}
    # AER::HMDA's USE_BASELINE read "slice alert: afam: demographic parity difference 0.252", lightgbm's, beside
    # linear made champion (0.196): name the model where it is not the candidate
    whose = f" ({champion}, the champion)" if own else ""
    for flag in slices.get("flags", []):
        out.append(f"slice alert{whose}: {flag}")
    for col, info in (slices.get("columns") or {}).items():
        for note in info.get("notes") or []:
            out.append(f"slice {col}{whose}: {note}")
        small = info.get("insufficient") or []
        if small:
            # a ranking's slices are of lists (Ecdat::PatentsRD read "no new items has fewer than 30 test rows")
            # a ranking's are counted in its lists with a relevant item (Stat2Data::Blood1 read "fewer than 30
            # test lists" of 37)
            counted = slices.get("counted") or f"test {slices.get('unit') or 'row'}s"
            # values quoted: nlme::Phenobarb's ApgarInd read "slice ApgarInd: < 5, >= 5 have fewer than ..."
            out.append(f"slice {col}: {', '.join(repr(str(v)) for v in small[:5])} "
                       f"{'has' if len(small) == 1 else 'have'} fewer than {slices.get('min_slice_size')} {counted}: "
                       "insufficient evidence, no verdict for them")
    cap = ev.get("capacity_check") or {}
    held = cap.get("held_to_capacity") or {}
    if cap.get("test_over_capacity") and ev.get("champion_candidate") not in held:   # else said once, below
        out.append(f"the threshold chosen on validation flags {100 * cap['test_flag_rate']:.3g}% of test rows, "
                   f"above the review capacity {100 * cap['capacity']:.3g}%; watch the flag rate in monitoring")
    elif cap.get("test_under_plan"):
        out.append(f"the threshold chosen on validation flags {100 * cap['test_flag_rate']:.3g}% of test rows against "
                   f"the {100 * cap['valid_flag_rate']:.3g}% it flagged there (binomial p {p_value(cap['test_under_plan_p'])})"
                   ": part of the review capacity goes unused (scores that crowd at the cut do this), and the test "
                   "cost counts the cases it leaves unflagged; watch the flag rate in monitoring")
    for name, h in held.items():
        out.append(f"{name} flagged {100 * h['test_flag_rate']:.3g}% of the test rows, clearly above the review "
                   f"capacity {100 * cap['capacity']:.3g}% (binomial p {p_value(h['over_capacity_p'])}): what it saves "
                   f"over the best model-free policy is counted as reviewers can serve it, its top "
                   f"{100 * cap['capacity']:.3g}% by score flagged ({_ci(h['over_floor'], cur)} per decision); watch the "
                   "flag rate in monitoring")
    cal = ev.get("calibration") or {}
    if cal.get("applied"):
        before, after = cal.get("ece_test_before", float("nan")), cal.get("ece_test_after", float("nan"))
        line = (f"the candidate was calibrated ({cal.get('method')}) on the validation rows: test ECE "
                f"{before:.4f} -> {after:.4f}")
        if cal.get("log_loss_test_before") is not None and cal.get("log_loss_test_after") is not None:
            line += f", log loss {cal['log_loss_test_before']:.4f} -> {cal['log_loss_test_after']:.4f}"
        worse = regressed(cal)
        if worse:
            # Ecdat::Yogurt (4 brands): sigmoid won on the validation rows' cross-fit, then doubled the test ECE,
            # and the reason read like an improvement; fpp2::elecdaily: isotonic lowered the test ECE and raised the
            # test log loss (1.424; 0.189 bounded, against 0.149 uncalibrated), and the line gave the ECE alone
            line += (f"; it did not carry over to the test rows (its {' and '.join(worse)} rose; calibration was "
                     "chosen on the validation rows alone): set evaluation.calibrate: none to keep the model's "
                     "own scores")
        out.append(line)
    return out


# --------------------------------------------------------------------------- registry
def apply_decision(case: Case, decision, versions: dict) -> dict:
    """Move the registry alias ``champion`` as the decision says.

    GO points it at ``versions["candidate_version"]``; USE_BASELINE at the
    decision's baseline (``versions["by_name"][name]``,
    ``versions[f"{name}_version"]`` or ``versions["baseline_version"]``);
    NO_GO and INCONCLUSIVE leave it. The version the alias leaves is tagged
    ``mlcase.was_champion=true`` (serving finds the previous champion that
    way); the new champion is tagged with the verdict and its reasons.

    Returns
    -------
    dict
        ``champion_version`` (where the alias points now, or None),
        ``previous_champion_version``, ``champion_moved``, ``champion_message``.
    """
    from . import tracking

    d = _as_dict(decision)
    verdict, name = d["verdict"], d.get("champion")
    current = tracking.alias_version(case, "champion")
    if verdict not in ("GO", "USE_BASELINE"):
        msg = (f"{verdict}: the champion alias stays at version {current}" if current is not None else
               f"{verdict}: there is no champion yet, and none is set")
        return {"champion_version": current, "previous_champion_version": current, "champion_moved": False,
                "champion_message": msg}
    if verdict == "GO":
        target, key = versions.get("candidate_version"), "candidate_version"
    else:
        by_name = versions.get("by_name") or {}
        target = by_name.get(name) or versions.get(f"{name}_version") or versions.get("baseline_version")
        key = "baseline_version"
    if target is None:
        raise ModelError(f"apply_decision: the decision is {verdict} but versions has no '{key}'",
                         "register the bundles first (mlcase.bakeoff.register) and pass its result")
    target = int(target)
    registered = versions.get("baseline") if verdict == "USE_BASELINE" else versions.get("candidate")
    mismatch = None
    if registered and name and registered != name and not (versions.get("by_name") or {}).get(name):
        mismatch = (f"the decision names '{name}' but version {target} holds '{registered}'; register the "
                    "evaluation's best baseline so the champion is the model the decision judged")
    if current is not None and current != target:
        tracking.set_version_tags(case, current, {"mlcase.was_champion": "true"})
    reason_text = " | ".join(d.get("reasons") or [])
    tracking.set_alias(case, "champion", target, reason=f"{verdict}: {reason_text}")
    tracking.set_version_tags(case, target, {"mlcase.verdict": verdict, "mlcase.verdict_reasons": reason_text})
    moved = current != target
    msg = (f"{verdict}: champion moved from version {current} to {target} ({name})" if moved and current is not None
           else f"{verdict}: champion set to version {target} ({name})" if moved
           else f"{verdict}: champion stays at version {target} ({name})")
    out = {"champion_version": target, "previous_champion_version": current, "champion_moved": moved,
           "champion_message": msg}
    if mismatch:
        out["champion_message"] = f"{msg}; warning: {mismatch}"
        out["champion_mismatch"] = mismatch
    return out
