"""The fallback chain: who answers when the model cannot.

A :class:`Predictor` holds the tiers in the order of ``serving.fallback``:
the served model, then ``previous_champion``, ``baseline`` (a registered
baseline model, or its SQL rule, evaluated with :class:`mlcase.rules.Rule`),
``rule`` and ``constant`` (``serving.default_action`` or the majority decision
of the training data). A record goes to the next tier when the current one
raises, runs past the time limit, is busy with earlier timed-out calls, or the
record is outside the tier's training domain (numbers beyond a margin of the
training range, too many unseen categories). Every answer names its tier and,
when it is a fallback, the reasons of the tiers that did not answer.

Both batch scoring (:func:`Predictor.predict`, no time limit) and the server
(:func:`Predictor.apredict`, time limit, model calls in a small thread pool
unless the single-record fast path applies) drive the same plan, so the two
answer alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..candidates import few_rows
from ..errors import ModelError, redact_text
from .fastpath import TOLERANCE, compile_fastpath
from .schema import RecordSpec

TIERS = ("model", "champion", "previous_champion", "baseline", "rule", "constant")  # champion: a canary's fallback


@dataclass
class Answer:
    """One record's answer (what ``/predict`` returns per record, less the request id)."""

    prediction: Any
    score: float | None
    decision: str
    tier: str
    fallback: bool
    reason: str | None
    reason_code: str | None
    model_version: int | None
    scores: dict | None = None
    conformal: Any = None
    flags: dict = field(default_factory=dict)
    model_name: str | None = None

    def to_dict(self) -> dict:
        d = {"prediction": self.prediction, "score": self.score, "decision": self.decision,
             "conformal": self.conformal, "fallback": self.fallback, "tier": self.tier, "reason": self.reason,
             "model_version": self.model_version, "flags": self.flags}
        if self.scores is not None:
            d["scores"] = self.scores
        return d


class TierFailed(Exception):
    """A tier did not answer; ``code`` is one of error, timeout, busy, out_of_domain, stale."""

    def __init__(self, code: str, detail: str):
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


# --------------------------------------------------------------------------- tiers
class Tier:
    """One answering tier: a model bundle, a SQL rule, or a constant.

    Parameters
    ----------
    name : str
        One of :data:`TIERS`.
    bundle : ModelBundle, optional
        The model (model tiers) or the baseline carrying a rule.
    rule : str, optional
        A SQL rule (rule tiers); flags are 1 where it holds.
    constant : dict, optional
        ``{"prediction", "score", "decision"}`` (the constant tier).
    check_domain : bool
        Send out-of-domain records on to the next tier (learned models only).
    """

    def __init__(self, name: str, bundle=None, rule: str | None = None, constant: dict | None = None,
                 check_domain: bool = False, domain_margin: float = 0.5, max_unseen: int = 2,
                 rule_columns: list[str] | None = None):
        self.name = name
        self.bundle = bundle
        self.constant = constant
        self.check_domain = check_domain
        self.fast = None
        self.fast_error: float | None = None
        self.spec: RecordSpec | None = None
        self.rule = None
        if bundle is not None:
            self.spec = RecordSpec(bundle.schema, bundle.features, domain_margin, max_unseen)
        if rule is not None:
            from ..rules import Rule

            cols = rule_columns or (bundle.features if bundle is not None else [])
            self.rule = Rule(rule, columns=list(cols), kind="boolean", where=f"serving.{name}")
        self._busy = 0
        self._lock = threading.Lock()

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_lock", None)
        d["fast"] = None  # closures over boosters: recompiled where needed
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def version(self) -> int | None:
        return None if self.bundle is None else self.bundle.version

    @property
    def reads(self) -> frozenset:
        """The input columns this tier reads (none for the constant)."""
        if self.rule is not None:
            return frozenset(self.rule.used_columns)
        if self.bundle is not None:
            return frozenset(self.bundle.features)
        return frozenset()

    def rule_score(self, flag: float) -> float | None:
        """A rule tier's 0/1 flag as the score its fitted rule baseline gives it (the positive rate where the rule
        fires, or where it does not), where the tier carries that baseline with a threshold; else None.

        The evaluation cut the rule baseline's scores under the review capacity like any model's
        (:func:`mlcase.tasks.choose_cut`): a rule that fires on more rows than the capacity flags only a share
        of them (``tie_share``), and its cost is counted so. The tier decides by that cut, not by the rule's raw
        flags, which would send every row it fires on to review while the model is down (modeldata::credit_data's
        ``Records = 'yes'``, 17% of applicants, at a capacity of 5%)."""
        b = self.bundle
        if self.rule is None or b is None or b.task != "binary" or b.threshold is None \
                or not hasattr(b.model, "score_of"):
            return None
        return float(b.model.score_of([flag >= 0.5])[0])

    @property
    def kind(self) -> str:
        if self.constant is not None:
            return "constant"
        if self.rule is not None:
            return "rule"
        return "model"

    def provenance(self) -> dict:
        """What made this tier's answers, as the prediction log keeps it (for ``mlcase replay``).

        ``model_sha256``: of the model file (a rule from the spec: of its SQL; the constant: of
        its answer); ``bundle_sha256``: of ``bundle.json``; ``threshold``: the decision threshold.
        """
        cached = self.__dict__.get("_provenance")
        if cached is not None:
            return cached
        import hashlib
        import json

        hashes = getattr(self.bundle, "hashes", None) or {}
        if self.constant is not None:
            model = hashlib.sha256(json.dumps(self.constant, sort_keys=True, default=str).encode()).hexdigest()
        elif self.rule is not None and not hashes:
            model = hashlib.sha256(f"rule:{self.rule.expression}".encode()).hexdigest()
        else:
            model = hashes.get("model_sha256")
        threshold = None
        if self.rule is not None:
            threshold = 0.5  # a rule's flags are 0/1
        elif self.bundle is not None and self.constant is None and self.bundle.task == "binary":
            threshold = 0.5 if self.bundle.threshold is None else float(self.bundle.threshold)
        schema = None
        if self.bundle is not None:
            from ..bundle import schema_sha256

            schema = schema_sha256(self.bundle)
        out = {"model_sha256": model, "bundle_sha256": hashes.get("bundle_sha256"), "threshold": threshold,
               "schema_sha256": schema}
        self.__dict__["_provenance"] = out
        return out

    def describe(self) -> dict:
        d = {"tier": self.name, "kind": self.kind}
        if self.bundle is not None:
            d.update(version=self.bundle.version, family=self.bundle.name)
        if self.rule is not None:
            d["rule"] = self.rule.expression
        if self.constant is not None:
            d["answer"] = self.constant
        if self.kind == "model":
            d["fast_path"] = self.fast.kind if self.fast is not None else None
        return d

    def compile(self, check_records: list[dict] | None = None) -> None:
        """Compile the single-record fast path; keep it only if it matches the pipeline on ``check_records``."""
        if self.kind != "model":
            return
        pin_threads(self.bundle.model)
        fast = compile_fastpath(self.bundle.model, self.bundle.features, self.spec, self.bundle.task)
        if fast is not None and check_records:
            ref = self.bundle.scores(self.spec.frame(check_records))
            self.fast_error = fast.check(check_records, ref)
            if not self.fast_error <= TOLERANCE:
                fast = None
        self.fast = fast

    def scores(self, records: list[dict]):
        """Scores for ``records`` (binary: P(positive); the rule: 0/1 flags as floats); a few records
        on one OpenMP thread (:func:`mlcase.candidates.few_rows`)."""
        with few_rows(len(records)):
            return self._scores(records)

    def _scores(self, records: list[dict]):
        if self.rule is not None:
            frame = _rule_frame(self.rule.used_columns, records)
            return self.rule.predict(frame).astype("float64")
        if self.fast is not None and len(records) == 1:
            s = self.fast.scores(records[0])
            return np.asarray([s], dtype="float64")
        return np.asarray(self.bundle.scores(self.spec.frame(records)), dtype="float64")


def _rule_frame(columns: list[str], records: list[dict]):
    import pandas as pd

    return pd.DataFrame({c: [r.get(c) for r in records] for c in columns}, index=pd.RangeIndex(len(records)))


def pin_threads(model) -> None:
    """Set every ``n_jobs``/``nthread`` of the model to 1 (one row is slower on many threads)."""
    try:
        params = model.get_params(deep=True)
    except Exception:  # not a scikit-learn estimator: nothing to pin
        return
    # CatBoost (``thread_count``) refuses set_params once fitted; the bake-off builds it with one thread
    pins = {k: 1 for k, v in params.items()
            if k.split("__")[-1] in ("n_jobs", "nthread", "num_threads", "thread_count") and v != 1}
    if pins:
        try:
            model.set_params(**pins)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"cannot pin the model's threads to 1: {exc}",
                             "serve a model whose n_jobs can be set") from None
    est = model.steps[-1][1] if hasattr(model, "steps") else model
    if type(est).__module__.startswith("xgboost"):
        est.get_booster().set_param({"nthread": 1})


# --------------------------------------------------------------------------- answers
class Decider:
    """Scores -> prediction, decision (flag/review/auto), conformal set, for one task."""

    def __init__(self, task: str, classes: list | None, positive, defer: bool = True,
                 max_interval_width: float | None = None):
        self.task = task
        self.classes = list(classes) if classes is not None else None
        self.positive = positive
        self.defer = defer
        self.max_width = max_interval_width
        self._rng = np.random.default_rng()  # draws at a split threshold (answer)

    def flag_of(self, tier: Tier, score: float, draw: float | None = None) -> bool:
        """Whether a binary tier's score is flagged: at or above its bundle's threshold, a draw at a split one (``draw``,
        else one drawn here); a rule tier's 0/1 by its rule baseline's cut (:meth:`Tier.rule_score`), or as it is
        where it has none."""
        bundle = tier.bundle
        cut = tier.rule_score(score) if tier.rule is not None else score
        if bundle is None or bundle.threshold is None or cut is None:
            return bool(score >= 0.5)
        draws = None if bundle.tie_share is None else (
            np.asarray([draw], dtype="float64") if draw is not None else self._rng.random(1))
        return bool(bundle.decide(np.asarray([cut]), draws)[0])

    def answer(self, tier: Tier, score, conformal, reasons: list[TierFailed], flags: dict,
               draw: float | None = None) -> Answer:
        """The answer to one record from its tier's score. A binary score at a split threshold (the review capacity
        falls inside a block of tied scores: :func:`mlcase.tasks.choose_cut`) is flagged with the bundle's
        ``tie_share`` as its chance, drawn here, as a review queue takes some of many equal cases (``draw``: the
        record's own, fixed by batch scoring from its row number)."""
        bundle = tier.bundle
        reason = "; ".join(f"{r.tier}: {r}" for r in reasons) if reasons else None
        code = reasons[0].code if reasons else None
        version = bundle.version if bundle is not None else None
        common = dict(tier=tier.name, fallback=bool(reasons), reason=reason, reason_code=code, model_version=version,
                      flags=flags, conformal=conformal, model_name=bundle.name if bundle is not None else tier.name)
        if tier.constant is not None:
            c = tier.constant
            return Answer(prediction=c["prediction"], score=c.get("score"), decision=c["decision"], **common)
        if self.task == "binary":
            s = float(score)
            flag = self.flag_of(tier, s, draw)
            decision = "flag" if flag else "auto"
            if flag and self.defer and conformal is not None and len(conformal) != 1:
                decision = "review"   # flagged: reviewed anyway, whatever the deferral cut
            elif not flag and self.deferred(bundle, s, conformal):
                decision = "review"
            pred = self.classes[1] if flag else self.classes[0]
            return Answer(prediction=pred, score=s, decision=decision, **common)
        if self.task == "multiclass":
            p = np.asarray(score, dtype="float64")
            classes = bundle.classes if bundle is not None and bundle.classes else self.classes
            from ..tasks import decide_classes

            pred = decide_classes(p[None, :], classes, bundle.cost_matrix if bundle is not None else None)[0]
            decision = "review" if self.deferred(bundle, p, conformal) else "auto"
            return Answer(prediction=pred, score=float(np.max(p)), decision=decision,
                          scores={str(k): float(v) for k, v in zip(classes, p, strict=False)}, **common)
        s = float(score)
        pred = float(bundle.decide(np.asarray([s]))[0]) if bundle is not None else s
        decision = "review" if self.deferred(bundle, s, conformal) else "auto"
        return Answer(prediction=pred, score=s, decision=decision, **common)

    def deferred(self, bundle, score, conformal) -> bool:
        """Whether an answer the model did not flag goes to review: its set is not one class (its interval wider
        than ``conformal.max_interval_width``), and it is at least as uncertain as the deferral cut its bundle's
        calibration chose on the validation rows under the review capacity (:mod:`mlcase.conformal.deferral`; a
        bundle calibrated without one defers every such answer)."""
        key = self._defer_key(bundle, score, conformal)
        if key is None:
            return False
        cut, size, close = key
        if cut is None:
            return True
        from ..conformal import deferral

        return bool(deferral.apply_cut(cut, [True], size, close, self._rng.random(1))[0])

    def defer_drawn(self, bundle, score, conformal) -> bool:
        """Whether an answer ties with its bundle's deferral cut, where only a share of the tied cases go to review
        (by a draw: ``mlcase replay`` may see it go the other way)."""
        key = self._defer_key(bundle, score, conformal)
        if key is None or key[0] is None or not 0 < float(key[0].get("tie_share", 1.0)) < 1:
            return False
        from ..conformal import deferral

        cut, size, close = key
        return bool(size[0] == cut["size"] and abs(close[0] - cut["closeness"]) <= deferral._tie(cut["closeness"]))

    def _defer_key(self, bundle, score, conformal):
        """``(cut, size, closeness)`` of an answer that asks to be deferred (None where it does not)."""
        if not self.defer or conformal is None:
            return None
        width = None
        if self.task == "regression":
            if self.max_width is None or len(conformal) != 2:
                return None
            width = float("inf") if None in conformal else float(conformal[1]) - float(conformal[0])
            if not width > self.max_width:  # None: unbounded
                return None
        elif len(conformal) == 1:
            return None
        cut = ((bundle.conformal or {}).get("defer_cut") if bundle is not None else None)
        if cut is None:
            return None, None, None
        from ..conformal import deferral

        if self.task == "regression":
            size, close = deferral.keys("regression", [score], None, width=[width])
        else:
            size, close = deferral.keys(self.task, np.asarray([score], dtype="float64").reshape(1, -1)
                                        if self.task == "multiclass" else [score], [len(conformal)],
                                        bundle.threshold)
        return cut, size, close


def _json(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


class _FixedScores:
    """A stand-in model returning scores already computed (so conformal sets need no second model call)."""

    def __init__(self, scores: np.ndarray, task: str):
        self._s = scores
        self._task = task

    def predict_proba(self, X):
        if self._task == "binary":
            return np.column_stack([1.0 - self._s, self._s])
        return self._s

    def predict(self, X):
        return self._s


def conformal_sets(bundle, scores: np.ndarray, frame_fn) -> list | None:
    """Conformal sets (classification: labels) or intervals (regression: [lo, hi]) per row, or None.

    From the scores the model has just given (:func:`mlcase.conformal.sets.sets_of_scores`), so the model is not
    called twice and no frame is built. Every served request with a calibration built a pandas frame of its
    records here (1.4 ms of the 2.6 ms of CPU a request of the churn benchmark took): the stand-in model that
    returned the given scores was called with ``X=None``, which ``ModelBundle.scores`` could not take the
    ``len()`` of, and the fallback built the frame for it to ignore. ``frame_fn`` builds the frame only for a
    task whose scores the sets are not made from (``bundle.scores`` of the stand-in).
    """
    if bundle is None or not bundle.conformal:
        return None
    try:
        from ..conformal import predict_sets
        from ..conformal.sets import sets_of_scores
    except ImportError as exc:
        raise ModelError("the model carries a conformal calibration but mlcase.conformal cannot be imported "
                         f"({exc})", "install the complete mlcase package") from None
    scores = np.asarray(scores, dtype="float64")
    n = len(scores)
    if scores.ndim == (2 if bundle.task == "multiclass" else 1):
        # what the stand-in's bundle.scores gave: P(positive) (column 1 of [1 - s, s]), the probability rows, the
        # predictions, each the scores themselves
        return normalise_sets(sets_of_scores(bundle, scores), bundle, n)
    proxy = dataclasses.replace(bundle, model=_FixedScores(scores, bundle.task))
    try:
        out = predict_sets(proxy, np.empty((n, 0)))  # the proxy's model ignores X: only its rows are counted
    except (TypeError, AttributeError, KeyError):
        out = predict_sets(proxy, frame_fn())
    return normalise_sets(out, bundle, n)


def normalise_sets(out, bundle, n: int) -> list:
    """Whatever :func:`predict_sets` returned, as JSON-ready per-row sets or intervals."""
    from ..conformal.sets import json_interval

    if isinstance(out, dict):
        for key in ("sets", "set", "intervals", "interval"):
            if key in out:
                return normalise_sets(out[key], bundle, n)
        if "lower" in out and "upper" in out:
            return [json_interval(lo, hi) for lo, hi in zip(np.ravel(out["lower"]), np.ravel(out["upper"]), strict=False)]
    if hasattr(out, "to_numpy"):
        out = out.to_numpy()
    if isinstance(out, tuple) and len(out) == 2 and bundle.task == "regression":
        return [json_interval(lo, hi) for lo, hi in zip(np.ravel(out[0]), np.ravel(out[1]), strict=False)]
    arr = out
    if isinstance(arr, np.ndarray) and arr.dtype == bool:
        arr = arr.reshape(n, -1)
        return [[_json(c) for c, keep in zip(bundle.classes, row, strict=False) if keep] for row in arr]
    if bundle.task == "regression":
        a = np.asarray(arr, dtype="float64").reshape(n, 2)
        return [json_interval(lo, hi) for lo, hi in a]
    return [[_json(v) for v in row] for row in arr]


# --------------------------------------------------------------------------- the predictor
class Predictor:
    """Scores records through the tiers.

    Parameters
    ----------
    tiers : list of Tier
        The served model first; the last tier should be a constant, which never fails.
    decider : Decider
    timeout_s : float, optional
        Time limit of one model call in the server.
    workers : int
        Threads for model calls that are not on the fast path.
    """

    def __init__(self, tiers: list[Tier], decider: Decider, timeout_s: float | None = None, workers: int = 4):
        if not tiers:
            raise ModelError("no tier can answer", "register a model or set serving.fallback to include constant")
        self.tiers = tiers
        self.decider = decider
        self.timeout_s = timeout_s
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlcase-model")
        self.conformal_errors = 0
        self.last_conformal_error: str | None = None

    @property
    def primary(self) -> Tier:
        return self.tiers[0]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # the plan: a generator that yields (tier, indices) and receives scores or a TierFailed
    def _plan(self, records: list[dict], flags: list[dict], skip: list[dict] | None = None):
        n = len(records)
        reasons: list[list[TierFailed]] = [[] for _ in range(n)]
        answered: dict[int, tuple[Tier, Any]] = {}
        pending = list(range(n))
        for tier in self.tiers:
            if not pending:
                break
            if tier.constant is not None:
                for i in pending:
                    answered[i] = (tier, None)
                pending = []
                break
            todo = []
            reads = tier.reads if skip else frozenset()
            for i in pending:
                stale = [why for f, why in skip[i].items() if f in reads] if skip else None
                if stale:  # serving.on_stale: fallback: a tier that reads a stale feature steps aside
                    reasons[i].append(_failed(tier, "stale", "; ".join(stale)))
                    continue
                why = tier.spec.out_of_domain(tier.spec.flags(records[i]) if tier is not self.tiers[0] else flags[i]) \
                    if (tier.check_domain and tier.spec is not None) else None
                if why:
                    reasons[i].append(_failed(tier, "out_of_domain", why.removeprefix("out_of_domain: ")))
                else:
                    todo.append(i)
            result = (yield tier, todo) if todo else None
            failed = set()
            if isinstance(result, TierFailed):
                if len(todo) > 1 and result.code == "error":
                    # find the records that fail on their own; the others keep this tier's answer
                    for i in todo:
                        r = yield tier, [i]
                        if isinstance(r, TierFailed):
                            reasons[i].append(_failed(tier, r.code, r.detail))
                            failed.add(i)
                        else:
                            answered[i] = (tier, np.asarray(r)[0])
                else:
                    for i in todo:
                        reasons[i].append(_failed(tier, result.code, result.detail))
                        failed.add(i)
            elif result is not None:
                arr = np.asarray(result)
                for k, i in enumerate(todo):
                    answered[i] = (tier, arr[k])
            pending = [i for i in pending if i not in answered]
        return answered, reasons

    def _finish(self, records, flags, answered, reasons, conformal_frame, draws=None) -> list[Answer]:
        out: list[Answer | None] = [None] * len(records)
        by_tier: dict[int, list[int]] = {}
        for i, (tier, _) in answered.items():
            by_tier.setdefault(id(tier), []).append(i)
        for idxs in by_tier.values():
            tier = answered[idxs[0]][0]
            sets = None
            if tier.kind == "model" and tier.bundle.conformal:
                scores = np.asarray([answered[i][1] for i in idxs], dtype="float64")
                try:
                    sets = conformal_sets(tier.bundle, scores, lambda idxs=idxs, tier=tier: conformal_frame(tier, idxs))
                except Exception as exc:  # noqa: BLE001 - counted and shown in /ready; the answer stands
                    self.conformal_errors += len(idxs)
                    self.last_conformal_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                    sets = None
            for k, i in enumerate(idxs):
                out[i] = self.decider.answer(tier, answered[i][1], None if sets is None else sets[k], reasons[i], flags[i],
                                             None if draws is None else float(draws[i]))
        for i, a in enumerate(out):
            if a is None:  # no constant tier and every tier failed
                detail = "; ".join(str(r) for r in reasons[i])
                raise ModelError(f"no tier could answer record {i} ({detail})",
                                 "add 'constant' to serving.fallback so something always answers")
        return out  # type: ignore[return-value]

    def _flags(self, records):
        spec = self.tiers[0].spec
        return [spec.flags(r) for r in records] if spec is not None else [{} for _ in records]

    def _frame_for(self, records):
        def make(tier, idxs):
            return tier.spec.frame([records[i] for i in idxs])
        return make

    # sync driver (batch scoring): no time limit, direct calls
    def predict(self, records: list[dict], skip: list[dict] | None = None, draws=None) -> list[Answer]:
        """Answer ``records`` (``draws``: one number in [0, 1) per record, which decides a record at a split
        threshold, as :func:`mlcase.score.row_draws` fixes it from the row's number; else drawn per answer)."""
        flags = self._flags(records)
        plan = self._plan(records, flags, skip)
        try:
            tier, idxs = next(plan)
            while True:
                tier, idxs = plan.send(_call(tier, [records[i] for i in idxs]))
        except StopIteration as stop:
            answered, reasons = stop.value
        return self._finish(records, flags, answered, reasons, self._frame_for(records), draws)

    # async driver (server): fast path inline, other calls in the pool with the time limit
    async def apredict(self, records: list[dict], skip: list[dict] | None = None) -> list[Answer]:
        """Answer ``records``; ``skip[i]`` maps features of record ``i`` that no tier reading them may use
        (stale features, with why) to the reason."""
        flags = self._flags(records)
        plan = self._plan(records, flags, skip)
        try:
            tier, idxs = next(plan)
            while True:
                tier, idxs = plan.send(await self._acall(tier, [records[i] for i in idxs]))
        except StopIteration as stop:
            answered, reasons = stop.value
        return self._finish(records, flags, answered, reasons, self._frame_for(records))

    async def _acall(self, tier: Tier, recs: list[dict]):
        if tier.fast is not None and len(recs) == 1:
            return _call(tier, recs)
        if self.timeout_s is None:
            return _call(tier, recs)
        with tier._lock:
            if tier._busy >= self.workers:
                return TierFailed("busy", f"{tier._busy} earlier calls still running past the time limit")
            tier._busy += 1
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, _call_and_release, tier, recs)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
        except TimeoutError:
            return TierFailed("timeout", f"no answer within {self.timeout_s * 1000:g} ms")


def _failed(tier: Tier, code: str, detail: str) -> TierFailed:
    f = TierFailed(code, detail)
    f.tier = tier.name
    return f


def _call(tier: Tier, recs: list[dict]):
    t0 = time.perf_counter()
    try:
        s = tier.scores(recs)
    except Exception as exc:  # the model failed: the next tier answers, the reason is reported
        return TierFailed("error", f"{type(exc).__name__}: {str(exc)[:200]}")
    s = np.asarray(s, dtype="float64")
    if s.shape[0] != len(recs) or not np.all(np.isfinite(s)):
        return TierFailed("error", f"the model returned {'non-finite' if s.shape[0] == len(recs) else 'too few'} "
                                   f"scores ({time.perf_counter() - t0:.3f}s)")
    return s


def _call_and_release(tier: Tier, recs: list[dict]):
    try:
        return _call(tier, recs)
    finally:
        with tier._lock:
            tier._busy -= 1


# --------------------------------------------------------------------------- building the chain
def constant_answer(case_spec, schema: dict, task: str, classes: list | None, positive,
                    reference: dict | None = None) -> dict:
    """The constant tier's answer: ``serving.default_action`` or the majority decision of the training data
    (the model's ``reference``, which holds the training classes' shares)."""
    target = next((c for c in schema.get("columns", []) if c["name"] == schema.get("target")), None)
    action = case_spec.serving.default_action if case_spec is not None else None
    if task == "binary":
        neg, pos = (classes or [None, positive])[:2]
        if action in ("flag", "review", "auto"):
            return {"prediction": pos if action == "flag" else neg, "score": None, "decision": action}
        if action is not None:
            return {"prediction": action, "score": None, "decision": "flag" if str(action) == str(pos) else "auto"}
        majority = _majority(target, classes, reference)
        if majority is None:
            return {"prediction": neg, "score": None, "decision": "auto"}
        return {"prediction": majority, "score": None, "decision": "flag" if str(majority) == str(pos) else "auto"}
    if task == "multiclass":
        majority = action or _majority(target, classes, reference) or (classes[0] if classes else None)
        return {"prediction": majority, "score": None, "decision": "auto" if action not in ("review",) else "review"}
    mean = target.get("mean") if target else None
    if action is not None:
        try:
            mean = float(action)
        except ValueError:
            return {"prediction": mean, "score": mean, "decision": action}
    return {"prediction": mean, "score": mean, "decision": "auto"}


def _majority(target: dict | None, classes: list | None = None, reference: dict | None = None):
    """The most common training class: from the reference's class shares; for a model saved before they were
    kept, a text target's first category, or the class a numeric target's quantiles hold most often (its mean
    said 1 or 0, right for a 0/1 target only)."""
    shares = (reference or {}).get("label_shares")
    if shares:
        top = max(shares, key=shares.get)
        return next((c for c in classes or [] if str(c) == top), top)
    if not target:
        return None
    if target.get("categories"):
        return target["categories"][0]
    grid = target.get("quantiles") or []
    if classes and grid and target.get("kind") == "numeric":
        def count(c):
            try:
                return sum(float(q) == float(c) for q in grid)
            except (TypeError, ValueError):
                return 0
        best = max(classes, key=count)
        if count(best):
            return best
    if target.get("mean") is not None and target.get("kind") in ("numeric", "boolean"):
        value = 1 if target["mean"] >= 0.5 else 0
        if not classes:
            return value
        spelled = {str(value), str(bool(value)), f"{value:.1f}"}
        return next((c for c in classes if str(c) in spelled), None)
    return None


# --------------------------------------------------------------------------- loading the chain
@dataclass
class Chain:
    """The tiers for a case, and what could not be loaded."""

    tiers: list[Tier]
    decider: Decider
    serving: str = "champion"
    notes: list[str] = field(default_factory=list)
    unavailable: list[dict] = field(default_factory=list)
    conformal_error: str | None = None

    @property
    def primary(self) -> Tier:
        return self.tiers[0]


def load_chain(case, version: int | None = None, bundles: dict | None = None, registry: bool = True,
               fallbacks: bool = True) -> Chain:
    """The served model and the fallback tiers of ``serving.fallback`` for a case (see :func:`_load_chain`).

    Loaded with fewer garbage-collector passes (:func:`mlcase.startup.fewer_gc_passes`): the imports of
    MLflow, skops and scikit-learn and the model files, for ``mlcase score``, the server and its reloads alike.
    """
    from ..startup import fewer_gc_passes

    with fewer_gc_passes():
        return _load_chain(case, version, bundles, registry, fallbacks)


def _load_chain(case, version: int | None = None, bundles: dict | None = None, registry: bool = True,
                fallbacks: bool = True) -> Chain:
    """The served model and the fallback tiers of ``serving.fallback`` for a case.

    Parameters
    ----------
    case : Case
    version : int, optional
        Serve this registry version instead of the ``champion`` alias.
    bundles : dict, optional
        Bundles by role (``model``, ``previous_champion``, ``baseline``) that replace the registry's.
    registry : bool
        Read the case's registry for the roles not in ``bundles``.
    fallbacks : bool
        False: the served model's tier only (batch scoring loads the others when a row needs them).

    Without a ``champion`` alias the registered ``baseline`` is served, and the chain's
    notes say so.
    """
    from ..errors import MlcaseError

    spec = case.spec
    serving = spec.serving
    margin, max_unseen = serving.domain_margin, serving.max_unseen_categories
    injected = dict(bundles or {})
    notes: list[str] = []
    unavailable: list[dict] = []

    def load(alias=None, v=None):
        from .. import tracking

        return tracking.load_bundle(case, alias=alias, version=v)

    served = "champion"
    if "model" in injected:
        primary, served = injected["model"], "given model"
    elif not registry:
        raise ModelError("no model to serve: the registry is off and no model was given",
                         "pass bundles={'model': ...} or read the registry")
    elif version is not None:
        primary, served = load(v=version), f"version {version}"
    else:
        from .. import tracking

        primary, note = tracking.load_served(case)
        if note:
            served = "baseline"
            notes.append(note)
    # a ranking list is ordered by one tier's scores (POST /rank): an item outside the training range answered
    # by the constant would sit among the model's scores on another scale (stevedata::CFT15's batch score put a
    # state's out-of-range row first in its year at the constant 52.2, against model scores of -2 to 3)
    domain = primary.task != "ranking"
    tiers = [Tier("model", primary, check_domain=domain, domain_margin=margin, max_unseen=max_unseen)]
    if not fallbacks:
        decider = Decider(primary.task, primary.classes, primary.positive, defer=spec.conformal.defer,
                          max_interval_width=spec.conformal.max_interval_width)
        return Chain(tiers, decider, served, notes, unavailable)

    def fetch(role: str, loader):
        if role in injected:
            return injected[role]
        if not registry:
            return None
        if role == "baseline" and primary.version is not None:
            from .. import tracking

            if tracking.alias_version(case, "baseline") == primary.version:  # not loaded a second time
                unavailable.append({"tier": role, "reason": f"it is the served model (version {primary.version})"})
                return False
        try:
            b = loader()
        except MlcaseError as exc:
            unavailable.append({"tier": role, "reason": redact_text(str(exc))})
            return False
        if b is not None and primary.version is not None and b.version == primary.version:
            unavailable.append({"tier": role, "reason": f"it is the served model (version {b.version})"})
            return False
        return b

    baseline = None if served == "baseline" else fetch("baseline", lambda: load(alias="baseline"))
    names = set()
    for entry in serving.fallback:
        if entry == "previous_champion":
            b = fetch(entry, lambda: _previous_champion(case, primary.version, load))
            if b:
                tiers.append(Tier("previous_champion", b, check_domain=domain, domain_margin=margin,
                                  max_unseen=max_unseen))
            elif b is None:
                unavailable.append({"tier": entry, "reason": "no earlier champion version is registered"})
        elif entry in ("baseline", "rule"):
            if baseline and baseline.rule:
                tier = ("rule", dict(bundle=baseline, rule=baseline.rule,
                                     rule_columns=[c["name"] for c in baseline.schema.get("columns", [])]))
            elif entry == "baseline" and baseline:
                tier = ("baseline", dict(bundle=baseline))
            elif entry == "rule" and spec.rule_baselines:
                tier = ("rule", dict(rule=spec.rule_baselines[0].rule,
                                     rule_columns=[c["name"] for c in primary.schema.get("columns", [])]))
            else:
                if served == "baseline" and entry == "baseline":
                    unavailable.append({"tier": entry, "reason": "the baseline is the served model"})
                elif baseline is None and not any(u["tier"] == entry for u in unavailable):
                    unavailable.append({"tier": entry, "reason": "no rule baseline in the spec or the registry"
                                        if entry == "rule" else "no 'baseline' alias is registered"})
                continue
            if tier[0] in names:
                continue
            try:
                tiers.append(Tier(tier[0], **tier[1]))
            except MlcaseError as exc:
                unavailable.append({"tier": tier[0], "reason": redact_text(str(exc))})
                continue
        elif entry == "constant":
            tiers.append(Tier("constant", constant=constant_answer(spec, primary.schema, primary.task,
                                                                     primary.classes, primary.positive,
                                                                     primary.reference)))
        names.add(tiers[-1].name)
    decider = Decider(primary.task, primary.classes, primary.positive, defer=spec.conformal.defer,
                      max_interval_width=spec.conformal.max_interval_width)
    chain = Chain(tiers, decider, served, notes, unavailable)
    if any(t.bundle is not None and t.bundle.conformal for t in tiers):
        try:
            from .. import conformal  # noqa: F401
        except ImportError as exc:
            chain.conformal_error = f"mlcase.conformal cannot be imported ({exc}); answers carry no conformal sets"
            notes.append(chain.conformal_error)
            for t in tiers:
                if t.bundle is not None and t.bundle.conformal:
                    t.bundle = dataclasses.replace(t.bundle, conformal=None)
    return chain


def _previous_champion(case, current: int | None, load):
    from .. import tracking

    older = [v for v in tracking.versions(case)
             if v["version"] != current and str(v["tags"].get("mlcase.was_champion", "")).lower() == "true"]
    if not older:
        return None
    return load(v=max(v["version"] for v in older))
