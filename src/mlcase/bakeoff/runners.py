"""Where a trial's folds run: the engine seam of the search.

The search (:mod:`.search`) decides which family gets the next trial and with which
configuration; a runner executes it. :class:`InProcess` (the local engine) fits the folds one
after the other in this process, as the bake-off always did. :class:`ClusterRunner` (the Dask
engine) submits every fold of a trial as its own task, so the families' trials and each
trial's folds run side by side on the workers, and hands the results back to the search in
fold order: the same pruning decision after each fold (Optuna's median pruner, on this
process's study), the same out-of-fold scores, so a run with ``max_trials`` finds the same
trials and the same champion as the local engine, whatever order the folds finished in. A
pruned trial's folds still running are cancelled.

The search keeps one trial per family running at a time (a family's sampler is told each
result before it proposes the next configuration, as in this process), and starts new trials
while fewer folds run than the cluster has threads. The time box governs them as before: each
fold gets a deadline (sent as wall-clock time, so a worker on another machine converts it to its
own clock) that boosting and forests stop at.

A worker that dies while it fits a fold fails that fold with :class:`distributed.KilledWorker`;
the trial is recorded as ``FAILED`` with a note saying so, its other folds are cancelled, and
the search goes on with the workers left (the cluster's nanny restarts the dead one). A fold of
another trial that the scheduler cancels because the rows it needed were lost with that worker
("lost dependencies": scattered data cannot be recomputed) did not fail: the rows are scattered
again and the fold runs again, once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from .search import FoldData, Pending, fit_fold

WAIT_S = 0.25          # the progress display is refreshed at least this often while folds run


def make_runner(search, engine=None):
    """The runner for ``engine``: :class:`ClusterRunner` when it runs tasks in parallel, else :class:`InProcess`."""
    if engine is not None and getattr(engine, "parallel", False):
        return ClusterRunner(search, engine)
    return InProcess(search)


def _failed(trial, exc: BaseException) -> None:
    trial.state, trial.note = "FAILED", f"{type(exc).__name__}: {str(exc)[:300]}"
    trial.oof = trial.model = None


class InProcess:
    """The local engine: a trial's folds run one after the other in this process, now."""

    parallel = False

    def __init__(self, search):
        self.search = search
        self._done: list[Pending] = []

    def start(self, p: Pending) -> None:
        try:
            self.search._evaluate(p.trial, p.otrial, p.until)
        except KeyboardInterrupt:  # the interrupted trial is dropped; the caller keeps the best so far
            raise
        except Exception as exc:  # recorded on the trial and in the leaderboard note; the search goes on
            _failed(p.trial, exc)
        self._done.append(p)

    def full(self) -> bool:
        return False

    def running(self) -> int:
        return 0

    def finished(self, block: bool = False) -> list[Pending]:
        done, self._done = self._done, []
        return done

    def cancel(self) -> None:
        self._done = []


@dataclass
class _Running:
    """A trial on the cluster: its pending record and one future per fold."""

    pending: Pending
    futures: list                                  # one per fold; None until submitted
    deadline_wall: float = 0.0
    any_complete: bool = False
    results: dict = field(default_factory=dict)   # fold -> fit_fold's result, until absorbed in order
    absorbed: int = 0
    over: bool = False
    rerun: set = field(default_factory=set)       # folds sent again after their input was lost


@dataclass
class _Raised:
    """A fold whose task raised (kept until the folds before it are absorbed)."""

    exc: BaseException


def remote_fold(data: FoldData, family: str, params: dict, size: int, k: int, deadline_wall: float,
                any_complete: bool) -> dict:
    """:func:`fit_fold` on a worker: the deadline arrives as wall-clock time; one thread per fit."""
    import warnings

    from .. import candidates as C

    now_wall, now = time.time(), time.monotonic()
    if now_wall >= deadline_wall and any_complete:  # queued past the time box: the fold does not start
        return {"skipped": True}
    deadline = now + max(deadline_wall - now_wall, 0.0)
    C.import_families([family])
    with C.single_thread(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*X does not have valid feature names.*")
        return fit_fold(data, family, params, size, k, deadline)


class ClusterRunner:
    """The Dask engine: every fold of a trial is a task; the search goes on while they run."""

    parallel = True

    def __init__(self, search, engine):
        self.search, self.engine = search, engine
        self.running_: list[_Running] = []
        self._data = None
        self.workers_lost = 0
        self.folds_rerun = 0          # folds sent again because their input was lost with a dead worker
        engine.warm(["mlcase.candidates", "sklearn.ensemble", "sklearn.linear_model",
                     *(m for m in ("lightgbm", "xgboost", "catboost") if m in search.states)])

    def _shipped(self):
        if self._data is None or self._data.cancelled():
            # the rows, the plan and the scorer go to every worker once, and again if they were lost
            # (Dask's active memory manager keeps one replica of them, so a worker that dies can take them)
            self._data = self.engine.scatter(self.search.fold_data())
        return self._data

    # ------------------------------------------------------------------ the runner's interface
    def start(self, p: Pending) -> None:
        s = self.search
        end = s.fold_end(p.until)
        self.running_.append(_Running(p, [None] * len(s.plan.folds), time.time() + max(end - time.monotonic(), 0.0),
                                      s.any_complete))
        self._feed()
        self._show()

    def full(self) -> bool:
        self._feed()
        return any(f is None for r in self.running_ for f in r.futures) or self._folds_running() >= self.engine.slots

    def _feed(self) -> None:
        """Submit waiting folds (oldest trial first) while fewer run than the cluster has threads.

        Folds wait here rather than in the scheduler's queue: a worker then holds only the fold it
        is fitting, so a worker that dies takes that fold's trial with it and no other, and a
        fold's deadline starts to count when it can run.
        """
        free = self.engine.slots - self._folds_running()
        data = None
        for r in self.running_:
            for k, f in enumerate(r.futures):
                if free <= 0:
                    return
                if f is None and not r.over:
                    data = data or self._shipped()
                    t = r.pending.trial
                    # a fold fed after another trial completed may be skipped past the time box, as the
                    # local engine skips a fold it reaches then (the flag the trial started with is stale)
                    r.futures[k] = self.engine.submit(remote_fold, data, t.family, t.params, t.size, k,
                                                      r.deadline_wall, r.any_complete or self.search.any_complete,
                                                      key=f"fold-{t.family}-{t.number}-{k}")
                    free -= 1

    def running(self) -> int:
        return len(self.running_)

    def finished(self, block: bool = False) -> list[Pending]:
        done = self._collect()
        if block and not done and self.running_:  # wait for the next fold to finish (or refresh the display)
            futures = [f for r in self.running_ for f in r.futures if f is not None and not f.done()]
            if futures:
                self.engine.wait_any(futures, timeout=WAIT_S)
            self._show()
            done = self._collect()
        return done

    def cancel(self) -> None:
        self.engine.cancel([f for r in self.running_ for f in r.futures if f is not None])
        self.running_ = []

    # ------------------------------------------------------------------ inside
    def _folds_running(self) -> int:
        return sum(1 for r in self.running_ for f in r.futures if f is not None and not f.done())

    def _collect(self) -> list[Pending]:
        """Absorb the folds that are done, in fold order; return the trials that are over."""
        from ..engine import is_lost_input

        over = []
        self._feed()
        for r in self.running_:
            for k, f in enumerate(r.futures):
                if f is None or not f.done() or k in r.results:
                    continue
                try:
                    r.results[k] = f.result()
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001 - a failed fold fails its trial, in fold order
                    if is_lost_input(exc) and k not in r.rerun:
                        # the rows were lost with a dead worker while this fold waited or ran on another:
                        # ship them again and run the fold again (once), instead of losing its trial too
                        r.rerun.add(k)
                        self.folds_rerun += 1
                        r.futures[k] = None
                        self._data = None
                        continue
                    r.results[k] = _Raised(exc)
            while not r.over and r.absorbed in r.results:
                k = r.absorbed
                out = r.results.pop(k)
                try:
                    if isinstance(out, _Raised):
                        raise out.exc
                    r.over = self.search.absorb(r.pending.trial, r.pending.otrial, k, out)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001 - the trial fails; the search goes on
                    self._fail(r, k, exc)
                r.absorbed += 1
            if r.over:
                self.engine.cancel([f for f in r.futures if f is not None and not f.done()])
                over.append(r)
        self.running_ = [r for r in self.running_ if not r.over]
        if over:
            self._feed()
            self._show()
        return [r.pending for r in over]

    def _fail(self, r: _Running, k: int, exc: BaseException) -> None:
        from ..engine import is_killed_worker

        trial = r.pending.trial
        if is_killed_worker(exc):
            self.workers_lost += 1
            trial.state = "FAILED"
            trial.note = (f"the worker fitting fold {k + 1} died ({type(exc).__name__}); this trial is lost, "
                          "the search went on with the other workers")
            trial.oof = trial.model = None
        else:
            _failed(trial, exc)
        r.over = True

    def _show(self) -> None:
        progress = self.search.progress
        if progress is None:
            return
        names = [f"{r.pending.trial.family} #{r.pending.trial.number + 1}" for r in self.running_]
        used = min(self._folds_running(), self.engine.slots)
        best = self.search.best_value
        text = f"{used}/{self.engine.slots} workers busy · running: {', '.join(names) if names else '-'}"
        if math.isfinite(best):
            text += f" · best {best:.5g}"
        progress.update(text)


def study_storage(case, engine) -> tuple[object | None, str | None]:
    """Where the families' Optuna studies live: ``(storage, path)``.

    The local engine keeps them in memory, as before. The Dask engine writes them to an Optuna
    journal file in the case folder (``.mlcase/optuna/<UTC time>.journal``): the search asks and
    tells in this process (FLAML's cost-for-improvement rule needs one view of every family, and
    the pruner's decision after each fold is taken here in fold order, which keeps the results equal
    to the local engine's), so no worker calls Optuna while it fits. A journal file was chosen over
    ``optuna_integration.DaskStorage`` because DaskStorage keeps the study in the scheduler's
    memory, where it is lost with the cluster and every ask/tell becomes a round trip to the
    scheduler, and over an RDB URL because it needs no database server: the journal is an
    append-only file with a file lock that any machine mounting the case folder reads (the same
    shared folder the MLflow store already needs on a multi-node cluster), it survives a killed run,
    and ``optuna-dashboard <file>`` or ``optuna.load_study`` reads it afterwards.
    """
    if engine is None or not getattr(engine, "parallel", False):
        return None, None
    import datetime as dt

    import optuna
    from optuna.storages.journal import JournalFileBackend

    folder = case.work_dir / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"bakeoff-{stamp}.journal"
    return optuna.storages.JournalStorage(JournalFileBackend(str(path))), str(path)


__all__ = ["make_runner", "study_storage", "InProcess", "ClusterRunner", "remote_fold"]
