"""The forecast bake-off: baselines first, then LightGBM and the ridge tuned on the backtest windows.

Every trial is a full rolling-origin backtest (:func:`mlcase.forecast.backtest.learned_backtest`)
ranked on its MASE over the backtest windows; the test period is not read. The clock is the
bake-off's :class:`~mlcase.bakeoff.timebox.TimeBox`: the baselines always run, then each family
scores its defaults (and LightGBM a second, slower-learning configuration), then the families
take turns, each with its own seeded Optuna TPE study (ask/tell), while the time left exceeds
what the final steps need (the test period and the refit of the two best, estimated from their
trial times). ``max_trials`` (tests) makes the run read no clock and reproduce.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data import ID, SeriesData

#: configurations every LightGBM search starts with (the library's defaults, then a slower learner)
# ``diff: 1`` fits the model to each step's change (mlforecast's ``Differences([1])``; the forecast is turned
# back into levels). Trees cannot forecast past the levels they saw, so on a trending series the boosted model
# on levels falls far behind seasonal naive. Backtest MASE of the defaults on levels / on changes, eight real
# series (benchmarks/forecast_diff.py): LightGBM 2.53/1.41 (dslabs::gapminder), 8.68/1.79 (fpp2::usmelec),
# 4.66/1.59 (fpp2::qcement), 1.88/1.12 (AirPassengers), 1.52/1.42 (fpp2::ausbeer), 1.45/0.93 (Nile),
# 3.34/1.27 (fpp2::a10), 13.1/1.36 (fpp2::auscafe); the ridge is mixed (better on changes on four, worse on
# four), so both are searched and the backtests choose
LGB_PORTFOLIO = [{"diff": 1}, {}, {"n_estimators": 500, "learning_rate": 0.02, "num_leaves": 15, "min_child_samples": 10,
                                   "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "diff": 1}]
RIDGE_PORTFOLIO = [{"alpha": 1.0}, {"alpha": 1.0, "diff": 1}]


@dataclass
class Trial:
    family: str
    params: dict
    mase: float
    seconds: float
    number: int

    def to_dict(self) -> dict:
        return {"family": self.family, "params": self.params, "backtest_mase": self.mase,
                "seconds": round(self.seconds, 3), "trial": self.number}


@dataclass
class ForecastBakeoff:
    """What the forecast bake-off found (see the module docstring)."""

    recipe: dict
    backtest: pd.DataFrame                       # unique_id, ds, cutoff, step, y, one column per model
    baselines: list[str]
    families: dict[str, dict] = field(default_factory=dict)   # family -> {params, mase, seconds, trials}
    trials: list[Trial] = field(default_factory=list)
    candidate: str | None = None
    best_baseline: str | None = None
    seconds: float = 0.0
    budget: float = 0.0
    baseline_seconds: dict = field(default_factory=dict)
    scale: dict = field(default_factory=dict)   # MASE scale per series (history before the backtest)
    notes: list[str] = field(default_factory=list)

    def recipe_of(self, family: str) -> dict:
        """The feature recipe of a family's best configuration (levels or changes)."""
        return family_recipe(self.recipe, self.families[family]["params"] or {})

    def configured(self, family: str, seed: int) -> tuple[dict, object]:
        """``(recipe, unfitted regressor)`` of a family's best configuration."""
        recipe = self.recipe_of(family)
        return recipe, regressor(family, self.families[family]["params"] or {}, recipe, seed)

    def leaderboard(self) -> list[dict]:
        from .metrics import scaled_errors

        rows = []
        for name in self.baselines + list(self.families):
            fam = self.families.get(name, {})
            rows.append({"model": name, "role": "candidate" if name in self.families else "baseline",
                         "backtest_mase": float(np.mean(_per_series(self.backtest, scaled_errors(
                             self.backtest, name, self.scale)))),
                         "trials": fam.get("trials", 1), "seconds": round(fam.get("seconds", self.baseline_seconds.get(
                             name, 0.0)), 3), "params": fam.get("params")})
        rows.sort(key=lambda r: r["backtest_mase"])
        return rows

    def to_dict(self) -> dict:
        return {"task": "forecast", "candidate": self.candidate, "best_baseline": self.best_baseline,
                "baselines": self.baselines, "families": self.families, "leaderboard": self.leaderboard(),
                "trials": [t.to_dict() for t in self.trials], "seconds": round(self.seconds, 2),
                "budget_seconds": self.budget, "recipe": self.recipe, "notes": list(self.notes),
                "baseline_seconds": {k: round(v, 3) for k, v in self.baseline_seconds.items()}}


def _per_series(cv: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    return pd.Series(values).groupby(cv[ID].to_numpy()).mean().to_numpy()


def _mase(cv: pd.DataFrame, name: str, scale: dict) -> float:
    from .metrics import scaled_errors

    return float(np.mean(_per_series(cv, scaled_errors(cv, name, scale))))


def family_recipe(recipe: dict, params: dict) -> dict:
    """The feature recipe of one configuration: the shared one, on the target's changes where ``params`` say so."""
    return {**recipe, "diff": int(params.get("diff") or 0)}


def regressor(family: str, params: dict, recipe: dict, seed: int):
    from .features import boosting_model, linear_model

    params = {k: v for k, v in params.items() if k != "diff"}  # the recipe's, not the regressor's
    if family == "lightgbm":
        return boosting_model(params, seed=seed)
    return linear_model(recipe, alpha=params.get("alpha", 1.0))


def _suggest(family: str, trial) -> dict:
    diff = trial.suggest_categorical("diff", [0, 1])
    if family == "ridge":
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True), "diff": diff}
    return {"diff": diff, "n_estimators": trial.suggest_int("n_estimators", 50, 1000, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0), "subsample_freq": 1,
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True)}


def baseline_backtests(case, data: SeriesData, period: str, input_size: int | None) -> tuple[list[pd.DataFrame], dict]:
    """Every baseline of the spec over a period: ``(frames, seconds per baseline)``."""
    from .backtest import rule_backtest, stats_backtest

    kinds = [b for b in case.spec.baselines if isinstance(b, str)]
    frames, seconds = [], {}
    cheap = [k for k in kinds if k in ("naive", "seasonal_naive", "moving_average")]
    if "seasonal_naive" not in cheap:
        cheap.append("seasonal_naive")  # the model-free floor is always there
    t0 = time.perf_counter()
    frames.append(stats_backtest(data, cheap, period))
    for k in cheap:
        seconds[k] = (time.perf_counter() - t0) / len(cheap)
    for k in (k for k in kinds if k in ("auto_ets", "auto_arima")):
        t0 = time.perf_counter()
        frames.append(stats_backtest(data, [k], period, input_size=input_size))
        seconds[k] = time.perf_counter() - t0
    for name, rule in rule_names(case).items():
        t0 = time.perf_counter()
        frames.append(rule_backtest(data, rule, period, name=name))
        seconds[name] = time.perf_counter() - t0
    return frames, seconds


def rule_names(case) -> dict[str, str]:
    """``name -> expression`` of the spec's rule baselines (``rule``, ``rule_2`` ... unless named)."""
    return {name: b.rule for name, b in zip(case.spec.rule_names(), case.spec.rule_baselines, strict=True)}


def default_input_size(data: SeriesData, given: int | None) -> int:
    """Steps AutoETS/AutoARIMA fit on at each cut-off: the spec's ``forecast.input_size``, else the last 8
    seasons (at least 3 horizons and 30 steps). Their fit time grows with the history. Measured on the
    Chicago demo (82 daily cut-offs, load average ~6 on 2 cores): the bake-off and evaluation stages took
    50.6 s with a year of history and 20.2 s with 8 weeks; AutoETS's test MASE was 1.244 and 1.271."""
    if given:
        return int(given)
    return max(8 * data.season_length, 3 * data.horizon, 30)


def run_forecast_bakeoff(case, data: SeriesData, budget=None, console=None, quiet: bool = False,
                         max_trials: int | None = None) -> ForecastBakeoff:
    """Baselines, then the time-boxed search of the candidates (see the module docstring)."""
    import optuna

    from ..bakeoff.timebox import TimeBox, parse_budget
    from .backtest import learned_backtest, merge
    from .features import default_recipe
    from .metrics import mase_scale

    spec = case.spec
    seconds = parse_budget(budget if budget is not None else spec.budget)
    box = TimeBox(t0=time.monotonic(), budget=seconds)
    recipe = default_recipe(data, spec.forecast.lags)
    frames, base_seconds = baseline_backtests(case, data, "backtest", default_input_size(data, spec.forecast.input_size))
    baselines = [c for f in frames for c in f.columns if c not in (ID, "ds", "cutoff", "step", "y")]
    result = ForecastBakeoff(recipe=recipe, backtest=merge(frames), baselines=baselines, budget=seconds,
                             baseline_seconds=base_seconds, scale=mase_scale(data.train_part(), data.season_length))
    from ..formats import markup_escape

    say = (lambda msg: console.print(msg)) if console is not None and not quiet else (lambda msg: None)
    say(f"[dim]baselines: {', '.join(f'{markup_escape(str(b))} MASE {_mase(result.backtest, b, result.scale):.3f}' for b in baselines)}[/dim]")
    seed = spec.split.seed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = {f: optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed + i))
               for i, f in enumerate(spec.candidates)}
    queue = {f: [dict(p) for p in (LGB_PORTFOLIO if f == "lightgbm" else RIDGE_PORTFOLIO)] for f in spec.candidates}
    best_frames: dict[str, pd.DataFrame] = {}
    active = list(spec.candidates)
    failures: dict[str, list[str]] = {f: [] for f in active}
    n = 0
    while True:
        family = _next_family(active, queue, result, n)
        if family is None or (max_trials is not None and n >= max_trials):
            break
        if max_trials is None and n >= len(spec.candidates) and box.left() < _reserve(result):
            break
        if queue[family]:
            params = queue[family].pop(0)
            trial = None
        else:
            trial = studies[family].ask()
            params = _suggest(family, trial)
        t0 = time.perf_counter()
        try:
            r = family_recipe(recipe, params)
            cv = learned_backtest(data, r, {family: regressor(family, params, r, seed)}, "backtest")
            loss = _mase(cv, family, result.scale)
        except Exception as exc:  # noqa: BLE001 - a failing configuration is a bad trial, not the end of the search
            loss, cv = float("inf"), None
            what = f"{type(exc).__name__}: {str(exc)[:160]}"
            if what not in failures[family]:
                result.notes.append(f"{family} trial {n} failed: {what}")
            failures[family].append(what)
            if family not in best_frames and len(failures[family]) >= RETIRE_AFTER:
                # its first trials all failed: the data, not a configuration, is the cause (AirPassengers
                # before the recipe was fitted to short series: 619 failed trials in a 20 s budget)
                active.remove(family)
                result.notes.append(f"{family}: its first {RETIRE_AFTER} trials failed; it is left out of the "
                                    "search")
        took = time.perf_counter() - t0
        if trial is not None:
            studies[family].tell(trial, loss if np.isfinite(loss) else 1e9)
        else:
            _tell_fixed(studies[family], family, params, loss)
        result.trials.append(Trial(family, params, loss, took, n))
        fam = result.families.setdefault(family, {"params": None, "backtest_mase": float("inf"), "seconds": 0.0,
                                                  "trials": 0, "trial_seconds": []})
        fam["trials"] += 1
        fam["trial_seconds"].append(took)
        if cv is not None and loss < fam["backtest_mase"]:
            fam.update(params=params, backtest_mase=loss, seconds=took)
            best_frames[family] = cv
        say(f"[dim]{family} trial {n}: MASE {loss:.4f} ({took:.1f}s; best {fam['backtest_mase']:.4f})[/dim]")
        n += 1
    for cv in best_frames.values():
        result.backtest = merge([result.backtest, cv])
    for family in list(result.families):
        if family not in best_frames:
            if family in active:  # (a retired family has its note already)
                result.notes.append(f"every {family} trial failed; it is left out")
            result.families.pop(family)
    result.seconds = box.elapsed()
    if result.families:
        result.candidate = min(result.families, key=lambda f: result.families[f]["backtest_mase"])
    result.best_baseline = min(baselines, key=lambda b: _mase(result.backtest, b, result.scale))
    return result


#: a family whose first trials all fail is retired after this many
RETIRE_AFTER = 3


def _tell_fixed(study, family: str, params: dict, loss: float) -> None:
    """Tell TPE about a portfolio configuration (its parameters inside the search space)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if family == "ridge":
        dist = {"alpha": FloatDistribution(1e-3, 1e3, log=True)}
    else:
        dist = {"n_estimators": IntDistribution(50, 1000, log=True),
                "learning_rate": FloatDistribution(0.01, 0.3, log=True),
                "num_leaves": IntDistribution(4, 128, log=True),
                "min_child_samples": IntDistribution(5, 100, log=True),
                "subsample": FloatDistribution(0.5, 1.0), "colsample_bytree": FloatDistribution(0.4, 1.0),
                "reg_lambda": FloatDistribution(1e-3, 10.0, log=True)}
    dist["diff"] = CategoricalDistribution([0, 1])
    full = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
            "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1e-3, "alpha": 1.0, "diff": 0, **params}
    values = {k: full[k] for k in dist}
    try:
        study.add_trial(optuna.trial.create_trial(params=values, distributions=dist,
                                                  value=loss if np.isfinite(loss) else 1e9))
    except ValueError:  # a value outside the space (never with the portfolio above)
        pass


def _next_family(families: list[str], queue: dict, result: ForecastBakeoff, n: int) -> str | None:
    """Portfolio configurations first (the family with the fewest trials next), then the families take turns."""
    waiting = [f for f in families if queue[f]]
    if waiting:
        return min(waiting, key=lambda f: result.families.get(f, {}).get("trials", 0))
    return families[n % len(families)] if families else None


def _reserve(result: ForecastBakeoff) -> float:
    """Seconds the final steps need: the test period of each family's best (about one trial each, as long as
    its slowest) and of the slow statistical baselines (fewer windows than the backtest: half)."""
    per = [max(f["trial_seconds"]) if f.get("trial_seconds") else 0.0 for f in result.families.values()]
    slow = sum(v for k, v in result.baseline_seconds.items() if k in ("auto_ets", "auto_arima"))
    return 1.2 * sum(per) + 0.5 * slow + 0.5
