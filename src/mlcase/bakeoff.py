"""The time-boxed bake-off: baselines first, then an Optuna search per model family.

:func:`run_bakeoff` scores every baseline and every trial by cross-validation on
the *train* part of the split (the valid part is left to threshold, calibration
and conformal choices; the test part to evaluation), with folds that follow the
split method: time-ordered expanding windows for ``time``, group folds for
``group``, stratified folds otherwise. The selection metric is the expected
business cost when ``costs`` are given (for a binary task at the best threshold
on each validation fold, within the review capacity), otherwise log loss or RMSE.
Lower is better for every metric.

The time box: ``budget`` seconds for the whole bake-off. The search ends at 90%
of it, leaving the rest for the final refit; each family gets an equal share of
what is left when it starts. Optuna checks its own ``timeout`` only between
trials, so every trial also carries a deadline: boosting stops at it through a
callback and forests grow in chunks that check the clock (see
:func:`mlcase.candidates.fit_with_deadline`). The bake-off therefore ends within
``budget * 1.1`` plus at most one trial (a fit that cannot be cut, such as a
linear model on large data), as long as the baselines themselves fit in the
budget: they always run. Ctrl-C stops the search, keeps the best so far and sets
``result.interrupted``.

Every baseline and every trial is an MLflow child run of one parent run per
bake-off. The runs are written by a background thread, so the search never
waits on the tracking store (the thread may outlive the time box;
:meth:`BakeoffResult.wait_tracking` waits for it). :func:`register` logs the
chosen candidate and the best baseline as registered model versions with the
aliases ``candidate`` and ``baseline``.
"""

from __future__ import annotations

import contextlib
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import candidates as C
from .bundle import ModelBundle
from .case import Case
from .errors import SpecError

LEADERBOARD_COLUMNS = ["name", "kind", "cv_mean", "cv_std", "metric", "n_trials", "fit_cpu_s", "size_bytes",
                       "peak_mem_mb", "predict_1_ms", "predict_1000_ms", "operating_cost_per_decision", "note"]
SEARCH_SHARE = 0.9      # the search ends at this share of the budget; the rest is for the final refit
HARD_SHARE = 1.1        # nothing is fitted past budget * HARD_SHARE
EPS = 1e-15


# --------------------------------------------------------------------------- result
@dataclass
class BakeoffResult:
    """What the bake-off found.

    Attributes
    ----------
    leaderboard : list of dict
        One row per baseline and per candidate family, best (lowest ``cv_mean``) first;
        columns :data:`LEADERBOARD_COLUMNS` plus ``family``, ``params``, ``folds``,
        ``n_trees``, ``selected`` and a few more.
    bundles : dict of str to ModelBundle
        Every baseline and the best trial of each candidate family, refitted on the
        dataset's train part only.
    candidate : str or None
        Name of the chosen candidate (ties within CV noise go to the simpler family).
    best_baseline : str or None
        Name of the best non-trivial baseline (rule or linear), else the trivial one.
    """

    leaderboard: list[dict]
    bundles: dict[str, ModelBundle]
    candidate: str | None
    best_baseline: str | None
    elapsed_s: float
    interrupted: bool
    budget_s: float
    metric: str
    cv: dict
    trials: list[dict] = field(default_factory=list)
    families: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    fingerprint: str | None = None
    input_example: pd.DataFrame | None = None
    _writer: Any = field(default=None, repr=False)

    def wait_tracking(self, timeout: float | None = None) -> bool:
        """Wait for the background MLflow writer (it may outlive the time box); True when all is written.

        Fills :attr:`run_id` and notes a tracking failure.
        """
        w = self._writer
        if w is None:
            return True
        done = w.wait(timeout)
        self.run_id = w.run_id
        for b in self.bundles.values():
            b.metrics["bakeoff_run_id"] = self.run_id
        if done:
            if w.error and not any(n.startswith("MLflow tracking failed") for n in self.notes):
                self.notes.append(f"MLflow tracking failed ({w.error}); check tracking_uri / MLFLOW_TRACKING_URI")
            self._writer = None
        return done

    @property
    def candidate_bundle(self) -> ModelBundle | None:
        return self.bundles.get(self.candidate) if self.candidate else None

    @property
    def baseline_bundle(self) -> ModelBundle | None:
        return self.bundles.get(self.best_baseline) if self.best_baseline else None

    def row(self, name: str) -> dict | None:
        return next((r for r in self.leaderboard if r["name"] == name), None)

    def leaderboard_frame(self) -> pd.DataFrame:
        extra = ["family", "n_trees", "cv_log_loss", "selected"]
        cols = LEADERBOARD_COLUMNS + [c for c in extra if any(c in r for r in self.leaderboard)]
        return pd.DataFrame([{c: r.get(c) for c in cols} for r in self.leaderboard], columns=cols)

    def to_dict(self) -> dict:
        return {"leaderboard": self.leaderboard, "candidate": self.candidate, "best_baseline": self.best_baseline,
                "elapsed_s": round(self.elapsed_s, 3), "interrupted": self.interrupted,
                "budget_s": self.budget_s, "metric": self.metric, "metric_direction": "lower", "cv": self.cv,
                "trials": self.trials, "families": self.families, "notes": self.notes, "phases": self.phases,
                "run_id": self.run_id or (self._writer.run_id if self._writer is not None else None),
                "fingerprint": self.fingerprint}

    def print(self, console) -> None:
        """Print the leaderboard as a Rich table."""
        console.print(leaderboard_table(self.to_dict()))


def leaderboard_table(data: dict):
    """A Rich table of a stored bake-off result (``BakeoffResult.to_dict()``)."""
    from rich.table import Table

    metric = data.get("metric", "score")
    title = f"Leaderboard ({metric}, lower is better; {data.get('cv', {}).get('folds', '?')}-fold CV" + (
        ", interrupted" if data.get("interrupted") else "") + ")"
    table = Table(title=title, title_justify="left")
    for col, justify in (("", "left"), ("name", "left"), ("kind", "left"), ("cv mean", "right"),
                         ("± std", "right"), ("trials", "right"), ("fit cpu s", "right"), ("size", "right"),
                         ("1-row ms", "right"), ("$/decision", "right"), ("note", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for r in data.get("leaderboard", []):
        mark = "★" if r.get("selected") else ("◆" if r["name"] == data.get("best_baseline") else "")
        table.add_row(mark, r["name"], r["kind"], _num(r.get("cv_mean")), _num(r.get("cv_std")),
                      str(r.get("n_trials") or ""), _num(r.get("fit_cpu_s"), 3), _size(r.get("size_bytes")),
                      _num(r.get("predict_1_ms"), 3), _num(r.get("operating_cost_per_decision"), 3),
                      r.get("note") or "")
    return table


def _num(v, digits: int = 5) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}"


def _size(v) -> str:
    if v is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if v < 1024 or unit == "GB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return str(v)  # pragma: no cover


# --------------------------------------------------------------------------- scoring
class Scorer:
    """The selection metric of a case on cross-validation folds of the train part (lower is better)."""

    def __init__(self, case: Case, rows: pd.DataFrame, y: np.ndarray, classes: list | None = None):
        from . import tasks

        spec = case.spec
        self.task = spec.task
        self.classes = [str(c) for c in classes] if classes is not None else None
        self.n_classes = len(classes) if classes is not None else None
        self.costs = self.capacity = self.under = self.over = self.matrix = None
        if self.task == "binary" and spec.costs.binary_given():
            self.metric = "business_cost"
            self.costs = tasks.binary_costs(case, rows)
            self.capacity = tasks.capacity_share(case)
        elif self.task == "regression" and spec.costs.regression_given():
            self.metric = "business_cost"
            self.under, self.over = tasks.regression_rates(case, rows)
        elif self.task == "multiclass" and spec.costs.matrix:
            self.metric = "business_cost"
            self.matrix = self._matrix(spec.costs.matrix)
        else:
            self.metric = "rmse" if self.task == "regression" else "log_loss"

    def _matrix(self, matrix: dict) -> np.ndarray:
        """``matrix[actual][predicted]`` as an array; missing cells cost 0 on the diagonal, 1 off it."""
        classes = self.classes
        m = np.array([[0.0 if a == p else 1.0 for p in classes] for a in classes])
        for a, row in matrix.items():
            for p, v in row.items():
                if str(a) not in classes or str(p) not in classes:
                    raise SpecError(f"costs.matrix names class '{a if str(a) not in classes else p}', which the target does not have",
                                    f"use the target's classes: {', '.join(classes)}")
                m[classes.index(str(a)), classes.index(str(p))] = float(v)
        return m

    def scores(self, model, X: pd.DataFrame) -> np.ndarray:
        """Binary: P(positive); multiclass: the full probability matrix; regression: the prediction."""
        if self.task == "regression":
            return np.asarray(model.predict(X), dtype="float64")
        proba = np.asarray(model.predict_proba(X), dtype="float64")
        if self.task == "binary":
            classes = list(model.classes_)
            return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(X))
        full = np.zeros((len(X), self.n_classes))
        full[:, np.asarray(model.classes_, dtype=int)] = proba
        return full

    def score(self, y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> float:
        """The metric on validation rows ``idx`` (positions in the train part)."""
        if self.task == "binary":
            if self.costs is not None:
                from .tasks import choose_threshold

                return float(choose_threshold(y, s, self.costs.take(idx), self.capacity)[1])
            return log_loss(y, s)
        if self.task == "multiclass":
            if self.matrix is not None:
                decision = np.argmin(s @ self.matrix, axis=1)
                return float(self.matrix[y.astype(int), decision].mean())
            return float(-np.mean(np.log(np.clip(s[np.arange(len(y)), y.astype(int)], EPS, 1))))
        if self.under is not None:
            from .tasks import regression_cost_of

            return float(np.mean(regression_cost_of(self.under[idx], self.over[idx], y, s)))
        return float(np.sqrt(np.mean((s - y) ** 2)))

    def secondary(self, y: np.ndarray, s: np.ndarray) -> float | None:
        """Log loss beside a binary business cost (for the report); None otherwise."""
        if self.task == "binary" and self.metric != "log_loss":
            return log_loss(y, s)
        return None


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    y = np.asarray(y, dtype="float64")
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def cv_folds(case: Case, dataset, n_folds: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds over the train part: ``(fit positions, validation positions)`` pairs.

    ``time``: expanding windows, each validation block later than everything it is
    fitted on (rows sharing a timestamp stay on one side). ``group``: no group on
    both sides. ``stratified``: class shares kept. ``random``: shuffled.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    spec = case.spec
    k = n_folds or spec.split.cv_folds
    train = dataset.split.train
    n = len(train)
    method = dataset.split.method
    seed = spec.split.seed
    if n < 2 * k:
        raise SpecError(f"split.cv_folds: {k} folds need at least {2 * k} training rows, the train part has {n}",
                        "lower split.cv_folds or add data")
    if method == "time":
        t = pd.to_datetime(dataset.time.to_numpy()[train]).asi8 if dataset.time is not None else np.arange(n)
        ts = np.sort(t)
        cuts = [ts[int(round(i * n / (k + 1)))] for i in range(1, k + 1)] + [ts[-1] + 1]
        folds = []
        for i in range(k):
            fit = np.flatnonzero(t < cuts[i])
            val = np.flatnonzero((t >= cuts[i]) & (t < cuts[i + 1]))
            if len(fit) and len(val):
                folds.append((fit, val))
        if len(folds) < 2:
            raise SpecError("split: the training rows have too few distinct times for time-ordered CV folds",
                            "use split.method: random or stratified, or add data over more time")
        return folds
    if method == "group":
        groups = dataset.frame[spec.data.group].to_numpy()[train]
        n_groups = len(pd.unique(groups))
        if n_groups < 2:
            raise SpecError("split.method 'group': the train part holds one group, so group CV is impossible",
                            "use another split method or add groups")
        splitter = GroupKFold(n_splits=min(k, n_groups), shuffle=True, random_state=seed)
        return [(a, b) for a, b in splitter.split(np.zeros(n), groups=groups)]
    y = dataset.y[train]
    if spec.task != "regression" and method == "stratified":
        _, counts = np.unique(y, return_counts=True)
        splitter = StratifiedKFold(n_splits=max(2, min(k, int(counts.min()))), shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), y))
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))


# --------------------------------------------------------------------------- measuring
class _PeakMemory:
    """Peak resident memory above the starting point while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.mb = max(0.0, (self.peak - self.start) / 2**20)
        return False


def _model_size(model) -> int | None:
    import skops.io as sio

    return len(sio.dumps(model))


def _latency_ms(model, X: pd.DataFrame, scores_fn) -> tuple[float, float]:
    """Median wall time of a 1-row and of a 1,000-row prediction, in ms."""
    rows = [X.iloc[[i % len(X)]] for i in range(8)]
    big = X.sample(1000, replace=len(X) < 1000, random_state=0)
    with C.single_thread():
        scores_fn(model, rows[0])  # warm-up
        one = []
        for r in rows[1:]:
            t = time.perf_counter()
            scores_fn(model, r)
            one.append(time.perf_counter() - t)
        many = []
        for _ in range(2):
            t = time.perf_counter()
            scores_fn(model, big)
            many.append(time.perf_counter() - t)
    return 1000 * float(np.median(one)), 1000 * float(np.median(many))


def operating_cost(case: Case, fit_cpu_s: float | None, predict_1_ms: float | None) -> tuple[float | None, str | None]:
    """Money per decision to run a model: online prediction CPU plus retraining CPU spread over the decisions.

    Training is amortised over ``problem.volume`` decisions per ``compute.retrain_every``;
    without a volume only the prediction cost is counted (the note says so).
    """
    from .spec import PERIOD_SECONDS

    if predict_1_ms is None:
        return None, None
    rate = case.spec.compute.cost_per_cpu_hour / 3600.0
    per_decision = predict_1_ms / 1000.0 * rate
    vol = case.spec.problem.volume_rate
    if vol is None or fit_cpu_s is None:
        return per_decision, "training cost not spread (set problem.volume)"
    count, period = vol
    per_second = count / PERIOD_SECONDS[period or "month"]
    decisions = max(per_second * case.spec.compute.retrain_every, 1.0)
    return per_decision + fit_cpu_s * rate / decisions, None


# --------------------------------------------------------------------------- tracking in the background
class _TrackingWriter:
    """Writes the bake-off's MLflow runs from a background thread.

    The parent run is created by the thread (after MLflow's import and store setup,
    which can take seconds on a fresh store), then children are logged as they
    arrive. :meth:`close` waits for the queue to drain.
    """

    def __init__(self, case: Case, name: str, tags: dict, params: dict, parent_of: str | None):
        self.case, self.error, self.run_id = case, None, None
        self._q: queue.Queue = queue.Queue()
        # not a daemon: a process that ends right after the bake-off still writes every run
        self._thread = threading.Thread(target=self._work, args=(name, tags, params, parent_of), daemon=False,
                                        name="mlcase-tracking")
        self._thread.start()

    def _work(self, name, tags, params, parent_of):
        from . import tracking

        try:
            self.run_id = tracking.start_run_id(self.case, name, tags, parent_run_id=parent_of)
            tracking.log_run_data(self.case, self.run_id, params=params)
        except Exception as exc:  # the store is unreachable or broken: the bake-off goes on, the note says so
            self.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            return
        while True:
            item = self._q.get()
            if item is None:
                return
            kind, payload = item
            try:
                if kind == "child":
                    tracking.log_child_run(self.case, self.run_id, **payload)
                elif kind == "final":
                    tracking.log_run_data(self.case, self.run_id, **payload["data"])
                    for fname, text in payload.get("texts", {}).items():
                        tracking.log_run_text(self.case, self.run_id, text, fname)
                    tracking.end_run_id(self.case, self.run_id, payload.get("status", "FINISHED"))
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {str(exc)[:300]}"

    def child(self, name: str, params: dict, metrics: dict, tags: dict, start: float, end: float,
              status: str = "FINISHED", steps: dict | None = None) -> None:
        self._q.put(("child", {"name": name, "params": params, "metrics": metrics, "tags": tags,
                               "start_time": start, "end_time": end, "status": status, "steps": steps or {}}))

    def close(self, data: dict, texts: dict, status: str, timeout: float) -> None:
        """Queue the parent run's final data and wait up to ``timeout`` s for the queue to drain."""
        self._q.put(("final", {"data": data, "texts": texts, "status": status}))
        self._q.put(None)
        self.wait(timeout)

    def abort(self) -> None:
        """End the parent run as FAILED without waiting (the thread writes what is queued, then stops)."""
        self._q.put(("final", {"data": {}, "texts": {}, "status": "FAILED"}))
        self._q.put(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every run is written; True when done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


# --------------------------------------------------------------------------- progress
class _Progress:
    """Rich progress: family, trial, best so far, time left. Silent when ``console`` is None."""

    def __init__(self, console, budget: float, t0: float):
        self._p = None
        if console is None:
            return
        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        end = t0 + budget

        class Left(ProgressColumn):
            def render(self, task):
                return Text(f"{max(0.0, end - time.monotonic()):5.1f}s left", style="cyan")

        self._p = Progress(TextColumn("[bold]bake-off[/]"), BarColumn(bar_width=24), Left(),
                           TextColumn("{task.description}"), console=console, transient=False,
                           refresh_per_second=4)
        self._t0, self._budget = t0, budget
        self._task = self._p.add_task("starting", total=budget)
        self._p.start()

    def update(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=text,
                           completed=min(self._budget, time.monotonic() - self._t0))

    def stop(self) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=self._budget)
            self._p.stop()
            self._p = None


# --------------------------------------------------------------------------- the bake-off
@dataclass
class _Entry:
    """A leaderboard entry while the bake-off runs."""

    name: str
    kind: str
    family: str
    make: Any                     # () -> unfitted estimator
    params: dict
    folds: list[float] = field(default_factory=list)
    secondary: list[float] = field(default_factory=list)
    n_trials: int = 1
    n_trees: int | None = None
    fold_fit_s: float = 0.0
    search_s: float = 0.0
    note: list[str] = field(default_factory=list)
    rule: str | None = None
    measures: dict = field(default_factory=dict)

    @property
    def cv_mean(self) -> float | None:
        return float(np.mean(self.folds)) if self.folds else None

    @property
    def cv_std(self) -> float | None:
        return float(np.std(self.folds, ddof=1)) if len(self.folds) > 1 else (0.0 if self.folds else None)


def _parse_budget(budget) -> float:
    from .spec import parse_duration

    try:
        seconds = parse_duration(budget)
    except ValueError as exc:
        raise SpecError(f"budget: {exc}", "give a duration such as 90s, 2m or 1h") from None
    if seconds <= 0:
        raise SpecError(f"budget: expected a positive duration, got {budget!r}", "give a duration such as 90s or 2m")
    return seconds


def _baseline_entries(case: Case, dataset) -> list[_Entry]:
    from .baselines import MajorityBaseline, MeanBaseline, RuleBaseline
    from .rules import Rule
    from .spec import RuleBaseline as RuleSpec

    spec = case.spec
    task = spec.task
    groups = C.column_groups(dataset.X_train, dataset.schema.to_dict())
    seed = spec.split.seed
    entries: list[_Entry] = []
    rules = [(i, b) for i, b in enumerate(spec.baselines) if isinstance(b, RuleSpec)]
    for i, b in enumerate(spec.baselines):
        if isinstance(b, RuleSpec):
            where = f"baselines[{i}].rule"
            if task == "multiclass":
                raise SpecError(f"{where}: rule baselines decide positive/negative, and this case is multiclass",
                                "remove the rule baseline or make the task binary")
            Rule(expression=b.rule, columns=list(dataset.features),
                 kind="boolean" if task == "binary" else "numeric", where=where)  # fail before any fitting
            name = "rule" if len(rules) == 1 else f"rule:{b.name or rules.index((i, b)) + 1}"
            entries.append(_Entry(name, "baseline", "rule", lambda e=b.rule: RuleBaseline(e, task=task),
                                  {"expression": b.rule}, rule=b.rule))
            continue
        if b == "linear":
            fam = C.resolve_family("logistic", task)
            entries.append(_Entry("linear", "baseline", fam,
                                  lambda f=fam: C.build_pipeline(f, task, groups, None, seed), C.default_params(fam)))
            continue
        if task == "regression":
            strategy = b if b in ("mean", "median") else "mean"
            entries.append(_Entry(strategy, "baseline", "constant", lambda s=strategy: MeanBaseline(s),
                                  {"strategy": strategy}))
        else:
            strategy = b if b in ("majority", "prior") else "prior"
            entries.append(_Entry(strategy, "baseline", "constant", lambda s=strategy: MajorityBaseline(s),
                                  {"strategy": strategy}))
    if not any(e.family == "constant" for e in entries):  # the trivial baseline always runs
        if task == "regression":
            entries.insert(0, _Entry("mean", "baseline", "constant", lambda: MeanBaseline("mean"), {"strategy": "mean"}))
        else:
            entries.insert(0, _Entry("prior", "baseline", "constant", lambda: MajorityBaseline("prior"),
                                     {"strategy": "prior"}))
    seen, unique = set(), []
    for e in entries:
        if e.name not in seen:
            seen.add(e.name)
            unique.append(e)
    return unique


def run_bakeoff(case: Case, dataset, budget: float | str | None = None, console=None, quiet: bool = False,
                max_trials: int | None = None, on_trial=None) -> BakeoffResult:
    """Baselines, then a time-boxed Optuna search per candidate family, then the final refit.

    Parameters
    ----------
    case : Case
    dataset : mlcase.data.Dataset
    budget : float or str, optional
        Seconds or a duration (``"90s"``, ``"2m"``); default ``case.overrides["budget"]``
        or the spec's ``budget``.
    console : rich.console.Console, optional
        Where the progress display goes (a stderr console when omitted).
    quiet : bool
        No progress display.
    max_trials : int, optional
        At most this many trials per family (the clock still applies). With a budget
        large enough to finish them, a re-run reproduces the leaderboard exactly.
    on_trial : callable, optional
        Called with each finished trial's record (a dict: family, number, state, value,
        params, elapsed_s ...), in the calling thread.

    Returns
    -------
    BakeoffResult
    """
    from . import tracking

    t0 = time.monotonic()
    spec = case.spec
    budget_s = _parse_budget(budget if budget is not None else case.overrides.get("budget", spec.budget))
    search_end, hard_end = t0 + SEARCH_SHARE * budget_s, t0 + HARD_SHARE * budget_s
    task, seed = spec.task, spec.split.seed

    # data: the train part only; multiclass labels become codes into dataset.classes
    X = dataset.X_train.reset_index(drop=True)
    rows = dataset.rows("train").reset_index(drop=True)
    y = dataset.y_train
    if task == "multiclass":
        y = np.searchsorted(np.asarray(dataset.classes, dtype=object).astype(str), np.asarray(y).astype(str))
    schema = dataset.schema.to_dict()
    groups = C.column_groups(X, schema)
    folds = cv_folds(case, dataset)
    scorer = Scorer(case, rows, y, dataset.classes if task == "multiclass" else None)
    baselines = _baseline_entries(case, dataset)
    families = list(dict.fromkeys(C.resolve_family(f, task) for f in spec.candidates))
    C.import_families(families)

    # an outer active run (a notebook's, or the pipeline's) becomes the parent; no run exists before mlflow is imported
    parent_of = tracking.active_run_id() if "mlflow" in sys.modules else None
    child_tags = tracking.base_tags(case, dataset.fingerprint, "bakeoff")
    writer = _TrackingWriter(case, "bakeoff", child_tags,
                             {"budget_s": budget_s, "metric": scorer.metric, "cv_folds": len(folds),
                              "split_method": dataset.split.method, "families": ",".join(families),
                              "baselines": ",".join(e.name for e in baselines), "n_train": len(X), "seed": seed,
                              "features": ",".join(dataset.features)[:5000]}, parent_of)
    progress = _Progress(None if quiet else (console or _stderr_console()), budget_s, t0)
    family_info: dict[str, dict] = {}
    notes: list[str] = []
    if spec.problem.volume_rate is None:
        notes.append("operating cost per decision counts prediction only: set problem.volume to spread "
                     "the retraining cost over the decisions")
    if groups.dropped:
        notes.append(f"columns not used by the models: {', '.join(groups.dropped)} (identifiers or empty)")
    interrupted = False
    entries: dict[str, _Entry] = {}
    phases: dict[str, float] = {}
    search = _Search(X=X, y=y, folds=folds, scorer=scorer, groups=groups, task=task, seed=seed, writer=writer,
                     child_tags=child_tags, progress=progress, max_trials=max_trials, t0=t0, on_trial=on_trial)
    trials = search.trials

    def cv_score(make) -> tuple[list[float], list[float], float]:
        """Fold scores, secondary scores and mean fit seconds of a baseline (not cut by the clock)."""
        scores, secondary, fit_s = [], [], 0.0
        for fit_idx, val_idx in folds:
            est = make()
            if hasattr(est, "steps"):
                fit_s += C.fit_with_deadline(est, X.iloc[fit_idx], y[fit_idx], None)["fit_s"]
            else:
                t = time.monotonic()
                est.fit(X.iloc[fit_idx], y[fit_idx])
                fit_s += time.monotonic() - t
            s = scorer.scores(est, X.iloc[val_idx])
            scores.append(scorer.score(y[val_idx], s, val_idx))
            sec = scorer.secondary(y[val_idx], s)
            if sec is not None:
                secondary.append(sec)
        return scores, secondary, fit_s / len(folds)

    try:
        with optuna_quiet(), C.single_thread():
            try:
                # ---------------------------------------------------------- baselines
                for e in baselines:
                    progress.update(f"baseline {e.name}")
                    start = time.time()
                    e.folds, e.secondary, e.fold_fit_s = cv_score(e.make)
                    entries[e.name] = e
                    writer.child(f"baseline:{e.name}", {**e.params, "family": e.family},
                                 {"cv_mean": e.cv_mean, "cv_std": e.cv_std}, {**child_tags, "mlcase.kind": "baseline",
                                                                               "mlcase.family": e.family},
                                 start, time.time(), steps={"fold_score": e.folds})
                phases["baselines_s"] = round(time.monotonic() - t0, 3)
                # ---------------------------------------------------------- candidates
                for i, fam in enumerate(families):
                    now = time.monotonic()
                    family_end = now + max(0.0, search_end - now) / (len(families) - i)
                    info = family_info.setdefault(fam, {"slice_s": round(family_end - now, 3), "n_trials": 0,
                                                        "complete": 0, "pruned": 0, "failed": 0, "errors": []})
                    if family_end - now < 0.05:
                        info["skipped"] = "no time left in the budget"
                        continue
                    search.family(fam, i, family_end, info)
            except KeyboardInterrupt:
                interrupted = True
                notes.append("interrupted (Ctrl-C): the search stopped early; results are the best so far")
            for fam, info in family_info.items():
                entries[fam] = _family_entry(fam, info, trials, len(folds))

            # -------------------------------------------------------------- choose, refit, measure
            phases["search_end_s"] = round(time.monotonic() - t0, 3)
            candidate, tie_note = _choose(entries, folds)
            best_baseline = _best_baseline(entries)
            bundles: dict[str, ModelBundle] = {}
            # the chosen candidate, then every baseline, then the other families best first (while time is left)
            order = ([candidate] if candidate else []) + [e.name for e in entries.values() if e.kind == "baseline"] + [
                e.name for e in _ranked(entries) if e.kind == "candidate" and e.name != candidate]
            for name in order:
                e = entries[name]
                if e.cv_mean is None:
                    continue
                now = time.monotonic()
                estimate = 1.3 * e.fold_fit_s * len(folds) / max(len(folds) - 1, 1)
                is_main = name == candidate or e.kind == "baseline"
                if not is_main and (interrupted or now + estimate > t0 + budget_s * 1.05):
                    e.note.append("not refitted: no time left in the budget")
                    continue
                try:
                    progress.update(f"refit {name}")
                    bundles[name] = _refit(case, dataset, e, X, y, groups, seed, hard_end, scorer, schema)
                except KeyboardInterrupt:
                    interrupted = True
                    e.note.append("refit interrupted")
                    break
            if candidate and candidate not in bundles:
                notes.append(f"the chosen candidate {candidate} could not be refitted")
                candidate = next((e.name for e in _ranked(entries) if e.kind == "candidate" and e.name in bundles), None)
            if tie_note and candidate:
                entries[candidate].note.insert(0, tie_note)
            phases["refit_end_s"] = round(time.monotonic() - t0, 3)
            progress.stop()

        leaderboard = _leaderboard(entries, bundles, scorer.metric, candidate)
        elapsed = time.monotonic() - t0
        result = BakeoffResult(
            leaderboard=leaderboard, bundles=bundles, candidate=candidate,
            best_baseline=best_baseline if best_baseline in bundles else None, elapsed_s=elapsed,
            interrupted=interrupted, budget_s=budget_s, metric=scorer.metric,
            cv={"method": dataset.split.method, "folds": len(folds), "n_train": int(len(X)),
                "columns": groups.to_dict()}, phases=phases,
            trials=[{k: v for k, v in t.items() if k != "secondary"} for t in trials], families=family_info,
            notes=notes, fingerprint=dataset.fingerprint, input_example=X.head(5))
        frame = result.leaderboard_frame()
        case.root.mkdir(parents=True, exist_ok=True)
        frame.to_csv(case.root / "leaderboard.csv", index=False)
        top = result.row(candidate) if candidate else None
        writer.close({"metrics": {"elapsed_s": elapsed, **({"best_cv_mean": top["cv_mean"]} if top else {})},
                      "tags": {"mlcase.candidate": candidate or "", "mlcase.best_baseline": best_baseline or "",
                               "mlcase.interrupted": str(interrupted).lower()}},
                     {"leaderboard.csv": frame.to_csv(index=False), "leaderboard.json": _json(result.to_dict())},
                     status="KILLED" if interrupted else "FINISHED",
                     # after Ctrl-C do not wait on the tracking store; otherwise wait at most until the hard end
                     timeout=1.0 if interrupted else max(0.0, hard_end - time.monotonic()))
    except BaseException:  # a bug or a second Ctrl-C: close the display and the tracking thread, re-raise
        progress.stop()
        writer.abort()
        raise
    result._writer = writer
    result.wait_tracking(timeout=0)
    result.elapsed_s = time.monotonic() - t0
    return result


def _json(d: dict) -> str:
    from .results import to_json

    return to_json(d)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextlib.contextmanager
def optuna_quiet():
    """Optuna logs nothing below ERROR (failed trials are reported in the leaderboard instead)."""
    import warnings

    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*X does not have valid feature names.*")
            yield
    finally:
        optuna.logging.set_verbosity(level)


@dataclass
class _Search:
    """The Optuna search of each family, and the trial records it leaves."""

    X: pd.DataFrame
    y: np.ndarray
    folds: list
    scorer: Scorer
    groups: C.ColumnGroups
    task: str
    seed: int
    writer: _TrackingWriter
    child_tags: dict
    progress: _Progress
    max_trials: int | None
    t0: float
    on_trial: Any = None
    trials: list[dict] = field(default_factory=list)
    best_value: float = math.inf
    best_name: str | None = None

    def family(self, fam: str, index: int, family_end: float, info: dict) -> None:
        """One seeded TPE study for ``fam`` until ``family_end`` (or ``max_trials``); the defaults go first."""
        import optuna

        durations: list[float] = []
        sampler = optuna.samplers.TPESampler(seed=self.seed + index, n_startup_trials=5)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner, study_name=fam)
        study.enqueue_trial(C.default_params(fam))
        self.progress.update(f"{fam} trial 1")

        def callback(study: optuna.Study, ft) -> None:
            durations.append(self._record(fam, ft, info))
            left = family_end - time.monotonic()
            if left <= 0 or left < 0.3 * float(np.median(durations)):
                study.stop()  # too little time left for another trial of this family

        study.optimize(lambda trial: self._objective(fam, trial, family_end), n_trials=self.max_trials,
                       timeout=max(family_end - time.monotonic(), 0.01), callbacks=[callback], catch=(Exception,))

    def _objective(self, fam: str, trial, family_end: float) -> float:
        import optuna

        X, y, folds, scorer = self.X, self.y, self.folds, self.scorer
        params = C.suggest_params(fam, trial)
        trial.set_user_attr("start", time.time())
        scores, secondary, fit_s, cap, truncated = [], [], 0.0, None, False
        try:
            for k, (fit_idx, val_idx) in enumerate(folds):
                now = time.monotonic()
                # past the deadline a trial stops, unless no candidate has a score yet: then it
                # finishes with clock-cut models (the "one trial" the time box allows)
                if now >= family_end and self.best_name is not None:
                    trial.set_user_attr("reason", "time box reached before all folds were scored")
                    raise optuna.TrialPruned()
                # each fold gets an equal share of the time left; a model cut short caps the later folds
                fold_deadline = now + (family_end - now) / (len(folds) - k)
                pipe = C.build_pipeline(fam, self.task, self.groups, C.effective_params(fam, params, cap), self.seed)
                out = C.fit_with_deadline(pipe, X.iloc[fit_idx], y[fit_idx], fold_deadline)
                fit_s += out["fit_s"]
                if out["truncated"]:
                    truncated = True
                    cap = out["n_trees"] if cap is None else min(cap, out["n_trees"])
                s = scorer.scores(pipe, X.iloc[val_idx])
                scores.append(scorer.score(y[val_idx], s, val_idx))
                sec = scorer.secondary(y[val_idx], s)
                if sec is not None:
                    secondary.append(sec)
                trial.report(float(np.mean(scores)), k)
                trial.set_user_attr("folds", scores)
                if trial.should_prune():
                    trial.set_user_attr("reason", f"pruned after fold {k + 1}: worse than the median trial")
                    raise optuna.TrialPruned()
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # recorded on the trial and in the leaderboard note; the search goes on
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc)[:300]}")
            raise
        finally:
            trial.set_user_attr("fit_s", fit_s)
        trial.set_user_attr("secondary", secondary)
        trial.set_user_attr("effective_params", C.effective_params(fam, params, cap))
        trial.set_user_attr("truncated", truncated)
        trial.set_user_attr("n_trees", cap if truncated else _declared_trees(fam, params))
        return float(np.mean(scores))

    def _record(self, fam: str, ft, info: dict) -> float:
        """Keep a finished trial, log it as a child run, show it; return its duration."""
        end = time.time()
        start = ft.user_attrs.get("start", end)
        state = ft.state.name
        info["n_trials"] += 1
        info[{"COMPLETE": "complete", "PRUNED": "pruned"}.get(state, "failed")] += 1
        if "error" in ft.user_attrs and len(info["errors"]) < 3:
            info["errors"].append(ft.user_attrs["error"])
        rec = {"family": fam, "number": ft.number, "state": state, "value": ft.value,
               "params": dict(ft.params), "folds": ft.user_attrs.get("folds", []),
               "secondary": ft.user_attrs.get("secondary", []),
               "effective_params": ft.user_attrs.get("effective_params", dict(ft.params)),
               "n_trees": ft.user_attrs.get("n_trees"), "truncated": ft.user_attrs.get("truncated", False),
               "fit_s": round(ft.user_attrs.get("fit_s", 0.0), 4), "duration_s": round(end - start, 4),
               "elapsed_s": round(time.monotonic() - self.t0, 3),
               "note": ft.user_attrs.get("reason") or ft.user_attrs.get("error")}
        self.trials.append(rec)
        if state == "COMPLETE" and ft.value < self.best_value:
            self.best_value, self.best_name = ft.value, fam
        metrics = {"cv_mean": ft.value} if ft.value is not None else {}
        if rec["folds"]:
            metrics["cv_partial_mean"] = float(np.mean(rec["folds"]))
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        self.writer.child(f"{fam}:{ft.number}", {**rec["params"], "family": fam}, metrics,
                          {**self.child_tags, "mlcase.kind": "trial", "mlcase.family": fam,
                           "mlcase.trial_state": state, **({"mlcase.note": rec["note"]} if rec["note"] else {})},
                          start, end, status=status, steps={"fold_score": rec["folds"]})
        if self.on_trial is not None:
            self.on_trial(dict(rec))
        self.progress.update(f"{fam} trial {ft.number + 1} · best {self.best_value:.5g} ({self.best_name})"
                             if self.best_name else f"{fam} trial {ft.number + 1}")
        return end - start


def _family_entry(fam: str, info: dict, trials: list[dict], n_folds: int) -> _Entry:
    """The leaderboard entry of a family: its best complete trial, or an unscored row saying why."""
    done = [t for t in trials if t["family"] == fam and t["state"] == "COMPLETE"]
    if not done:
        why = info.get("skipped") or "; ".join(info.get("errors") or []) or "no trial finished within its time slice"
        return _Entry(fam, "candidate", fam, None, {}, n_trials=info["n_trials"], note=[why])
    top = min(done, key=lambda t: t["value"])
    entry = _Entry(fam, "candidate", fam, None, top["effective_params"], folds=top["folds"],
                   secondary=top.get("secondary", []), n_trials=info["n_trials"], n_trees=top.get("n_trees"),
                   fold_fit_s=top["fit_s"] / n_folds,
                   search_s=sum(t["duration_s"] for t in trials if t["family"] == fam))
    if top.get("truncated"):
        entry.note.append(f"best trial cut by the time box at {top.get('n_trees')} trees")
    return entry


def _declared_trees(fam: str, params: dict) -> int | None:
    key = C.TREES_PARAM.get(fam)
    return int(params[key]) if key and key in params else None


def _ranked(entries: dict[str, _Entry]) -> list[_Entry]:
    return sorted(entries.values(), key=lambda e: (e.cv_mean is None, e.cv_mean if e.cv_mean is not None else 0.0,
                                                   C.COMPLEXITY.get(e.family, -1)))


def _choose(entries: dict[str, _Entry], folds) -> tuple[str | None, str | None]:
    """The best candidate, where scores within CV noise go to the simpler family (then fewer trees)."""
    cands = [e for e in entries.values() if e.kind == "candidate" and e.cv_mean is not None]
    if not cands:
        return None, None
    top = min(cands, key=lambda e: e.cv_mean)
    k = max(len(folds), 1)
    close = [e for e in cands if e.cv_mean - top.cv_mean <= max(e.cv_std or 0, top.cv_std or 0) / math.sqrt(k)]
    pick = min(close, key=lambda e: (C.COMPLEXITY.get(e.family, 9), e.n_trees or 0, e.cv_mean))
    if pick is top:
        return top.name, None
    diff = pick.cv_mean - top.cv_mean
    noise = max(pick.cv_std or 0, top.cv_std or 0) / math.sqrt(k)
    top.note.append(f"{pick.name} chosen instead: within CV noise and simpler")
    return pick.name, (f"chosen over {top.name}: {diff:.4g} worse, within CV noise ({noise:.4g}); "
                       "the simpler model wins ties")


def _best_baseline(entries: dict[str, _Entry]) -> str | None:
    base = [e for e in entries.values() if e.kind == "baseline" and e.cv_mean is not None]
    smart = [e for e in base if e.family != "constant"]
    pool = smart or base
    return min(pool, key=lambda e: e.cv_mean).name if pool else None


def _refit(case: Case, dataset, e: _Entry, X, y, groups, seed: int, hard_end: float, scorer, schema) -> ModelBundle:
    """Fit an entry on the whole train part, measure its running costs, wrap it in a bundle."""
    est = e.make() if e.make is not None else C.build_pipeline(e.family, case.spec.task, groups, e.params, seed)
    cpu0 = time.process_time()
    with _PeakMemory() as mem:
        if hasattr(est, "steps"):
            out = C.fit_with_deadline(est, X, y, hard_end)
            if out["truncated"]:
                e.note.append(f"refit cut by the time box at {out['n_trees']} trees")
            if out["n_trees"] is not None:
                e.n_trees = out["n_trees"]
        else:
            est.fit(X, y)
    fit_cpu = time.process_time() - cpu0
    one_ms, many_ms = _latency_ms(est, X, scorer.scores)
    opcost, _ = operating_cost(case, fit_cpu, one_ms)
    measures = {"fit_cpu_s": round(fit_cpu, 4), "size_bytes": _model_size(est), "peak_mem_mb": round(mem.mb, 2),
                "predict_1_ms": round(one_ms, 4), "predict_1000_ms": round(many_ms, 3),
                "operating_cost_per_decision": opcost}
    e.measures = measures
    params = dict(e.params)
    if hasattr(est, "steps") and e.n_trees is not None and C.TREES_PARAM.get(e.family):
        params[C.TREES_PARAM[e.family]] = int(C.n_trees(est))
    return ModelBundle(
        model=est, name=e.name, role="candidate" if e.kind == "candidate" else "baseline", task=case.spec.task,
        features=list(dataset.features), schema=schema, classes=dataset.classes, positive=dataset.positive,
        metrics={"cv_mean": e.cv_mean, "cv_std": e.cv_std, "cv_metric": scorer.metric, "cv_folds": e.folds,
                 **measures},
        params={**params, "family": e.family}, rule=e.rule, case_name=case.name,
        data_fingerprint=dataset.fingerprint)


def _leaderboard(entries: dict[str, _Entry], bundles: dict, metric: str, candidate: str | None) -> list[dict]:
    rows = []
    for e in _ranked(entries):
        m = e.measures
        row = {"name": e.name, "kind": e.kind, "cv_mean": e.cv_mean, "cv_std": e.cv_std, "metric": metric,
               "n_trials": e.n_trials, "fit_cpu_s": m.get("fit_cpu_s"), "size_bytes": m.get("size_bytes"),
               "peak_mem_mb": m.get("peak_mem_mb"), "predict_1_ms": m.get("predict_1_ms"),
               "predict_1000_ms": m.get("predict_1000_ms"),
               "operating_cost_per_decision": m.get("operating_cost_per_decision"),
               "note": "; ".join(dict.fromkeys(e.note)), "family": e.family, "params": e.params,
               "folds": e.folds, "n_trees": e.n_trees, "search_s": round(e.search_s, 3),
               "selected": e.name == candidate, "refitted": e.name in bundles}
        if e.secondary:
            row["cv_log_loss"] = float(np.mean(e.secondary))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- registry
def register(case: Case, result: BakeoffResult, bundles_override: dict[str, ModelBundle] | None = None) -> dict:
    """Register the candidate (alias ``candidate``) and the best baseline (alias ``baseline``).

    Each is logged with :func:`mlcase.tracking.log_bundle` in one ``register`` run,
    with an input example of a few training rows and tags naming the bake-off run.
    ``champion`` is left alone: the decision stage moves it. Older versions stay.

    Returns
    -------
    dict
        ``{"candidate_version": int | None, "baseline_version": int | None, "run_id": str,
        "model_name": str}``.
    """
    from . import results, tracking
    from .errors import ModelError

    result.wait_tracking()
    bundles = {**result.bundles, **(bundles_override or {})}
    cand = bundles.get(result.candidate) if result.candidate else None
    base = bundles.get(result.best_baseline) if result.best_baseline else None
    if cand is None and base is None:
        raise ModelError("the bake-off produced no fitted model to register",
                         "give the bake-off a larger budget (--budget) or check the leaderboard notes")
    tags = {"mlcase.bakeoff_run_id": result.run_id or "", "mlcase.metric": result.metric,
            "mlcase.data_fingerprint": result.fingerprint or ""}
    out: dict[str, Any] = {"candidate_version": None, "baseline_version": None, "model_name": case.name,
                           "candidate": result.candidate, "baseline": result.best_baseline}
    with tracking.run(case, "register", tags=tracking.base_tags(case, result.fingerprint, "register"),
                      nested=tracking.active_run_id() is not None) as run:
        out["run_id"] = run.info.run_id
        for key, bundle, alias in (("candidate_version", cand, "candidate"), ("baseline_version", base, "baseline")):
            if bundle is None:
                continue
            row = result.row(bundle.name) or {}
            out[key] = tracking.log_bundle(
                case, bundle, aliases=[alias], input_example=result.input_example,
                tags={**tags, "mlcase.register_run_id": run.info.run_id, "mlcase.cv_mean": row.get("cv_mean"),
                      "mlcase.alias_reason": f"{alias} of bake-off run {result.run_id}"})
    out["tracking_uri"] = case.tracking_uri
    results.save(case, "registry", out)
    return out
