"""The decision of a forecast case: GO, USE_BASELINE, NO_GO or INCONCLUSIVE, in plain words.

Seasonal naive (the value one season back) is the model-free floor. Lifts are the test
period's MASE gains (the floor's or the baseline's MASE minus the model's) with 95% bootstrap
CIs over (series, cut-off) blocks; money at the chosen quantile is given beside them. In order:

1. ``NO_GO`` when neither the candidate nor the best baseline (chosen on the backtests) beats
   seasonal naive with a CI above zero: keep the seasonal-naive forecast, no model needed (but see 3.).
2. ``GO`` when the candidate beats seasonal naive and the best baseline, each with a CI above
   zero, and (when costs are given) does not cost more per forecast point than the best baseline
   at the quantile by more than ``min_lift + operating_cost`` going the wrong way.
3. ``INCONCLUSIVE`` when both point estimates favour the candidate but a CI includes zero, or when nothing
   beats seasonal naive in MASE but the candidate's forecast at the quantile saves money over it with a CI
   above the bar (the measures disagree); the
   reasons say how many more test windows would decide. Where the best baseline beats seasonal naive
   (CI above zero), it serves until then where no champion is set (``serves_without_champion``), as a
   tabular case's server falls back to its ``baseline``.
4. ``USE_BASELINE`` when the best baseline beats seasonal naive (CI above zero); else ``NO_GO``.

A CI above zero counts only over at least :data:`MIN_TEST_BLOCKS` test blocks; over fewer, a model that
beats seasonal naive gets ``INCONCLUSIVE`` (seasonal naive stays).
"""

from __future__ import annotations

import math

from ..decision import Decision
from .evaluate import FLOOR

#: A "95% CI above zero" over fewer test blocks (series x cut-offs) than this is no evidence: when every
#: block favours a model the bootstrap's interval lies above zero, and under no difference that happens
#: with probability 2^-n, above the 2.5% a one-sided 95% bound claims until n = 6 (fpp3::souvenirs,
#: 84 months at horizon 12, held out one window and printed its "95% CI" as one point)
MIN_TEST_BLOCKS = 6


def _ci(d: dict, digits: int = 3, fmt=None) -> str:
    """``estimate (95% CI low to high)``; one block (or blocks all alike) gives the bootstrap one value, so no CI."""
    fmt = fmt or (lambda v: f"{v:.{digits}f}")
    if d["ci_low"] == d["ci_high"]:
        if d.get("blocks", 1) > 1:   # every window alike: at a season of 1, seasonal naive is naive (fpp3::prices)
            return f"{fmt(d['estimate'])} (the same on each of the {d['blocks']} test windows: no CI)"
        return f"{fmt(d['estimate'])} (no CI: one test window)"
    return f"{fmt(d['estimate'])} (95% CI {fmt(d['ci_low'])} to {fmt(d['ci_high'])})"


def _money(d: dict, cur: str) -> str:
    return _ci(d, fmt=lambda v: f"{'-' if v < 0 else ''}{cur}{abs(v):,.3f}")


def _names(name: str) -> str:
    return {"seasonal_naive": "seasonal naive", "naive": "naive (last value)", "moving_average": "the moving average",
            "auto_ets": "AutoETS", "auto_arima": "AutoARIMA"}.get(name, name)


def windows_to_decide(lift: dict, blocks: int) -> int | None:
    """Test blocks (series x cut-offs) a lift of this size needs for a CI clear of zero (normal approximation)."""
    est, sd = lift["estimate"], lift.get("sd") or 0.0
    if est <= 0 or sd <= 0:
        return None
    per_block_sd = sd * math.sqrt(blocks)
    return int(math.ceil((1.96 * per_block_sd / est) ** 2))


def decide_forecast(case, ev: dict) -> Decision:
    """The verdict from :func:`mlcase.forecast.evaluate.evaluate_forecast`'s results, and what the champion's
    forecasts will lack: steps whose interval the backtests were too few to calibrate (datasets::JohnsonJohnson,
    one series of 84 quarters, served AutoETS without an interval and no reason said so)."""
    verdict = _decide(case, ev)
    cal = (ev.get("conformal") or {}).get(verdict.champion) or {}
    open_steps = [s for s, q in zip(cal.get("steps") or [], cal.get("quantile") or [], strict=False) if q is None]
    if verdict.champion and open_steps:
        n = min(cal.get("n") or [0])
        verdict.reasons.append(
            f"the champion's forecasts carry no {1 - float(cal['alpha']):.0%} interval at "
            f"{'any step' if len(open_steps) == len(cal['steps']) else 'step(s) ' + ', '.join(map(str, open_steps))}: "
            f"the backtests hold {n} forecast(s) per step, too few to calibrate one (see the check no_intervals)")
        verdict.evidence["steps_without_interval"] = open_steps
    return verdict


def _decide(case, ev: dict) -> Decision:
    cand, best = ev.get("candidate"), ev.get("best_baseline")
    models, lifts = ev["models"], ev["lifts"]
    cur = ev["costs"]["currency"]
    spec = case.spec
    op = spec.constraints.operating_cost if isinstance(spec.constraints.operating_cost, float) else 0.0
    bar = op + spec.constraints.min_lift
    floor_mase = models[FLOOR]["test"]["mase"]
    evidence = {"floor": FLOOR, "candidate": cand, "best_baseline": best, "floor_mase": floor_mase,
                "quantile": ev["quantile"], "bar_per_point": bar}
    reasons: list[str] = []
    c_floor = lifts.get(cand, {}).get("over_floor") if cand else None
    b_floor = lifts.get(best, {}).get("over_floor") if best and best != FLOOR else None
    blocks = int(ev["test_period"]["blocks"])
    if c_floor:
        reasons.append(f"the candidate ({cand}) has test MASE {models[cand]['test']['mase']:.3f} against seasonal "
                       f"naive's {floor_mase:.3f}: a MASE gain of {_ci(c_floor['mase'])}; at the {ev['quantile']:.0%} "
                       f"quantile it saves {_money(c_floor['cost'], cur)} per forecast point")
    if b_floor:
        reasons.append(f"the best baseline ({_names(best)}, chosen on the backtests) has test MASE "
                       f"{models[best]['test']['mase']:.3f}: a gain over seasonal naive of {_ci(b_floor['mase'])}; "
                       f"at the quantile it saves {_money(b_floor['cost'], cur)} per forecast point")
    cand_beats = bool(c_floor and c_floor["mase"]["ci_low"] > 0)
    base_beats = bool(b_floor and b_floor["mase"]["ci_low"] > 0)
    evidence.update(candidate_beats_floor=cand_beats, baseline_beats_floor=base_beats)
    if not cand_beats and not base_beats:
        why = ("no model beats seasonal naive in MASE with a 95% CI above zero over the "
               f"{ev['test_period']['blocks']} test windows (series x cut-offs)")
        more = _more(c_floor["mase"] if c_floor else None, ev)
        # the forecast acted on (at the quantile) saving money with a CI above zero is evidence for a model that
        # MASE, on the point forecast, does not settle either way: "no model needed" would be unearned
        # (vcdExtra::CyclingDeaths: lightgbm's MASE gain 0.036, CI -0.147 to 0.244, beside $0.258 saved per point,
        # CI $0.123 to $0.398; the moving average's 0.011 beside $0.371, CI $0.270 to $0.486)
        saving = [(f"the candidate's ({cand})" if n == cand else f"the best baseline's ({_names(n)})")
                  for n, lift in ((cand, c_floor), (best, b_floor))
                  if lift and lift["cost"]["ci_low"] > bar and lift["mase"]["estimate"] > 0]
        if saving and blocks >= MIN_TEST_BLOCKS:
            evidence["measures_disagree"] = True
            one = len(saving) == 1
            return Decision("INCONCLUSIVE", [
                f"{' and '.join(saving)} forecast{'' if one else 's'} at the {ev['quantile']:.0%} quantile "
                f"save{'s' if one else ''} money over seasonal naive with a 95% CI above zero, but "
                f"{'its' if one else 'their'} MASE gain's CI includes zero: the two measures disagree, so neither "
                "a model nor 'no model needed' is settled", *reasons, *([more] if more else []),
                "no champion is set: seasonal naive keeps serving until the two agree"],
                champion=None, evidence=evidence)
        return Decision("NO_GO", [why, *reasons, *([more] if more else []),
                                  "keep the seasonal-naive forecast (the value one season back): no model needed"],
                        champion=None, evidence=evidence)
    if blocks < MIN_TEST_BLOCKS:
        return Decision("INCONCLUSIVE", [
            f"{'the candidate' if cand_beats else _names(best)} beats seasonal naive with a CI above zero, but the "
            f"test period holds {blocks} window{'s' if blocks != 1 else ''} (series x cut-offs): when every window "
            f"favours a model by chance (probability 2^-{blocks} = {2.0 ** -blocks:.1%}) the CI lies above zero, "
            f"so fewer than {MIN_TEST_BLOCKS} is no evidence", *reasons,
            f"hold out at least {MIN_TEST_BLOCKS} test windows (raise forecast.test_windows if the history allows, "
            "or forecast more series); until then keep the seasonal-naive forecast"],
            champion=None, evidence={**evidence, "test_blocks": blocks, "min_test_blocks": MIN_TEST_BLOCKS})
    if cand_beats:
        c_base = lifts[cand].get("over_best_baseline") if best != FLOOR else c_floor
        if best != FLOOR and c_base:
            reasons.append(f"over the best baseline ({_names(best)}) the candidate's MASE gain is {_ci(c_base['mase'])} "
                           f"and it saves {_money(c_base['cost'], cur)} per forecast point at the quantile")
        clears = c_base is not None and c_base["mase"]["ci_low"] > 0
        costs_more = c_base is not None and c_base["cost"]["ci_high"] < -bar
        evidence.update(candidate_beats_baseline=clears, candidate_costs_more=costs_more)
        if clears and not costs_more:
            return Decision("GO", [f"GO: the candidate ({cand}) beats seasonal naive and the best baseline in MASE, "
                                   "each with a 95% CI above zero", *reasons], champion=cand, evidence=evidence)
        if costs_more:
            reasons.append(f"but it costs more than {_names(best)} at the quantile, with a CI below zero")
        elif c_base is not None and c_base["mase"]["estimate"] > 0:
            more = _more(c_base["mase"], ev)
            serve = []
            if base_beats:  # the baseline is proven better than the floor; the candidate is not proven better than it
                evidence["serves_without_champion"] = best
                serve = [f"until it is settled, the best baseline ({_names(best)}) serves where no champion is set: "
                         "it beats seasonal naive with a 95% CI above zero"]
            return Decision("INCONCLUSIVE", [f"the candidate ({cand}) beats seasonal naive, and its gain over the best "
                                             f"baseline ({_names(best)}) is positive but its CI includes zero",
                                             *reasons, *([more] if more else []), *serve], champion=None,
                            evidence=evidence)
    if base_beats:
        return Decision("USE_BASELINE", [f"USE_BASELINE: {_names(best)} beats seasonal naive with a CI above zero and the "
                                         f"candidate does not beat {_names(best)}", *reasons],
                        champion=best, evidence=evidence)
    return Decision("NO_GO", [f"the candidate ({cand}) beats seasonal naive but not the best baseline, which does not "
                              "beat seasonal naive itself", *reasons], champion=None, evidence=evidence)


def _more(lift: dict | None, ev: dict) -> str | None:
    if not lift:
        return None
    need = windows_to_decide(lift, ev["test_period"]["blocks"])
    if need is None:
        return None
    have = ev["test_period"]["blocks"]
    if need <= have:
        return None
    most = ev["test_period"].get("most_blocks")
    head = f"a gain of this size would need about {need:,} test windows (series x cut-offs) for a CI clear of zero"
    if most is None:
        return f"{head}; the test period has {have}: raise forecast.test_windows if the history allows"
    if need > most:
        # stevedata::commodity_prices (one monthly series of 744 steps) was told to raise forecast.test_windows
        # to "about 6075", where the history holds 57 at most
        return (f"{head}; the test period has {have}, and this history holds at most {most:,}: too small a gain "
                "for this history to settle")
    return f"{head}; the test period has {have}: raise forecast.test_windows (the history holds up to {most:,})"
